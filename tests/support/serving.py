"""A real control plane served by navarch's HTTP server on a loopback port, and ways to call it."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from navarch.api.app import ControlPlaneApp
from navarch.api.http import HttpConfig
from navarch.api.server import bind, http_config, serve_app
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
    with listening(server, "127.0.0.1:0") as (http, sockets):
        async with (
            SQLiteStore.open(path) as store,
            ControlPlane.open(store, server, **tokens) as service,
            trio.open_nursery() as nursery,
        ):
            app = ControlPlaneApp(service, max_body_bytes=server.max_body_bytes)
            stop = trio.Event()
            binds = await nursery.start(
                partial(serve_app, app, server, http, sockets, shutdown_trigger=stop.wait)
            )
            try:
                async with httpx.AsyncClient(base_url=binds[0], timeout=30) as client:
                    yield client, service
            finally:
                stop.set()


@contextmanager
def listening(
    server: ServerConfig, listen: str
) -> Iterator[tuple[HttpConfig, list[socket.socket]]]:
    """The HTTP server's settings for `server` and its sockets bound to `listen`, closed on exit
    (after the server stopped)."""
    http = http_config(server, listen)
    sockets = bind(http, listen)
    try:
        yield http, sockets
    finally:
        for sock in sockets:
            sock.close()


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
