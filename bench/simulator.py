"""Wall time and memory of the fleet simulator on the stress scenarios.

Runs each scenario at full size with `navarch sim run FILE --report DIR` in a child process, one
after the other, and prints per scenario the nodes of its fleet, the nodes started during the run
(replacements included), the simulated duration, the wall time, the child's CPU time (user and
system; on a shared machine the steadier figure), the simulated-to-wall ratio, the child's peak
RSS, and from report.json the failures injected, the remediations completed, the replacements and
whether every assertion held. The stress scenarios are stress-1000 (1,000 nodes, 10 minutes),
stress-5000 (5,000 nodes, 30 minutes) and stress-10000 (10,000 nodes, an hour; several minutes
of wall time).

With `--profile OUT`, it measures nothing and instead runs a reduced copy of the first scenario
(`--profile-nodes` nodes, with the pool size and the node-count checks scaled to match) under
cProfile, and writes the profile to OUT, to read with `python -m pstats OUT`.

To run it:

    .venv/bin/python bench/simulator.py
    .venv/bin/python bench/simulator.py --scenario scenarios/stress-10000.toml
    .venv/bin/python bench/simulator.py --scenario scenarios/stress-5000.toml --profile sim.prof
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from navarch.sim.scenario import load_scenario

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = (
    "scenarios/stress-1000.toml",
    "scenarios/stress-5000.toml",
    "scenarios/stress-10000.toml",
)


def _run(command: list[str]) -> tuple[int, float, float, float]:
    """Runs `command`; returns its exit status, wall seconds, CPU seconds and peak RSS in MiB."""
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
    # wait4 gives this child's own peak RSS, where RUSAGE_CHILDREN would give the largest of all.
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    return child.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _sim_run(scenario: str, overrides: list[str], report_dir: str) -> list[str]:
    command = [sys.executable, "-m", "navarch", "sim", "run", scenario, "--report", report_dir]
    for override in overrides:
        command += ["--set", override]
    return command


def scaled_overrides(scenario: str, nodes: int) -> list[str]:
    """Overrides that shrink a generated fleet to `nodes`, its pool and its node counts with it."""
    data = tomllib.loads((REPO / scenario).read_text())
    total = data["fleet_gen"]["total_nodes"]
    pool = data["fleet_gen"]["pool"]
    settings = data["config"]["pools"][pool]
    overrides = [
        f"fleet_gen.total_nodes={nodes}",
        f"config.pools.{pool}.min_nodes={nodes}",
        f"config.pools.{pool}.max_nodes={math.ceil(settings['max_nodes'] * nodes / total)}",
    ]
    for key in ("events", "assertions"):
        for i, item in enumerate(data.get(key, [])):
            if item.get("check") in ("count", "pool_size") and "min" in item:
                overrides.append(f"{key}.{i}.min={item['min'] * nodes // total}")
    if "batch_size" in data.get("startup", {}):
        batch = data["startup"]["batch_size"]
        overrides.append(f"startup.batch_size={max(1, batch * nodes // total)}")
    return overrides


def measure(scenario: str, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="navarch-bench-sim-") as report_dir:
        status, wall, cpu, rss = _run(_sim_run(scenario, overrides, report_dir))
        path = Path(report_dir) / "report.json"
        if not path.exists():
            raise SystemExit(f"{scenario}: navarch sim run exited with {status} and no report")
        report = json.loads(path.read_text())
    summary = report["summary"]
    return {
        "scenario": report["scenario"]["name"],
        "nodes": len(load_scenario(REPO / scenario, overrides).fleet),
        "started": summary["nodes_started"],
        "simulated": report["duration_s"],
        "wall": wall,
        "cpu": cpu,
        "rss": rss,
        "failures": summary["failures_injected"],
        "remediations": summary["remediations_completed"],
        "replacements": summary["replacements"],
        "passed": report["passed"],
    }


def profile(scenario: str, nodes: int, overrides: list[str], out: str) -> None:
    overrides = scaled_overrides(scenario, nodes) + overrides
    with tempfile.TemporaryDirectory(prefix="navarch-bench-sim-") as report_dir:
        command = _sim_run(scenario, overrides, report_dir)
        command[1:1] = ["-m", "cProfile", "-o", str(Path(out).resolve())]
        status, wall, _, _ = _run(command)
    print(
        f"profile of {scenario} with {nodes} nodes written to {out} "
        f"({wall:.1f}s wall under cProfile, exit status {status})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario",
        action="append",
        help="scenario file, repeatable; default: the three stress scenarios",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to every `navarch sim run` as --set KEY=VALUE",
    )
    parser.add_argument("--profile", metavar="OUT", help="write a cProfile of a reduced run here")
    parser.add_argument(
        "--profile-nodes", type=int, default=300, help="fleet size of the profiled run"
    )
    args = parser.parse_args()
    scenarios = args.scenario or list(SCENARIOS)

    if args.profile:
        profile(scenarios[0], args.profile_nodes, args.overrides, args.profile)
        return
    print(
        f"{'scenario':<12} {'nodes':>6} {'started':>7} {'simulated':>9} {'wall':>8} {'CPU':>8} "
        f"{'ratio':>6} "
        f"{'peak RSS':>9} {'failures':>8} {'remediated':>10} {'replaced':>8} {'result':>6}"
    )
    for scenario in scenarios:
        r = measure(scenario, args.overrides)
        print(
            f"{r['scenario']:<12} {r['nodes']:6d} {r['started']:7d} {r['simulated']:8.0f}s "
            f"{r['wall']:7.1f}s {r['cpu']:7.1f}s {r['simulated'] / r['wall']:5.0f}x "
            f"{r['rss']:6.0f} MiB "
            f"{r['failures']:8d} {r['remediations']:10d} {r['replacements']:8d} "
            f"{'pass' if r['passed'] else 'FAIL':>6}",
            flush=True,
        )


if __name__ == "__main__":
    main()
