"""`navarch remediation`, against a real daemon whose simulated GPU falls off the bus."""

from __future__ import annotations

import json

from support.live_control_plane import LiveControlPlane
from support.waiting import wait_for

from navarch.config import parse_config
from navarch.daemon.checks import load_health_checks
from navarch.daemon.config import DaemonConfig
from navarch.plugins.manager import load_plugins

CONFIG = """
[providers.fake]
type = "fake"

[pools.dev]
instance_type = "h100-8x"
min_nodes = 2
max_nodes = 4
scale_interval = "1s"

[[pools.dev.providers]]
provider = "fake"
"""


def test_a_gpu_that_falls_off_the_bus_is_replaced_and_operators_steer(
    tmp_path, monkeypatch, run
) -> None:
    plugins = load_plugins(entry_points=False)
    config = parse_config(CONFIG, plugins=plugins)
    with LiveControlPlane(tmp_path / "navarch.db", config=config) as live:
        monkeypatch.setenv("NAVARCH_SERVER", live.url)
        checks = load_health_checks(plugins, DaemonConfig(node_id="gpu-1"))
        daemon = live.start_daemon("gpu-1", pool="dev", health_checks=checks)
        live.call(_inject_xid_79, daemon)

        def done() -> dict | None:
            code, out, err = run("remediation", "list", "-o", "json")
            assert code == 0, err
            found = json.loads(out).get("remediations", [])
            return found[0] if found and found[0]["step"] == "REMEDIATION_STEP_DONE" else None

        episode = done() or wait_for("the episode to be done", done, timeout=60)
        assert (episode["nodeId"], episode["pool"], episode["rule"]) == (
            "gpu-1",
            "dev",
            "xid-replace",
        )
        code, out, err = run("remediation", "list")
        assert code == 0, err
        assert "gpu-1" in out and "done" in out and "open breakers: none" in out

        code, out, err = run("remediation", "pause", "dev", "--reason", "maintenance")
        assert code == 0, err
        assert "paused: dev" in out
        code, out, err = run("remediation", "resume", "dev")
        assert "paused: none" in out
        code, _, err = run("remediation", "reset", "dev")
        assert code != 0
        assert "circuit breaker of pool dev is not open" in err
        code, _, err = run("remediation", "cancel", episode["episodeId"])
        assert code != 0
        assert "has ended (done)" in err


async def _inject_xid_79(daemon) -> None:
    daemon._backend.inject_xid(0, 79, "GPU has fallen off the bus")
