"""The dashboard in headless Chromium, as an operator uses it: sign in, read the fleet, filter the
nodes, act on a node and watch the pages follow the fleet without a reload."""

from __future__ import annotations

import re

from playwright.sync_api import expect

# Longer than a debounced refresh after a streamed change (about a second), shorter than the
# 15-second poll, so a page that passes followed the stream.
LIVE_MS = 10_000


def test_without_a_session_the_dashboard_sends_to_sign_in(dashboard, open_page):
    page = open_page().page
    page.goto(dashboard.url + "/ui/nodes")
    expect(page).to_have_url(re.compile(r"/ui/signin\?next=%2Fui%2Fnodes$"))
    expect(page.locator("#token")).to_be_visible()

    page.fill("#token", "not-a-token-" + "x" * 30)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/ui/signin\?error=1"))
    expect(page.locator("#signin-error")).to_be_visible()

    page.fill("#token", dashboard.admin_token)
    page.click("button[type=submit]")
    expect(page).to_have_url(dashboard.url + "/ui/nodes")
    expect(page.locator("#nodes-table tbody tr").first).to_be_visible()


def test_fleet_page_shows_totals_charts_breakers_and_events(dashboard, open_page):
    page = open_page(dashboard.admin_token).page
    expect(page.locator("h1")).to_have_text("Fleet")
    expect(page.locator("#role")).to_have_text("admin")
    stats = page.locator("#fleet-stats")
    expect(stats).to_contain_text("GPUs")
    title = page.locator(".stat-title", has_text=re.compile("^GPUs$"))
    gpus = stats.locator(".stat", has=title).locator(".stat-value")
    assert int(gpus.inner_text().replace(",", "")) >= 8 * 14
    expect(page.locator("#chart-status svg.chart, #chart-status .empty")).to_be_visible()
    expect(page.locator("#breakers")).to_contain_text("train")
    expect(page.locator("#recent-events tbody tr").first).to_be_visible()

    page.click("nav >> text=Pools")
    expect(page).to_have_url(dashboard.url + "/ui/pools")
    expect(page.locator("#pools-table")).to_contain_text("infer")
    page.go_back()
    expect(page.locator("h1")).to_have_text("Fleet")


def test_nodes_filter_sort_and_page_on_the_server(dashboard, open_page):
    page = open_page(dashboard.admin_token).page
    page.click("nav >> text=Nodes")
    rows = page.locator("#nodes-table tbody tr")
    expect(rows.first).to_be_visible()

    page.select_option("select[name=pool]", "infer")
    expect(page.locator("#nodes-count")).to_have_text("4 nodes match")
    expect(rows).to_have_count(4)
    expect(page).to_have_url(re.compile(r"/ui/nodes\?pool=infer$"))

    page.click("th[data-sort=id]")
    expect(rows.first).to_contain_text("infer-04")
    page.click("th[data-sort=id]")
    expect(rows.first).to_contain_text("infer-01")
    page.click("th[data-sort=last_heartbeat]")
    expect(page).to_have_url(re.compile(r"sort=last_heartbeat"))
    expect(page.locator("th[data-sort=last_heartbeat]")).to_have_attribute("aria-sort", "ascending")
    expect(rows).to_have_count(4)

    page.select_option("select[name=pool]", "")
    page.fill("input[name=q]", "train-1")
    expect(page.locator("#nodes-count")).to_have_text("1 node matches")
    page.fill("input[name=q]", "serving")
    expect(page.locator("#nodes-count")).to_have_text("4 nodes match")
    page.fill("input[name=q]", "no-such-node")
    expect(page.locator("#nodes-table")).to_contain_text("No node matches these filters.")


