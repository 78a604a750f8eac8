"""Runs of scenarios against the real control plane and real daemons, in virtual time."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from navarch.sim.runner import run_scenario
from navarch.sim.scenario import parse_scenario

FAST = """
[config.server]
heartbeat_interval = "5s"
health_check_interval = "10s"
"""


def run(text: str, seed: int | None = None, **kwargs: Any) -> dict[str, Any]:
    return run_scenario(parse_scenario(text, "test.toml"), seed=seed, **kwargs)


def fleet(*ids: str, **fields: str) -> str:
    extra = "".join(f'{key} = "{value}"\n' for key, value in fields.items())
    return "".join(f'[[fleet]]\nid = "{node}"\n{extra}' for node in ids)


def failed(report: dict[str, Any]) -> list[str]:
    return [f"{a['source']}: {a['message']}" for a in report["assertions"] if not a["passed"]]


CHAOS = (
    'name = "chaos"\nduration = "10m"\n'
    + FAST
    + """
[fleet_gen]
total_nodes = 100
rack_size = 10
[[fleet_gen.templates]]
name = "h100"
[fleet_gen.regions]
us-central1 = 1
[[events]]
at = "0s"
action = "start_fleet"
[chaos]
failure_rate = 100
[chaos.failure_types]
xid = 3
thermal = 1
[chaos.cascade]
probability = 0.5
scope = "rack"
max_depth = 2
[[chaos.correlated]]
trigger = "thermal"
response = "xid"
response_xid = 79
delay = "20s"
[chaos.recovery]
probability = 1.0
mean = "2m"
[[chaos.outages]]
name = "zone b"
start = "3m"
duration = "2m"
scope = "zone"
target = "us-central1-b"
"""
)


@functools.cache
def chaos_report(seed: int, duration: str = "10m") -> dict[str, Any]:
    return run_scenario(parse_scenario(CHAOS, "test.toml", [f"duration={duration}"]), seed=seed)


def test_one_seed_gives_the_same_report_and_another_seed_another() -> None:
    first = chaos_report(7, "5m")
    again = run(CHAOS.replace('duration = "10m"', 'duration = "5m"'), seed=7)
    other = chaos_report(8, "5m")
    assert json.dumps(first) == json.dumps(again)
    assert first["failures"] != other["failures"]


def test_chaos_follows_its_rate_cascades_correlations_outages_and_recoveries() -> None:
    report = chaos_report(3)
    failures = {f["id"]: f for f in report["failures"]}
    random_ones = [f for f in failures.values() if f["source"] == "chaos"]
    # 100 per 1,000 nodes per minute over 100 nodes for 10 minutes: 100, give or take.
    assert 60 <= len(random_ones) <= 140
    cascades = [f for f in failures.values() if f["source"] == "cascade"]
    assert cascades
    for f in cascades:
        cause = failures[f["cause"]]
        assert f["t"] > cause["t"]
        assert f["type"] == cause["type"] and f["xid"] == cause["xid"]
    correlated = [f for f in failures.values() if f["source"] == "correlated"]
    assert correlated
    for f in correlated:
        cause = failures[f["cause"]]
        assert cause["type"] == "thermal"
        assert (f["type"], f["xid"], f["node"]) == ("xid", 79, cause["node"])
        assert f["t"] == pytest.approx(cause["t"] + 20)
    outage = [f for f in failures.values() if f["source"] == "outage"]
    assert report["outages"][0]["nodes"] == len(outage) > 0
    assert {f["t"] for f in outage} == {180.0}
    assert {f["recovered_at"] for f in outage} == {300.0}
    assert report["summary"]["failures_recovered"] > len(outage)


def test_cascades_stay_in_the_rack_of_their_cause() -> None:
    report = chaos_report(3)
    failures = {f["id"]: f for f in report["failures"]}
    rack = {spec.id: spec.rack for spec in parse_scenario(CHAOS).fleet}
    for f in failures.values():
        if f["source"] == "cascade":
            assert rack[f["node"]] == rack[failures[f["cause"]]["node"]]


def test_each_failure_type_reaches_the_health_the_default_policy_gives_it() -> None:
    kinds = {
        "n-xid": 'failure = "xid"\nxid = 48',
        "n-thermal": 'failure = "thermal"',
        "n-ecc": 'failure = "ecc"',
        "n-remap": 'failure = "remap_failure"',
        "n-nvlink": 'failure = "nvlink_down"',
        "n-lost": 'failure = "gpu_lost"',
        "n-boot": 'failure = "boot_failure"',
        "n-part": 'failure = "network_partition"',
        "n-hb": 'failure = "heartbeat_stop"',
    }
    text = 'name = "kinds"\nduration = "2m"\n' + FAST + fleet(*kinds)
    text += '[[events]]\nat = "0s"\naction = "start_fleet"\n'
    for node, failure in kinds.items():
        text += f'[[events]]\nat = "20s"\naction = "inject_failure"\nnode = "{node}"\n{failure}\n'
    report = run(text)
    outcome = {f["node"]: (f["outcome"], f["detection_latency_s"]) for f in report["failures"]}
    assert outcome == {
        # Streamed as it happens; the policy answers XID 48 with a GPU reset, which clears it.
        "n-xid": ("recovered", 0.0),
        "n-lost": ("unhealthy", 0.0),
        # Found by the next health check, within its 10-second interval.
        "n-thermal": ("unhealthy", 10.0),
        # A double-bit ECC error: reset too.
        "n-ecc": ("recovered", 10.0),
        "n-remap": ("unhealthy", 10.0),
        "n-nvlink": ("degraded", 10.0),
        # The machine reboots without its GPUs.
        "n-boot": ("unhealthy", 0.0),
        # Silent for the heartbeat timeout (three intervals of 5 s, checked every interval).
        "n-part": ("unhealthy", 16.0),
        "n-hb": ("unhealthy", 16.0),
    }


def test_a_recovered_partition_lets_the_node_report_again() -> None:
    text = 'name = "partition"\nduration = "3m"\n' + FAST + fleet("node-1")
    text += """
