"""A pool `p` of the fake provider read from TOML, and the scaling states its autoscaler sees;
and `FAILOVER_POOL`, the TOML of a pool that fails over between two fake providers."""

from __future__ import annotations

import textwrap

from navarch.config import parse_config
from navarch.plugins import Autoscaler, ScalingState

POOL = """
[providers.fake]

[pools.p]
instance_type = "h100-8x"
min_nodes = {min_nodes}
max_nodes = {max_nodes}

[[pools.p.providers]]
provider = "fake"
"""

# A pool `dev` of two fake providers, the first with no capacity: every new instance fails over
# to the second, so a scrape or a listing shows both a failed and a successful provision.
FAILOVER_POOL = """
[providers.fake]
type = "fake"

[providers.full]
type = "fake"
capacity = 0

[pools.dev]
instance_type = "h100-8x"
min_nodes = 2
max_nodes = 4
scale_interval = "1s"

[[pools.dev.providers]]
provider = "full"

[[pools.dev.providers]]
provider = "fake"
priority = 1
"""


def pool_config(plugins, tables: str = "", *, min_nodes: int = 0, max_nodes: int = 20):
    """A pool `p` parsed the way the control plane reads it, with extra TOML tables appended."""
    text = POOL.format(min_nodes=min_nodes, max_nodes=max_nodes) + textwrap.dedent(tables)
    return parse_config(text, "navarch.toml", plugins).pools["p"]


def autoscaler(plugins, table: str):
    """Builds the autoscaler configured by `[pools.p.autoscaler]` TOML."""
    return pool_config(plugins, table).autoscaler.create(Autoscaler)


def state(**overrides) -> ScalingState:
    values = {"pool": "p", "current_nodes": 4, "min_nodes": 0, "max_nodes": 20}
    values.update(overrides)
    values.setdefault("healthy_nodes", values["current_nodes"] - values.get("in_flight", 0))
    return ScalingState(**values)