def test_cordon_from_the_node_page_shows_live_on_another_page(dashboard, open_page):
    admin = open_page(dashboard.admin_token).page
    # Another operator's list of cordoned nodes, open before the cordon.
    other = open_page(dashboard.admin_token).page
    other.goto(dashboard.url + "/ui/nodes?status=NODE_STATUS_CORDONED&pool=train")
    expect(other.locator("#nodes-count")).to_be_visible()
    expect(other.locator("tr[data-node=train-03]")).to_have_count(0)
    other.evaluate("window.notReloaded = true")

    admin.click("nav >> text=Nodes")
    admin.fill("input[name=q]", "train-03")
    admin.click("#nodes-table >> text=train-03")
    expect(admin).to_have_url(dashboard.url + "/ui/nodes/train-03")
    expect(admin.locator("#node-status")).to_have_text("active")
    expect(admin.locator("#node-gpus tbody tr")).to_have_count(8)
    expect(admin.locator("#node-gpus")).to_contain_text("°C")

    admin.click("#node-actions button[data-action=cordon]")
    dialog = admin.locator("dialog.confirm")
    expect(dialog).to_be_visible()
    confirm = dialog.locator("button[type=submit]")
    expect(confirm).to_be_disabled()
    dialog.locator("textarea[name=reason]").fill("fan noise on GPU 3, <b>checking</b>")
    confirm.click()
    expect(dialog).to_have_count(0)
    expect(admin.locator("#node-status")).to_have_text("cordoned")
    expect(admin.locator("#node-reason")).to_have_text("fan noise on GPU 3, <b>checking</b>")
    expect(admin.locator("#node-commands")).to_contain_text("cordon")

    expect(other.locator("tr[data-node=train-03]")).to_have_count(1, timeout=LIVE_MS)
    assert other.evaluate("window.notReloaded") is True
    assert dashboard.node("train-03")["status"] == "NODE_STATUS_CORDONED"


def test_an_xid_turns_the_node_unhealthy_and_opens_a_remediation_live(dashboard, open_page):
    node_page = open_page(dashboard.admin_token).page
    node_page.goto(dashboard.url + "/ui/nodes/train-05")
    expect(node_page.locator("#node-health")).to_have_text("healthy")
    remediations = open_page(dashboard.admin_token).page
    remediations.goto(dashboard.url + "/ui/remediations")
    expect(remediations.locator("#remediation-controls")).to_contain_text("train")
    node_page.evaluate("window.notReloaded = true")
    remediations.evaluate("window.notReloaded = true")

    answer = dashboard.fleet.report_xid("train-05", 79, gpu=3)
    assert answer["health"] == "HEALTH_STATUS_UNHEALTHY"

    expect(node_page.locator("#node-health")).to_have_text("unhealthy", timeout=LIVE_MS)
    expect(node_page.locator("#node-reports")).to_contain_text("xid-replace")
    expect(node_page.locator("#node-gpus tbody tr").nth(3)).to_contain_text("XID 79")
    episode = remediations.locator("#remediations-table tr", has_text="train-05")
    expect(episode).to_have_count(1, timeout=LIVE_MS)
    expect(episode).to_contain_text("xid-replace")
    assert node_page.evaluate("window.notReloaded") is True
    assert remediations.evaluate("window.notReloaded") is True


def test_a_viewer_sees_no_buttons_and_the_api_refuses_its_writes(dashboard, open_page):
    watched = open_page(dashboard.viewer_token)
    page = watched.page
    expect(page.locator("#role")).to_have_text("viewer")
    page.goto(dashboard.url + "/ui/nodes/train-07")
    expect(page.locator("#node-status")).to_have_text("active")
    expect(page.locator("#node-gpus tbody tr")).to_have_count(8)
    expect(page.locator("#node-actions button")).to_have_count(0)
    page.goto(dashboard.url + "/ui/remediations")
    expect(page.locator("#remediation-controls")).to_contain_text("train")
    expect(page.locator("main button")).to_have_count(0)

    forced = page.evaluate(
        """async (service) => {
            const session = await (await fetch("/ui/session")).json();
            const response = await fetch(service + "IssueCommand", {
                method: "POST",
                headers: {"Content-Type": "application/json", "X-Navarch-CSRF": session.csrf},
                body: JSON.stringify({nodeId: "train-07", type: "COMMAND_TYPE_CORDON",
                                      reason: "forced"}),
            });
            return {status: response.status, body: await response.json()};
        }""",
        "/navarch.v1.ControlPlaneService/",
    )
    assert forced["status"] == 403, forced
    assert forced["body"]["code"] == "permission_denied"
    # Chromium logs the refused call as a failed resource; that refusal is the point.
    watched.errors[:] = [e for e in watched.errors if "403" not in e]
    assert dashboard.node("train-07")["status"] == "NODE_STATUS_ACTIVE"