[[events]]
at = "0s"
action = "start_fleet"
[[events]]
at = "10s"
action = "inject_failure"
node = "node-1"
failure = "network_partition"
[[events]]
at = "11s"
action = "wait_for"
check = "node_status"
node = "node-1"
status = "unhealthy"
[[events]]
at = "1m"
action = "recover_failure"
node = "node-1"
[[events]]
at = "1m"
action = "wait_for"
check = "event"
kind = "node.heartbeat_resumed"
node = "node-1"
timeout = "1m"
"""
    report = run(text)
    assert failed(report) == []
    assert report["failures"][0]["outcome"] == "recovered"


def test_a_wrong_assertion_fails_the_run_and_says_what_was_seen() -> None:
    text = 'name = "wrong"\n' + FAST + fleet("node-1", "node-2")
    text += """
[[events]]
at = "0s"
action = "start_fleet"
[[events]]
at = "30s"
action = "assert"
check = "count"
status = "active"
equals = 3
[[assertions]]
check = "node_status"
node = "node-1"
status = "cordoned"
[[assertions]]
check = "node_health"
node = "node-2"
health = "healthy"
"""
    report = run(text)
    assert report["passed"] is False
    assert failed(report) == [
        "events[1]: expected nodes active: = 3; counted 2",
        "assertions[0]: expected node node-1 is cordoned; node node-1 is active",
    ]
    assert report["summary"]["assertions_passed"] == 1


def test_a_wait_that_times_out_fails_the_run_and_skips_the_rest_of_the_script() -> None:
    text = 'name = "timeout"\n' + FAST + fleet("node-1")
    text += """
