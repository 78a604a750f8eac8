"""`navarch sim` as people run it: real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

Navarch = Callable[..., subprocess.CompletedProcess[str]]
REPO = Path(__file__).resolve().parents[2]
GPU_FAILURE = str(REPO / "scenarios" / "gpu-failure.toml")


def test_validate_summarizes_a_scenario(navarch: Navarch) -> None:
    result = navarch("sim", "validate", GPU_FAILURE)
    assert result.returncode == 0, result.stderr
    assert "inject xid 79 on node-1 gpu 3" in result.stdout
    assert result.stdout.rstrip().endswith("gpu-failure.toml: valid")


def test_validate_lists_every_problem_and_exits_2(navarch: Navarch, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "bad"\n[[fleet]]\nid = "a"\n[[events]]\nat = "1s"\naction = "inject_failure"\n'
        'node = "a"\nfailure = "xid"\nxid = "79"\n[[events]]\nat = "1s"\naction = "wiat_for"\n'
    )
    result = navarch("sim", "validate", str(bad))
    assert result.returncode == 2
    assert f'{bad}: events[0] (inject_failure).xid: expected an integer, got "79"' in result.stderr
    assert "events[1].action: expected one of start_fleet" in result.stderr
    assert result.stdout == ""


def test_run_writes_the_same_report_in_every_process(navarch: Navarch, tmp_path: Path) -> None:
    # A small run of the 1,000-node stress scenario: chaos, cascades, recoveries, replacements,
    # and many timers that fall due at the same instant.
    small = [
        "fleet_gen.total_nodes=120",
        "config.pools.train.min_nodes=120",
        "config.pools.train.max_nodes=140",
        "events.1.min=120",
        "assertions.0.min=100",
        "chaos.failure_rate=40",
        "duration=6m",
    ]
    reports = []
    for hash_seed in ("1", "2"):
        out = tmp_path / hash_seed
        result = navarch(
            "sim",
            "run",
            str(REPO / "scenarios" / "stress-1000.toml"),
            "--report",
            str(out),
            *(arg for override in small for arg in ("--set", override)),
            env={"PYTHONHASHSEED": hash_seed},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        reports.append((out / "report.json").read_bytes())
        html = (out / "report.html").read_text()
        assert "stress-1000" in html and "<svg" in html
    assert reports[0] == reports[1]
    report = json.loads(reports[0])
    assert report["passed"] is True
    assert report["summary"]["failures_injected"] > 20
    assert report["summary"]["replacements"] > 0


def test_a_failing_assertion_exits_1_and_says_why(navarch: Navarch) -> None:
    result = navarch(
        "sim",
        "run",
        GPU_FAILURE,
        "--seed",
        "3",
        "--set",
        'assertions.0.status="cordoned"',
    )
    assert result.returncode == 1
    assert (
        "FAIL assertions[0]: node node-2 is cordoned: expected node node-2 is cordoned; "
        "node node-2 is active"
    ) in result.stdout
    assert "seed 3" in result.stdout


def test_interactive_serves_a_fleet_that_the_cli_can_use(navarch: Navarch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "navarch", "sim", "interactive", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        assert banner.startswith(f"navarch simulator: control plane at {url} with 2 nodes")
        lines = [process.stdout.readline() for _ in range(7)]
        assert f"  navarch list --server {url}\n" in lines
        for _ in range(50):
            listed = navarch("list", "--server", url, "-o", "json")
            assert listed.returncode == 0, listed.stderr
            nodes = json.loads(listed.stdout)
            if len(nodes) == 2:
                break
        assert sorted(n["nodeId"] for n in nodes) == ["node-1", "node-2"]
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert out.strip().endswith("stopped")