def test_values_from_the_fleet_are_shown_as_text_never_as_markup(dashboard, open_page):
    dashboard.admin(
        "IssueCommand",
        {
            "nodeId": "train-09",
            "type": "COMMAND_TYPE_CORDON",
            "reason": '<img src=x onerror="window.pwned=1">',
        },
    )
    page = open_page(dashboard.admin_token).page
    page.goto(dashboard.url + "/ui/nodes/train-09")
    expect(page.locator("#node-reason")).to_have_text('<img src=x onerror="window.pwned=1">')
    page.goto(dashboard.url + "/ui/")
    expect(page.locator("#recent-events")).to_contain_text("onerror")
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_terminate_waits_for_the_node_and_the_page_follows(dashboard, open_page):
    page = open_page(dashboard.admin_token).page
    page.goto(dashboard.url + "/ui/nodes/train-06")
    expect(page.locator("#node-status")).to_have_text("active")
    expect(page.locator("#node-actions button[data-action=uncordon]")).to_be_disabled()
    page.click("#node-actions button[data-action=terminate]")
    dialog = page.locator("dialog.confirm")
    dialog.locator("textarea[name=reason]").fill("retiring the host")
    dialog.locator("button.secondary").click()
    expect(dialog).to_have_count(0)
    assert dashboard.node("train-06")["status"] == "NODE_STATUS_ACTIVE"

    page.click("#node-actions button[data-action=terminate]")
    dialog.locator("textarea[name=reason]").fill("retiring the host")
    dialog.locator("button[type=submit]").click()
    expect(dialog).to_have_count(0)
    # The daemon acknowledges on its next heartbeat; the stream brings the change to the page.
    expect(page.locator("#node-status")).to_have_text("terminated", timeout=LIVE_MS)
    expect(page.locator("#node-commands")).to_contain_text("retiring the host")
    expect(page.locator("#node-actions button:not([disabled])")).to_have_count(0)


def test_an_admin_pauses_and_resumes_a_pools_remediation(dashboard, open_page):
    page = open_page(dashboard.admin_token).page
    page.click("nav >> text=Remediations")
    row = page.locator("#remediation-pools tr", has_text="batch")
    expect(row).to_contain_text("running")
    row.locator("button[data-action=pause]").click()
    dialog = page.locator("dialog.confirm")
    dialog.locator("textarea[name=reason]").fill("provider maintenance")
    dialog.locator("button[type=submit]").click()
    expect(row).to_contain_text("paused")
    controls = dashboard.admin("ListRemediations", {"limit": 1}).get("controls", {})
    assert "batch" in controls.get("pausedPools", [])

    # Resuming records no reason, so the dialog asks for none.
    row.locator("button[data-action=resume]").click()
    expect(dialog.locator("textarea")).to_have_count(0)
    dialog.locator("button[type=submit]").click()
    expect(row).to_contain_text("running")
    controls = dashboard.admin("ListRemediations", {"limit": 1}).get("controls", {})
    assert "batch" not in controls.get("pausedPools", [])


def test_sign_out_ends_the_session(dashboard, open_page):
    page = open_page(dashboard.admin_token).page
    page.click("text=Sign out")
    expect(page).to_have_url(re.compile(r"/ui/signin"))
    page.goto(dashboard.url + "/ui/pools")
    expect(page).to_have_url(re.compile(r"/ui/signin\?next=%2Fui%2Fpools$"))


def test_the_nodes_table_pages_through_the_servers_pages(dashboard, open_page):
    for i in range(1, 61):
        dashboard.admin("RegisterNode", {"nodeId": f"worker-{i:03d}", "labels": {"lab": "bench"}})
    page = open_page(dashboard.admin_token).page
    page.goto(dashboard.url + "/ui/nodes?q=worker-")
    rows = page.locator("#nodes-table tbody tr")
    pager = page.locator(".pager")
    expect(page.locator("#nodes-count")).to_have_text("60 nodes match")
    expect(rows).to_have_count(50)
    expect(pager).to_contain_text("1\u201350 of 60")
    expect(pager.locator("text=Previous")).to_be_disabled()
    first = rows.locator("td:first-child a").all_inner_texts()

    pager.locator("text=Next").click()
    expect(pager).to_contain_text("51\u201360 of 60")
    expect(rows).to_have_count(10)
    expect(pager.locator("text=Next")).to_be_disabled()
    second = rows.locator("td:first-child a").all_inner_texts()
    assert sorted(first + second) == [f"worker-{i:03d}" for i in range(1, 61)]

    pager.locator("text=Previous").click()
    expect(pager).to_contain_text("1\u201350 of 60")
    assert rows.locator("td:first-child a").all_inner_texts() == first
