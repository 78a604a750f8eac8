"""Scenario files: the fleet, the control plane under test, timed events, chaos and assertions.

A scenario is TOML. `load_scenario` reads and checks one and raises `ConfigError` listing every
problem with its key path (`events[3].xid: expected an integer, got "79"`), so a scenario either
runs as written or not at all. `--set KEY=VALUE` overrides (`apply_overrides`) change the raw
table before the checks, which is how the test suite runs stress scenarios at a reduced size.

Each part of the file has its module (`fleet`, `chaos`, `events`, `conditions`) and `model` holds
the scenario as a whole. `parse` reads a file into them, after `overrides` and before
`references`, which checks that what one part names exists in another.
"""

from navarch.sim.scenario.chaos import Chaos, Correlated, Outage
from navarch.sim.scenario.conditions import Condition
from navarch.sim.scenario.events import GPU_FAILURES, NODE_FAILURES, Event
from navarch.sim.scenario.fleet import FleetGen, NodeSpec, Template, generate_fleet
from navarch.sim.scenario.model import Scenario, interactive_scenario, summarize
from navarch.sim.scenario.parse import load_scenario, parse_scenario

__all__ = [
    "GPU_FAILURES",
    "NODE_FAILURES",
    "Chaos",
    "Condition",
    "Correlated",
    "Event",
    "FleetGen",
    "NodeSpec",
    "Outage",
    "Scenario",
    "Template",
    "generate_fleet",
    "interactive_scenario",
    "load_scenario",
    "parse_scenario",
    "summarize",
]
