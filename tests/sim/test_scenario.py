"""Scenario files: what a valid one becomes, and every problem of a bad one, with its key path."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from navarch.errors import ConfigError
from navarch.sim.scenario import FleetGen, Template, generate_fleet, parse_scenario

MINIMAL = """
name = "small"
[[fleet]]
id = "node-1"
[[fleet]]
id = "node-2"
provider = "aws"
zone = "us-east1-b"
[[events]]
at = "0s"
action = "start_fleet"
"""


def problems(text: str, *overrides: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_scenario(text, "s.toml", overrides)
    return caught.value.problems


def test_a_valid_scenario_names_a_simulated_provider_for_each_provider_of_the_fleet() -> None:
    scenario = parse_scenario(MINIMAL)
    assert [n.id for n in scenario.fleet] == ["node-1", "node-2"]
    assert scenario.providers == ("aws", "sim")
    assert {name: t.type for name, t in scenario.config.providers.items()} == {
        "aws": "fake",
        "sim": "fake",
    }
    assert scenario.events[0].action == "start_fleet"


def test_events_run_in_time_order_and_keep_their_place_in_the_file() -> None:
    scenario = parse_scenario(
        MINIMAL
        + """
[[events]]
at = "2m"
action = "log"
message = "late"
[[events]]
at = "1m"
action = "log"
message = "early"
"""
    )
    assert [(e.index, e.message) for e in scenario.events] == [(0, ""), (2, "early"), (1, "late")]


def test_every_problem_is_reported_with_its_key_path_and_event_index() -> None:
    found = problems(
        """
name = "bad"
durration = "5m"
[[fleet]]
id = "a"
[[fleet]]
id = "b"
gpu_count = "8"
[[fleet]]
id = "a"
[[events]]
at = "10"
action = "inject_failure"
node = "b"
failure = "xid"
[[events]]
at = "1s"
action = "wait_for"
check = "node_status"
node = "a"
statsu = "active"
[[events]]
at = "1s"
action = "explode"
[[assertions]]
check = "count"
[config.server]
heartbeat_interval = 5
"""
    )
    assert found == [
        "durration: unknown key (did you mean 'duration'?)",
        'fleet[1].gpu_count: expected an integer, got "8"',
        "fleet[2].id: 'a' is used by an earlier node",
        'events[0] (inject_failure).at: expected a duration such as "500ms", "30s", "5m", '
        '"1h30m" or "1d", got "10"',
        "events[1] (wait_for).status: required for check 'node_status'",
        "events[1] (wait_for).statsu: unknown key (did you mean 'status'?)",
        "events[2].action: expected one of start_fleet, stop_fleet, start_node, stop_node, "
        "inject_failure, recover_failure, issue_command, set_utilization, set_queue_depth, "
        "wait_for, assert, log, got 'explode'",
        "assertions[0]: check 'count' needs equals, min or max",
        'config.server.heartbeat_interval: a duration needs a unit, like "5s"; got 5',
    ]


def test_references_to_nodes_pools_and_outage_targets_must_exist() -> None:
    found = problems(
        MINIMAL
        + """
[[events]]
at = "1s"
action = "inject_failure"
node = "node-9"
failure = "xid"
xid = 79
[[events]]
at = "1s"
action = "set_queue_depth"
pool = "missing"
depth = 3
[[assertions]]
check = "pool_size"
pool = "missing"
min = 1
[chaos]
[[chaos.outages]]
name = "zone down"
start = "1m"
duration = "1m"
scope = "zone"
target = "us-west1-a"
"""
    )
    assert found == [
        "events[1] (inject_failure).node: no node 'node-9' in the fleet",
        "events[2] (set_queue_depth).pool: no pool 'missing' (pools: none)",
        "assertions[0].pool: no pool 'missing' (pools: none)",
        "chaos.outages[0].target: no zone 'us-west1-a' in the fleet (zones: local-a, us-east1-b)",
    ]


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        (
            'failure = "xid"',
            "events[1] (inject_failure).xid: required for an xid failure",
        ),
        (
            'failure = "thermal"\nxid = 79',
            "events[1] (inject_failure).xid: only an xid failure takes an XID code",
        ),
        (
            'failure = "network_partition"\ngpu = 1',
            "events[1] (inject_failure).gpu: a network_partition failure is not on one GPU",
        ),
        (
            'failure = "melt"',
            'events[1] (inject_failure).failure: expected "xid", "thermal", "ecc", '
            '"remap_failure", "nvlink_down", "gpu_lost", "recovery_action", "nvlink_errors", '
            '"pcie_downgrade", "boot_failure", "network_partition", "heartbeat_stop", '
            '"preemption", "ib_port_down" or "diagnostic_failure", got "melt"',
        ),
        (
            'failure = "xid"\nxid = 1000',
            "events[1] (inject_failure).xid: expected an XID code from 1 to 999, got 1000",
        ),
    ],
)
def test_inject_failure_checks_what_each_failure_needs(event: str, problem: str) -> None:
    text = MINIMAL + f'[[events]]\nat = "1s"\naction = "inject_failure"\nnode = "node-1"\n{event}\n'
    assert problems(text) == [problem]


def test_a_provider_type_that_no_plugin_registers_is_refused() -> None:
    text = MINIMAL + '[config.providers.moon]\ntype = "moon"\n'
    found = problems(text)
    assert any(
        p.startswith('config.providers.moon.type: no provider plugin named "moon"') for p in found
    )


def test_overrides_change_the_table_before_it_is_checked() -> None:
    scenario = parse_scenario(
        MINIMAL, overrides=["duration=5m", "fleet.1.gpu_count=4", 'events.0.at="10s"']
    )
    assert scenario.duration == timedelta(minutes=5)
    assert scenario.fleet[1].gpu_count == 4
    assert scenario.events[0].at == timedelta(seconds=10)
    assert problems(MINIMAL, "fleet.5.id=x", "novalue") == [
        "--set fleet.5.id: fleet has no item 5 (it has 2)",
        "--set 'novalue': expected KEY=VALUE",
    ]


def test_a_generated_fleet_follows_the_weights_and_fills_racks_in_order() -> None:
    gen = FleetGen(
        total_nodes=400,
        templates=(Template(name="big", weight=3), Template(name="small", weight=1, gpu_count=4)),
        providers={"gcp": 1.0, "aws": 1.0},
        regions={"us-central1": 1.0},
        rack_size=10,
    )
    fleet = generate_fleet(gen, random.Random(1))
    assert fleet == generate_fleet(gen, random.Random(1))
    assert [n.id for n in fleet[:2]] == ["node-00001", "node-00002"]
    small = sum(1 for n in fleet if n.labels["navarch.io/template"] == "small")
    assert 60 < small < 140  # a quarter of 400, give or take
    assert {n.zone for n in fleet} == {"us-central1-a", "us-central1-b", "us-central1-c"}
    by_rack: dict[str, int] = {}
    for node in fleet:
        by_rack[node.rack] = by_rack.get(node.rack, 0) + 1
    assert max(by_rack.values()) == 10
    assert all(n.rack.startswith(n.zone) for n in fleet)
