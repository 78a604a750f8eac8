"""A pool's whole life on a provider, run by the simulator against the provider's (fake) cloud.

    provider = {"type": "moon", "url": cloud.url}
    scenario = pool_lifecycle_scenario(provider, entry={"regions": ["m1"]})
    report = run_scenario(scenario, tmp_path, env={"MOON_API_KEY": "secret"})
    assert report["passed"]
    assert cloud.live() == []

The scenario runs a pool `train` on the provider table `cloud`: the `queue` autoscaler grows it
from 0 to 2 nodes, the first node fails with XID 79 and remediation replaces it through the
provider, and the pool shrinks back to 0. Every machine is booted by the simulator as a real
navarch daemon over simulated GPUs, in real time, since the provider waits on a real HTTP server
that virtual time would skip. The scenario asserts that the pool made three machines and lost
none; a test then checks that its cloud holds no machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_LIFECYCLE = """
name = "pool-lifecycle"
description = "A pool on the provider grows to two nodes, replaces one that fails, and empties."

[config.server]
heartbeat_interval = "1s"
health_check_interval = "1s"

[config.providers.cloud]
{provider}

[config.pools.train]
instance_type = "{instance_type}"
min_nodes = 0
max_nodes = 2
scale_interval = "1s"
[[config.pools.train.providers]]
provider = "cloud"
{entry}
[config.pools.train.autoscaler]
type = "queue"
jobs_per_node = 1
[config.pools.train.scaling.scale_down]
window = "0s"
delay_after_scale_up = "0s"
[config.pools.train.health]
drain_timeout = "2s"

[[events]]
at = "0s"
action = "set_queue_depth"
pool = "train"
depth = 2

[[events]]
at = "0s"
action = "wait_for"
check = "count"
pool = "train"
status = "active"
equals = 2
timeout = "{timeout}"

[[events]]
at = "0s"
action = "inject_failure"
pool = "train"
failure = "xid"
xid = 79

[[events]]
at = "0s"
action = "wait_for"
check = "event"
kind = "remediation.completed"
equals = 1
timeout = "{timeout}"

[[events]]
at = "0s"
action = "wait_for"
check = "count"
pool = "train"
status = "active"
equals = 2
timeout = "{timeout}"

[[events]]
at = "0s"
action = "set_queue_depth"
pool = "train"
depth = 0

# Every node terminated, and with it every machine.
[[events]]
at = "0s"
action = "wait_for"
check = "count"
pool = "train"
status = "terminated"
equals = 3
timeout = "{timeout}"

[[assertions]]
check = "event"
kind = "instance.provisioned"
equals = 3

[[assertions]]
check = "no_lost_instances"
"""


def pool_lifecycle_scenario(
    provider: Mapping[str, Any],
    *,
    instance_type: str = "h100-8x",
    entry: Mapping[str, Any] | None = None,
    timeout: str = "30s",
) -> str:
    """The scenario's TOML: `provider` is the `[providers.cloud]` table (its `type` and
    settings), `entry` the keys of the pool's provider entry besides `provider` (regions, zones,
    spot), and `timeout` how long each step may take."""
    return _LIFECYCLE.format(
        provider=_table(provider),
        entry=_table(entry or {}),
        instance_type=instance_type,
        timeout=timeout,
    )


def run_scenario(
    scenario: str,
    directory: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> dict[str, Any]:
    """Runs the scenario with `navarch sim run --real-time` in a subprocess, as a user would,
    and returns its report (`report.json`, also written to `directory`). Fails the test with the
    run's output when the run fails."""
    path = directory / "scenario.toml"
    path.write_text(scenario)
    command = [sys.executable, "-m", "navarch", "sim", "run", str(path), "--real-time"]
    ran = subprocess.run(
        [*command, "--report", str(directory)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    assert ran.returncode == 0, f"the scenario failed:\n{ran.stdout}{ran.stderr}"
    report: dict[str, Any] = json.loads((directory / "report.json").read_text())
    return report


def _table(values: Mapping[str, Any]) -> str:
    return "\n".join(f"{key} = {_value(value)}" for key, value in values.items())


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f'"{k}" = {_value(v)}' for k, v in value.items()) + " }"
    return json.dumps(str(value))
