"""A real control plane served by hypercorn on a loopback port, and ways to call it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import hypercorn.trio
import trio

from navarch.api.app import ControlPlaneApp
from navarch.api.server import http_config
from navarch.api.wire import SERVICE_PATH
from navarch.config import ServerConfig
from navarch.controlplane import ControlPlane
from navarch.store import SQLiteStore

SERVER = ServerConfig(heartbeat_interval=timedelta(seconds=10), max_body_bytes=64 * 1024)
ADMIN_TOKEN = "admin-" + "a" * 40
JOIN_TOKEN = "join-" + "j" * 40


@asynccontextmanager
async def serving(
    path: Path, server: ServerConfig = SERVER, **tokens: str
) -> AsyncIterator[tuple[httpx.AsyncClient, ControlPlane]]:
    """Serves a control plane on 127.0.0.1 and yields an httpx client pointed at it."""
    async with (
        SQLiteStore.open(path) as store,
        ControlPlane.open(store, server, **tokens) as service,
        trio.open_nursery() as nursery,
    ):
        app = ControlPlaneApp(service, max_body_bytes=server.max_body_bytes)
        stop = trio.Event()
        binds = await nursery.start(
            partial(
                hypercorn.trio.serve,
                app,
                http_config(server, "127.0.0.1:0"),
                shutdown_trigger=stop.wait,
            )
        )
        try:
            async with httpx.AsyncClient(base_url=binds[0], timeout=30) as client:
                yield client, service
        finally:
            stop.set()


async def post(
    client: httpx.AsyncClient,
    method: str,
    body: Any,
    *,
    token: str = "",
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POSTs one Connect call; `body` is sent as is when it is bytes, else as JSON."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = dict(headers or {})
    if content_type is not None:
        sent["Content-Type"] = content_type
    if token:
        sent["Authorization"] = f"Bearer {token}"
    return await client.post(SERVICE_PATH + method, content=content, headers=sent)
