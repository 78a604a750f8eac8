"""Every dashboard page drawn from a populated fleet, and a screenshot of each at 1400x900.

The screenshots go to pytest's temporary folder; with NAVARCH_DASHBOARD_SCREENSHOTS=docs/images
they replace the ones in the documentation, as docs/dashboard.md says.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from playwright.sync_api import expect

PNG = b"\x89PNG\r\n\x1a\n"


def _populate(dashboard) -> None:
    """Nodes in every state a page shows: cordoned, draining, degraded, in remediation."""
    admin = dashboard.admin
    admin(
        "IssueCommand",
        {"nodeId": "train-08", "type": "COMMAND_TYPE_CORDON", "reason": "ECC retirements climbing"},
    )
    admin(
        "IssueCommand",
        {"nodeId": "infer-04", "type": "COMMAND_TYPE_DRAIN", "reason": "kernel upgrade"},
    )
    assert dashboard.fleet.report_xid("infer-02", 94, gpu=2)["health"] == "HEALTH_STATUS_DEGRADED"
    assert dashboard.fleet.report_xid("train-10", 79, gpu=6)["health"] == "HEALTH_STATUS_UNHEALTHY"
    # An episode that waits: remediation is paused in the pool when the XID arrives.
    admin("PauseRemediation", {"pool": "infer", "reason": "rack r9 power work"})
    assert dashboard.fleet.report_xid("infer-03", 79, gpu=1)["health"] == "HEALTH_STATUS_UNHEALTHY"


def _wait_for_history(dashboard, points: int) -> None:
    """For the documentation's pictures: enough points of the fleet's 15-second history that the
    charts show a line, not a band."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(dashboard.admin("GetFleetSummary", {}).get("history", [])) >= points:
            return
        time.sleep(2)


def test_every_page_draws_from_a_populated_fleet(dashboard, open_page, tmp_path):
    target = os.environ.get("NAVARCH_DASHBOARD_SCREENSHOTS")
    folder = Path(target) if target else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    _populate(dashboard)
    if target:
        _wait_for_history(dashboard, 6)
    page = open_page(dashboard.admin_token).page

    def shoot(name: str) -> None:
        page.wait_for_load_state("networkidle")
        path = folder / f"dashboard-{name}.png"
        page.screenshot(path=str(path))
        assert path.read_bytes().startswith(PNG)

    expect(page.locator("#chart-status svg.chart")).to_be_visible()
    expect(page.locator("#breakers")).to_contain_text("train")
    shoot("fleet")

    page.click("nav >> text=Nodes")
    expect(page.locator("#nodes-table tbody tr").nth(15)).to_be_visible()
    expect(page.locator("tr[data-node=train-08]")).to_contain_text("cordoned")
    shoot("nodes")

    page.goto(dashboard.url + "/ui/nodes/infer-02")
    expect(page.locator("#node-health")).to_have_text("degraded")
    expect(page.locator("#node-gpus tbody tr").nth(2)).to_contain_text("XID 94")
    expect(page.locator("#node-reports")).to_contain_text("app-error")
    shoot("node")

    page.goto(dashboard.url + "/ui/pools/train")
    expect(page.locator("#pool-decisions")).to_contain_text("utilization")
    shoot("pools")

    page.goto(dashboard.url + "/ui/remediations")
    expect(page.locator("#remediations-table tr", has_text="train-10")).to_contain_text(
        "xid-replace"
    )
    shoot("remediations")
