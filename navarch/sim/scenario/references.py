"""The checks that span parts of a scenario, run once every part has been read.

Events, assertions and outages name nodes, pools, zones and providers that only the fleet (listed
or generated) and the configuration define, and an event's time and GPU must fit the scenario's
duration and its node.
"""

from __future__ import annotations

from navarch.durations import format_duration
from navarch.sim.scenario.model import Scenario


def check_references(scenario: Scenario, problems: list[str]) -> None:
    nodes = {spec.id for spec in scenario.fleet}
    pools = set(scenario.config.pools)
    for i, spec in enumerate(scenario.fleet):
        if spec.pool and spec.pool not in pools:
            problems.append(f"fleet[{i}].pool: no pool {spec.pool!r} in [config.pools]")

    def known_node(node: str, path: str) -> None:
        # Nodes a pool provisions have ids the simulator cannot know in advance.
        if node and node not in nodes:
            problems.append(f"{path}.node: no node {node!r} in the fleet")

    gpus = {spec.id: spec.gpu_count for spec in scenario.fleet}

    def known_pool(pool: str, path: str) -> None:
        if pool and pool not in pools:
            listed = ", ".join(sorted(pools)) or "none"
            problems.append(f"{path}.pool: no pool {pool!r} (pools: {listed})")

    for event in scenario.events:
        path = f"events[{event.index}] ({event.action})"
        known_node(event.node, path)
        known_pool(event.pool, path)
        if event.gpu is not None and event.node in gpus and event.gpu >= gpus[event.node]:
            problems.append(
                f"{path}.gpu: node {event.node} has {gpus[event.node]} GPUs (0 to "
                f"{gpus[event.node] - 1}), got {event.gpu}"
            )
        if scenario.duration is not None and event.at > scenario.duration:
            problems.append(
                f"{path}.at: {format_duration(event.at)} is after the scenario's duration "
                f"({format_duration(scenario.duration)})"
            )
        if event.condition is not None:
            known_node(event.condition.node, path)
            known_pool(event.condition.pool, path)
        if event.action == "start_fleet" and not scenario.fleet:
            problems.append(f"{path}: the scenario has no fleet to start")
    for i, condition in enumerate(scenario.assertions):
        known_node(condition.node, f"assertions[{i}]")
        known_pool(condition.pool, f"assertions[{i}]")
    if scenario.chaos is not None:
        for i, outage in enumerate(scenario.chaos.outages):
            values = {
                "zone": {s.zone for s in scenario.fleet},
                "region": {s.region for s in scenario.fleet},
                "provider": set(scenario.providers),
            }[outage.scope]
            if outage.target not in values:
                listed = ", ".join(sorted(values)) or "none"
                problems.append(
                    f"chaos.outages[{i}].target: no {outage.scope} {outage.target!r} in the "
                    f"fleet ({outage.scope}s: {listed})"
                )
    if not scenario.fleet and not scenario.config.pools:
        problems.append("fleet: the scenario has no fleet and no pools")
