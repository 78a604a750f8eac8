"""A real control-plane service with pools of fake nodes, on a SQLite file, in virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import trio

from navarch.api import wire as m
from navarch.config import Config, ServerConfig, parse_config
from navarch.controlplane import Caller, ControlPlane
from navarch.daemon.local import LocalMachines
from navarch.model import Node, NodeStatus
from navarch.plugins.manager import load_plugins
from navarch.store import SQLiteStore
from support.api import rpc

# Heartbeats every 5 s, lost after 15 s.
SERVER = ServerConfig(heartbeat_interval=timedelta(seconds=5))
ADMIN = Caller.admin()

ACTIVE = NodeStatus.ACTIVE
UNHEALTHY = NodeStatus.UNHEALTHY
TERMINATED = NodeStatus.TERMINATED

PLUGINS = load_plugins(entry_points=False)

# A pool `dev` of 2 to 5 fake machines at 50 % utilization, each 20 s to provision, sized by the
# reactive autoscaler every 10 s.
REACTIVE = """
[providers.fake]
type = "fake"
provision_delay = "20s"
utilization = 50

[pools.dev]
instance_type = "h100-8x"
min_nodes = 2
max_nodes = 5
scale_interval = "10s"

[[pools.dev.providers]]
provider = "fake"

[pools.dev.autoscaler]
type = "reactive"
scale_up_at = 80
scale_down_at = 20
"""


def fleet(text: str) -> Config:
    return parse_config(text, plugins=PLUGINS)


@asynccontextmanager
async def open_fleet(
    path: Path, config: Config, machines: Any = LocalMachines
) -> AsyncIterator[ControlPlane]:
    async with (
        SQLiteStore.open(path, threaded=False) as store,
        ControlPlane.open(store, SERVER, config=config, machines=machines) as service,
    ):
        yield service


def live_nodes(service: ControlPlane, pool: str = "dev") -> list[Node]:
    return [
        n for n in service.all_nodes() if n.pool == pool and n.status is not NodeStatus.TERMINATED
    ]


def healthy_nodes(service: ControlPlane, pool: str = "dev") -> list[Node]:
    return [n for n in service.all_nodes() if n.pool == pool and n.status is NodeStatus.ACTIVE]


async def wait_until(check, timeout: float = 3600.0, step: float = 1.0) -> None:
    """Waits in virtual time until `check()` is true; fails after `timeout` virtual seconds."""
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(step)


async def pool(service: ControlPlane, name: str = "dev") -> m.Pool:
    return (await rpc(service, m.GetPoolRequest(name=name), ADMIN)).pool


async def events(service: ControlPlane, *kinds: str) -> list[m.Event]:
    response = await rpc(service, m.ListEventsRequest(kinds=kinds, limit=1000), ADMIN)
    return list(response.events)
