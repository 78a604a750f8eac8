"""`navarch pools`, `pool get`, `pool scale` and `pools report-queue` over loopback HTTP."""

from __future__ import annotations

import json

from support.live_control_plane import LiveControlPlane
from support.pool_config import FAILOVER_POOL
from support.waiting import wait_for

from navarch.config import parse_config
from navarch.plugins.manager import load_plugins

CONFIG = FAILOVER_POOL


def test_pool_commands(tmp_path, monkeypatch, run) -> None:
    config = parse_config(CONFIG, plugins=load_plugins(entry_points=False))
    with LiveControlPlane(tmp_path / "navarch.db", config=config) as live:
        monkeypatch.setenv("NAVARCH_SERVER", live.url)

        def healthy() -> int:
            code, out, _ = run("pools", "-o", "json")
            assert code == 0
            return json.loads(out)[0].get("healthy", 0) == 2

        def running() -> bool:
            pool = json.loads(run("pool", "get", "dev", "-o", "json")[1])
            return [i["status"] for i in pool.get("instances", [])] == ["running", "running"]

        wait_for("two healthy nodes", healthy)
        wait_for("two running instances", running)
        code, out, err = run("pools")
        assert code == 0, err
        header = out.splitlines()[0]
        assert "POOL" in header and "IN FLIGHT" in header
        assert "dev" in out and "2-4" in out

        code, out, err = run("pool", "get", "dev")
        assert code == 0, err
        assert "Healthy:" in out
        assert "BLOCKED PROVIDER" in out and "capacity" in out
        assert out.count("running") == 2

        code, out, err = run("pool", "scale", "dev", "3")
        assert code == 0, err
        assert "holding at least 3 nodes" in out
        wait_for(
            "three healthy nodes",
            lambda: json.loads(run("pool", "get", "dev", "--json")[1]).get("healthy") == 3,
        )

        code, _, err = run("pool", "scale", "dev", "9")
        assert code != 0
        assert "expected 2 to 4" in err and "\n" not in err.strip()

        code, out, err = run("pools", "report-queue", "dev", "12")
        assert code == 0, err
        assert json.loads(run("pool", "get", "dev", "-o", "json")[1])["queueDepth"] == 12

        code, _, err = run("pool", "get", "nope")
        assert code != 0
        assert "pool 'nope' is not configured" in err
