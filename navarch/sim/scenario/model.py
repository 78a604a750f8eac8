"""The scenario as a whole, as the runner takes it once every part is read and checked.

`summarize` is what `navarch sim validate` prints about one; `interactive_scenario` is the one that
`navarch sim interactive` runs, which no file describes.
"""

from __future__ import annotations

from datetime import timedelta

from attrs import field, frozen

from navarch.config import Config, config_from_data
from navarch.durations import format_duration
from navarch.sim.scenario.chaos import Chaos
from navarch.sim.scenario.conditions import Condition
from navarch.sim.scenario.events import Event
from navarch.sim.scenario.fleet import NodeSpec, Startup


@frozen(kw_only=True)
class Scenario:
    name: str
    description: str = ""
    source: str = "<scenario>"
    seed: int = 1
    # How long the run lasts; unset: until the last event is done.
    duration: timedelta | None = None
    # Every how long the report samples the fleet.
    sample_interval: timedelta = timedelta(seconds=10)
    fleet: tuple[NodeSpec, ...] = ()
    startup: Startup = field(factory=Startup)
    config: Config = field(factory=Config)
    events: tuple[Event, ...] = ()
    chaos: Chaos | None = None
    assertions: tuple[Condition, ...] = ()
    # Provider names that the fleet and the pools use, each run as a simulated provider.
    providers: tuple[str, ...] = ()

    def node(self, node_id: str) -> NodeSpec | None:
        return next((n for n in self.fleet if n.id == node_id), None)

    @property
    def infiniband(self) -> bool:
        """Whether the run takes InfiniBand ports down, so daemons check their simulated ports."""
        if any(e.failure == "ib_port_down" for e in self.events):
            return True
        return self.chaos is not None and self.chaos.failure_types.get("ib_port_down", 0) > 0

    @property
    def diagnostics(self) -> bool:
        """Whether the run fails diagnostics, so daemons run a simulated DCGM diagnostic."""
        if any(e.failure == "diagnostic_failure" for e in self.events):
            return True
        return self.chaos is not None and self.chaos.failure_types.get("diagnostic_failure", 0) > 0

    @property
    def preemptible(self) -> bool:
        """Whether the run preempts machines (an event or chaos), so daemons watch for notices."""
        if any(e.failure == "preemption" for e in self.events):
            return True
        return self.chaos is not None and self.chaos.failure_types.get("preemption", 0) > 0


def summarize(scenario: Scenario) -> list[str]:
    """Lines that describe a valid scenario, for `navarch sim validate`."""
    lines = [f"{scenario.name}: {scenario.description}".rstrip(": ")]
    providers: dict[str, int] = {}
    for spec in scenario.fleet:
        providers[spec.provider] = providers.get(spec.provider, 0) + 1
    spread = ", ".join(f"{name} {count}" for name, count in sorted(providers.items()))
    lines.append(f"fleet: {len(scenario.fleet)} nodes ({spread or 'none'})")
    lines.append(
        f"startup: {scenario.startup.pattern}"
        + (
            f" over {format_duration(scenario.startup.duration)}"
            if scenario.startup.pattern != "instant"
            else ""
        )
    )
    for name, pool in sorted(scenario.config.pools.items()):
        lines.append(f"pool {name}: {pool.min_nodes} to {pool.max_nodes} nodes")
    lines.append(f"events: {len(scenario.events)}")
    for event in scenario.events:
        lines.append(f"  {format_duration(event.at):>8}  {event.describe()}")
    if scenario.chaos is not None:
        chaos = scenario.chaos
        lines.append(
            f"chaos: {chaos.failure_rate:g} failures per 1,000 nodes per minute, "
            f"{len(chaos.outages)} outages, cascade probability {chaos.cascade.probability:g}"
        )
    lines.append(f"assertions: {len(scenario.assertions)}")
    for condition in scenario.assertions:
        lines.append(f"  {condition.describe()}")
    if scenario.duration is not None:
        lines.append(f"duration: {format_duration(scenario.duration)}")
    return lines


def interactive_scenario(nodes: int) -> Scenario:
    """The fleet `navarch sim interactive` starts: NODES machines in two zones, no script."""
    fleet = tuple(
        NodeSpec(
            id=f"node-{i}",
            provider="sim",
            region="us-central1",
            zone=f"us-central1-{'ab'[(i - 1) % 2]}",
            instance_type="sim-8x",
        )
        for i in range(1, nodes + 1)
    )
    config = config_from_data({"providers": {"sim": {"type": "fake"}}}, "<interactive>")
    return Scenario(
        name="interactive",
        description="A small fleet for trying the CLI.",
        fleet=fleet,
        config=config,
        events=(Event(at=timedelta(0), action="start_fleet"),),
        providers=("sim",),
    )
