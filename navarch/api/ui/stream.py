"""`GET /ui/stream`: the events the control plane commits, live, as server-sent events.

The node book hands every committed event to `ChangeStream.publish`, which only appends the
event's JSON document (`navarch.plugins.event_document`) to each open stream's queue, so a slow
browser never slows a commit. Each stream writes its queue as `event: change` messages, and a
`: ping` comment after `ping_interval` seconds of quiet so that proxies keep the connection open.
A stream whose queue fills (its reader is slower than the fleet changes) loses the backlog and
gets one `event: resync` instead: the page reloads what it shows. At most `limit` streams are open
at once. A stream ends when its client goes away, its session ends, or `close` is called (the
server shuts down).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from navarch.model import Event
from navarch.plugins import event_document

log = logging.getLogger("navarch.api")

PING_INTERVAL = 15.0
MAX_STREAMS = 64
# Events a stream may have waiting before it is told to resync instead.
QUEUE_LIMIT = 256

_RESYNC = b"event: resync\ndata: {}\n\n"
_PING = b": ping\n\n"

Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Any], Awaitable[None]]


class _Reader:
    """One open stream's queue."""

    def __init__(self, alive: Callable[[], bool]) -> None:
        self.alive = alive
        self.pending: list[bytes] = []
        self.resync = False
        self.closed = False
        # Set when the stream ends from this side: closed, or its session ended.
        self.ended = False
        self.wake = trio.Event()

    def put(self, message: bytes, limit: int) -> None:
        if self.resync:
            return
        if len(self.pending) >= limit:
            self.pending.clear()
            self.resync = True
        else:
            self.pending.append(message)
        self.wake.set()

    def take(self) -> bytes:
        """What to write now: the resync notice, the queued events, or nothing."""
        self.wake = trio.Event()
        if self.resync:
            self.resync = False
            return _RESYNC
        taken = b"".join(self.pending)
        self.pending.clear()
        return taken


class ChangeStream:
    """The open streams, and the one place committed events reach them."""

    def __init__(
        self,
        *,
        ping_interval: float = PING_INTERVAL,
        limit: int = MAX_STREAMS,
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        self.ping_interval = ping_interval
        self.limit = limit
        self.queue_limit = queue_limit
        self._readers: set[_Reader] = set()

    @property
    def open_streams(self) -> int:
        return len(self._readers)

    @property
    def full(self) -> bool:
        return len(self._readers) >= self.limit

    def publish(self, event: Event) -> None:
        """Queues `event` on every open stream; returns at once and never raises."""
        if not self._readers:
            return
        try:
            data = json.dumps(event_document(event), separators=(",", ":"), sort_keys=True)
        except (TypeError, ValueError):
            log.exception("event=%s cannot be written for the dashboard's streams", event.kind)
            return
        message = b"event: change\ndata: " + data.encode() + b"\n\n"
        for reader in self._readers:
            reader.put(message, self.queue_limit)

    def recheck(self) -> None:
        """Has every open stream check now whether its session still lives (one ended)."""
        for reader in self._readers:
            reader.wake.set()

    def close(self) -> None:
        """Ends every open stream (the server is shutting down)."""
        for reader in self._readers:
            reader.closed = True
            reader.wake.set()

    async def serve(
        self,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        alive: Callable[[], bool],
    ) -> None:
        """Answers one stream request (the caller checked `full` and the session) until the
        client goes away, `alive()` turns false or `close` is called."""
        reader = _Reader(alive)
        self._readers.add(reader)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_until_disconnect, receive, nursery.cancel_scope)
                await self._write(reader, send)
                nursery.cancel_scope.cancel()
            if not reader.ended:
                return  # the client went away
        finally:
            self._readers.discard(reader)
        # Outside the watcher's scope: the server readies the connection for the next request
        # inside this call, and tells the watcher the stream closed, which must not cut it short.
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _write(self, reader: _Reader, send: Send) -> None:
        # Tells EventSource to come back after 5 s when the connection drops.
        await send({"type": "http.response.body", "body": b"retry: 5000\n\n", "more_body": True})
        while True:
            with trio.move_on_after(self.ping_interval):
                await reader.wake.wait()
            if reader.closed or not reader.alive():
                reader.ended = True
                return
            chunk = reader.take() or _PING
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _until_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