[[events]]
at = "0s"
action = "start_fleet"
[[events]]
at = "1s"
action = "wait_for"
check = "node_status"
node = "node-1"
status = "drained"
timeout = "30s"
[[events]]
at = "2m"
action = "log"
message = "never logged"
"""
    report = run(text)
    assert failed(report) == [
        "events[1]: timed out after 30s: node node-1 is active; the remaining events did not run"
    ]
    assert report["duration_s"] == 31.0
    assert "never logged" not in json.dumps(report["timeline"])


def test_commands_utilization_and_queue_depth_reach_the_control_plane() -> None:
    text = (
        'name = "operate"\n'
        + FAST
        + fleet("node-1", "node-2", pool="work")
        + """
[config.pools.work]
instance_type = "sim-8x"
min_nodes = 2
max_nodes = 4
scale_interval = "10s"
[[config.pools.work.providers]]
provider = "sim"
[config.pools.work.autoscaler]
type = "queue"
jobs_per_node = 10
[config.pools.work.scaling.scale_down]
window = "0s"
delay_after_scale_up = "0s"
[[events]]
at = "0s"
action = "start_fleet"
[[events]]
at = "10s"
action = "issue_command"
node = "node-1"
command = "cordon"
[[events]]
at = "11s"
action = "wait_for"
check = "node_status"
node = "node-1"
status = "cordoned"
[[events]]
at = "20s"
action = "set_queue_depth"
pool = "work"
depth = 40
[[events]]
at = "21s"
action = "wait_for"
check = "pool_size"
pool = "work"
equals = 4
timeout = "2m"
[[events]]
at = "3m"
action = "set_queue_depth"
pool = "work"
depth = 0
[[events]]
at = "3m"
action = "wait_for"
check = "pool_size"
pool = "work"
equals = 2
timeout = "5m"
[[assertions]]
check = "event"
kind = "pool.scaled"
min = 2
"""
    )
    report = run(text)
    assert failed(report) == []
    sizes = [s["pools"]["work"] for s in report["samples"]]
    assert max(sizes) == 4 and sizes[-1] == 2
    scaled = [(d["from"], d["to"]) for d in report["scaling"] if d["kind"] == "pool.scaled"]
    assert scaled[0][0] < scaled[0][1] and scaled[-1] == (4, 2)


def test_a_provider_outage_refuses_provisioning_until_it_ends() -> None:
    text = (
        'name = "outage"\nduration = "6m"\n'
        + FAST
        + fleet("node-1", pool="work", provider="sim", zone="z-a")
        + """
[config.providers.sim]
provision_delay = "10s"
[config.pools.work]
instance_type = "sim-8x"
min_nodes = 2
max_nodes = 2
scale_interval = "10s"
[[config.pools.work.providers]]
provider = "sim"
[[events]]
at = "0s"
action = "start_fleet"
[chaos]
[[chaos.outages]]
name = "sim API down"
start = "0s"
duration = "3m"
scope = "provider"
target = "sim"
failure = "heartbeat_stop"
[[assertions]]
check = "pool_size"
pool = "work"
equals = 2
[[assertions]]
check = "event"
kind = "pool.provision_failed"
min = 1
"""
    )
    report = run(text)
    assert failed(report) == []
    provisioned = [
        line["t"] for line in report["timeline"] if line["kind"] == "instance.provisioned"
    ]
    assert provisioned and min(provisioned) >= 180


def test_real_time_runs_the_daemons_over_loopback_http() -> None:
    text = (
        'name = "real"\n[config.server]\nheartbeat_interval = "1s"\nhealth_check_interval = "1s"\n'
        + fleet("node-1", "node-2")
        + """
[[events]]
at = "0s"
action = "start_fleet"
[[events]]
at = "0s"
action = "wait_for"
check = "count"
status = "active"
equals = 2
timeout = "10s"
[[events]]
at = "1s"
action = "inject_failure"
node = "node-2"
failure = "xid"
xid = 79
[[events]]
at = "1s"
action = "wait_for"
check = "node_health"
node = "node-2"
health = "unhealthy"
timeout = "10s"
"""
    )
    urls = []
    report = run(text, real_time=True, on_ready=urls.append)
    assert failed(report) == []
    assert report["mode"] == "real-time"
    assert urls[0].startswith("http://127.0.0.1:")
