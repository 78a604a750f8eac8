"""bench/heartbeats.py at a tiny scale: its phases run against a real control plane, the empty
phase declares no node lost, a restart brings every node back without a new registration, and
the bench leaves no temporary files behind. It prints figures; these tests check none of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "heartbeats.py"


def _bench(tmp_path: Path, *args: str) -> str:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, str(BENCH), "--nodes", "20", "--interval", "0.5", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(scratch.iterdir()) == []
    return done.stdout


def test_the_empty_phase_outlasting_the_heartbeat_timeout_declares_no_node_lost(
    tmp_path: Path,
) -> None:
    # Six intervals without a heartbeat: twice the default timeout.
    out = _bench(tmp_path, "--duration", "3", "--phases", "heartbeat,empty")
    assert "\nheartbeat " in out
    assert "\nempty " in out
    assert "fleet at the end: 20 nodes, 20 active; declared lost by the heartbeat monitor: 0" in out


def test_saturation_overload_and_restart_leave_every_node_active(tmp_path: Path) -> None:
    out = _bench(
        tmp_path,
        *("--duration", "1", "--overload-duration", "1", "--connections", "4"),
        *("--phases", "saturation,overload,restart", "--restart-timeout", "60"),
    )
    assert "\nsaturation " in out
    assert "\noverload " in out
    assert "every node heartbeated and ACTIVE again" in out
    assert "0 auth failures" in out
    for when in ("after overload", "after restart"):
        assert (
            f"fleet {when}: 20 nodes, 20 active; declared lost by the heartbeat monitor: 0; "
            "registered again: 0"
        ) in out


def test_the_empty_phase_is_refused_with_a_restart(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--phases", "empty,restart"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "run those in a separate run" in done.stderr
