"""The ASGI lifespan protocol: the app's startup before the server accepts, its shutdown after
the last connection closed. An app that does not speak it (it raises or returns at once) is
served without it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from navarch.api.http.config import App
from navarch.errors import NavarchError

log = logging.getLogger("navarch.http")

_SHUTDOWN_TIMEOUT = 5.0


@asynccontextmanager
async def lifespan(app: App) -> AsyncIterator[None]:
    """Runs the app's startup, then the body, then the app's shutdown; NavarchError when the
    app reports that its startup failed."""
    to_app, app_inbox = trio.open_memory_channel[dict[str, Any]](1)
    app_outbox, from_app = trio.open_memory_channel[dict[str, Any]](1)

    async def send(message: Any) -> None:
        await app_outbox.send(dict(message))

    async def run() -> None:
        async with app_outbox:
            try:
                await app({"type": "lifespan", "asgi": {"version": "3.0"}}, app_inbox.receive, send)
            except Exception:
                log.debug("the app does not speak the lifespan protocol", exc_info=True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await to_app.send({"type": "lifespan.startup"})
        supported = await _reply(from_app, "lifespan.startup")
        try:
            yield
        finally:
            if supported:
                with trio.move_on_after(_SHUTDOWN_TIMEOUT):
                    await to_app.send({"type": "lifespan.shutdown"})
                    await _reply(from_app, "lifespan.shutdown")
            nursery.cancel_scope.cancel()


async def _reply(replies: trio.MemoryReceiveChannel[dict[str, Any]], step: str) -> bool:
    """False when the app ended without answering `step`."""
    try:
        message = await replies.receive()
    except trio.EndOfChannel:
        return False
    if message["type"] == f"{step}.failed":
        raise NavarchError(f"the app failed its {step}: {message.get('message', '')}")
    return True
