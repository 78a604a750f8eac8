"""A control plane in this process, for tests that drive a plugin through the real API.

    async with control_plane(CONFIG, path=tmp_path / "navarch.db") as plane:
        nodes = await plane.client.list_nodes(ListNodesRequest())

The control plane runs the configuration's pools, with the fake provider's machines (real
daemons over simulated GPUs) in this process, on a SQLite store at `path`. Its client speaks
HTTP to the control plane's ASGI app through `httpx.ASGITransport`, without a socket, so tests
can run on trio's `MockClock`. Auth is off: neither token is set.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from attrs import frozen

from navarch.api.app import ControlPlaneApp
from navarch.api.client import HttpClient
from navarch.config import Config, parse_config
from navarch.controlplane import ControlPlane
from navarch.daemon.local import LocalMachines
from navarch.plugins.manager import Plugins
from navarch.store import SQLiteStore

# The address the client names; no request leaves the process.
URL = "http://navarch.test"


@frozen
class InProcessControlPlane:
    """What `control_plane` yields."""

    # Calls the control plane's API, with the methods of `navarch.api.client.HttpClient`.
    client: HttpClient
    # The configuration the control plane runs.
    config: Config


@asynccontextmanager
async def control_plane(
    config: str | Config,
    *,
    path: str | os.PathLike[str],
    plugins: Plugins | None = None,
) -> AsyncIterator[InProcessControlPlane]:
    """Runs a control plane with `config` until the block ends.

    `config` is the text of a navarch.toml, checked against `plugins` (by default the installed
    plugins, as navarch loads them), or a `Config` already read. `path` is the SQLite file; an
    existing one is opened as it is, as a restarted control plane opens its store.
    """
    if isinstance(config, str):
        config = parse_config(config, plugins=plugins)
    app_limit = config.server.max_body_bytes
    async with (
        SQLiteStore.open(Path(path), threaded=False) as store,
        ControlPlane.open(store, config.server, config=config, machines=LocalMachines) as service,
        HttpClient(
            URL,
            transport=httpx.ASGITransport(ControlPlaneApp(service, max_body_bytes=app_limit)),
        ) as client,
    ):
        yield InProcessControlPlane(client=client, config=config)
