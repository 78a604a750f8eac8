"""`GET /ui/stream` over the server's own connection handling (`serve_app`, with its header, body
and keep-alive limits), as `navarch control-plane` serves it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import attrs
import h11
import httpx
import trio
from support.serving import ADMIN_TOKEN, JOIN_TOKEN, post

from navarch.api.app import ControlPlaneApp
from navarch.api.server import bind, http_config, serve_app
from navarch.config import ServerConfig
from navarch.controlplane import ControlPlane
from navarch.store import SQLiteStore

VIEWER_TOKEN = "viewer-" + "v" * 40
TOKENS = {"admin_token": ADMIN_TOKEN, "join_token": JOIN_TOKEN, "viewer_token": VIEWER_TOKEN}
# Limits far shorter than the pings' gaps, so that a stream that outlives a few pings has
# outlived them.
SERVER = ServerConfig(
    heartbeat_interval=timedelta(seconds=10),
    body_timeout=timedelta(milliseconds=100),
    header_timeout=timedelta(seconds=5),
)
PING = 0.15


@attrs.define
class Served:
    url: str
    client: httpx.AsyncClient
    service: ControlPlane
    app: ControlPlaneApp
    stop: trio.Event
    stopped: trio.Event


@asynccontextmanager
async def served(path: Path, *, graceful: float = 600) -> AsyncIterator[Served]:
    async with (
        SQLiteStore.open(path) as store,
        ControlPlane.open(store, SERVER, **TOKENS) as service,
        trio.open_nursery() as nursery,
    ):
        app = ControlPlaneApp(service, max_body_bytes=SERVER.max_body_bytes)
        app.ui.stream.ping_interval = PING
        http = http_config(SERVER, "127.0.0.1:0")
        http.keep_alive_timeout = 0.1
        # A shutdown that waited for the streams would hang the test, not end after a moment.
        http.graceful_timeout = graceful
        sockets = bind(http, "127.0.0.1:0")
        stop, stopped = trio.Event(), trio.Event()

        async def run(task_status: trio.TaskStatus[list[str]]) -> None:
            await serve_app(
                app, SERVER, http, sockets, shutdown_trigger=stop.wait, task_status=task_status
            )
            stopped.set()

        binds = await nursery.start(run)
        try:
            async with httpx.AsyncClient(base_url=binds[0], timeout=30) as client:
                yield Served(binds[0], client, service, app, stop, stopped)
        finally:
            stop.set()
            for sock in sockets:
                sock.close()


async def signed_in(client: httpx.AsyncClient, token: str = VIEWER_TOKEN) -> dict[str, str]:
    response = await client.post("/ui/signin", data={"token": token})
    client.cookies.clear()
    session_id = response.headers["set-cookie"].split(";")[0].partition("=")[2]
    return {"Cookie": f"navarch_session={session_id}"}


class EventStream:
    """One `GET /ui/stream` on a connection of its own, read as a browser's EventSource reads it
    (with h11, so that the test sees whether the answer ended cleanly)."""

    def __init__(self, connection: trio.SocketStream) -> None:
        self._connection = connection
        self._h11 = h11.Connection(h11.CLIENT)
        self._buffer = b""
        self.status = 0
        self.headers: dict[str, str] = {}
        # Set when the server ended the answer properly (the last chunk), not by cutting it.
        self.ended = False

    async def _event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self._h11.receive_data(await self._connection.receive_some(65536))

    async def _start(self, host: str, headers: dict[str, str]) -> None:
        self._host = host
        request = h11.Request(
            method="GET", target="/ui/stream", headers=[("host", host), *headers.items()]
        )
        await self._connection.send_all(self._h11.send(request) or b"")
        await self._connection.send_all(self._h11.send(h11.EndOfMessage()) or b"")
        event = await self._event()
        assert isinstance(event, h11.Response), event
        self.status = event.status_code
        self.headers = {k.decode(): v.decode() for k, v in event.headers}

    async def next(self) -> tuple[str, str] | None:
        """The next (event, data) message, ("ping", "") for a ping; None once the answer ended."""
        while True:
            message, sep, rest = self._buffer.partition(b"\n\n")
            if sep:
                self._buffer = rest
                fields = dict(line.decode().partition(": ")[::2] for line in message.split(b"\n"))
                if "" in fields:
                    return "ping", ""
                if "data" in fields:
                    return fields.get("event", "message"), fields["data"]
                continue
            event = await self._event()
            if isinstance(event, h11.Data):
                self._buffer += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.ended = True
                return None
            else:
                return None

    async def closed_by_server(self) -> bool:
        """Whether the server closes the connection (rather than keeping it for reuse)."""
        return await self._connection.receive_some(65536) == b""

    async def ask(self, target: str, headers: dict[str, str]) -> int:
        """The status of one more GET on the same connection, after the stream ended."""
        self._h11.start_next_cycle()
        request = h11.Request(
            method="GET", target=target, headers=[("host", self._host), *headers.items()]
        )
        await self._connection.send_all(self._h11.send(request) or b"")
        await self._connection.send_all(self._h11.send(h11.EndOfMessage()) or b"")
        event = await self._event()
        assert isinstance(event, h11.Response), event
        return event.status_code

    async def until(self, wanted: str) -> list[tuple[str, str]]:
        """The messages up to and including the first `wanted` event, pings left out."""
        seen: list[tuple[str, str]] = []
        while True:
            message = await self.next()
            assert message is not None, f"the stream ended before an {wanted!r} event: {seen}"
            if message[0] != "ping":
                seen.append(message)
            if message[0] == wanted:
                return seen


@asynccontextmanager
async def event_stream(url: str, headers: dict[str, str]) -> AsyncIterator[EventStream]:
    address = httpx.URL(url)
    assert address.port is not None
    connection = await trio.open_tcp_stream(address.host, address.port)
    try:
        stream = EventStream(connection)
        await stream._start(f"{address.host}:{address.port}", headers)
        yield stream
    finally:
        await connection.aclose()


async def wait_until(check: Callable[[], bool]) -> None:
    with trio.fail_after(10):
        while not check():
            await trio.sleep(0.01)


async def test_a_cordon_reaches_an_open_stream_after_the_server_limits_passed(
    tmp_path: Path,
) -> None:
    async with served(tmp_path / "navarch.db") as s:
        cookie = await signed_in(s.client)
        registered = await post(s.client, "RegisterNode", {"nodeId": "n1"}, token=ADMIN_TOKEN)
        assert registered.status_code == 200
        with trio.fail_after(20):
            async with event_stream(s.url, cookie) as stream:
                assert stream.status == 200
                assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
                assert stream.headers["cache-control"] == "no-store"
                assert "content-security-policy" in stream.headers
                for _ in range(4):
                    assert await stream.next() == ("ping", "")
                # Four pings: the stream outlived the body and keep-alive limits.
                cordon = {"nodeId": "n1", "type": "COMMAND_TYPE_CORDON", "reason": "bad fan"}
                issued = await post(s.client, "IssueCommand", cordon, token=ADMIN_TOKEN)
                assert issued.status_code == 200
                changes = [json.loads(data) for _, data in await stream.until("change")]
                while changes[-1]["kind"] != "node.status_changed":
                    changes += [json.loads(data) for _, data in await stream.until("change")]
        status = changes[-1]
        assert status["nodeId"] == "n1"
        assert status["fromStatus"] == "NODE_STATUS_ACTIVE"
        assert status["toStatus"] == "NODE_STATUS_CORDONED"
        assert status["actor"] == "admin"
        assert status["reason"] == "bad fan"
        await wait_until(lambda: s.app.ui.stream.open_streams == 0)


async def test_a_stream_ends_when_its_client_goes_away(tmp_path: Path) -> None:
    async with served(tmp_path / "navarch.db") as s:
        cookie = await signed_in(s.client)
        async with event_stream(s.url, cookie) as stream:
            assert stream.status == 200
            assert s.app.ui.stream.open_streams == 1
        await wait_until(lambda: s.app.ui.stream.open_streams == 0)


async def test_streams_beyond_the_limit_are_refused(tmp_path: Path) -> None:
    async with served(tmp_path / "navarch.db") as s:
        s.app.ui.stream.limit = 2
        cookie = await signed_in(s.client)
        async with event_stream(s.url, cookie) as first, event_stream(s.url, cookie) as second:
            assert (first.status, second.status) == (200, 200)
            third = await s.client.get("/ui/stream", headers=cookie)
            assert third.status_code == 503
            assert third.json() == {
                "code": "unavailable",
                "message": "2 live streams are open already; try again later",
            }
        await wait_until(lambda: s.app.ui.stream.open_streams == 0)
        async with event_stream(s.url, cookie) as again:
            assert again.status == 200


async def test_a_reader_that_falls_behind_is_told_to_resync(tmp_path: Path) -> None:
    async with served(tmp_path / "navarch.db") as s:
        s.app.ui.stream.queue_limit = 3
        cookie = await signed_in(s.client)
        book = s.service.book
        with trio.fail_after(20):
            async with event_stream(s.url, cookie) as stream:
                # Ten events at once, before the stream's task runs: more than its queue holds.
                for index in range(10):
                    s.app.ui.stream.publish(book.event("node.labelled", f"n{index}", "admin"))
                assert await stream.until("resync") == [("resync", "{}")]
                s.app.ui.stream.publish(book.event("node.labelled", "n-last", "admin"))
                [(_, data)] = await stream.until("change")
        assert json.loads(data)["nodeId"] == "n-last"


async def test_a_stream_ends_when_its_session_ends(tmp_path: Path) -> None:
    async with served(tmp_path / "navarch.db") as s:
        # No ping comes in the test's time: signing out itself ends the stream.
        s.app.ui.stream.ping_interval = 600
        cookie = await signed_in(s.client)
        csrf = (await s.client.get("/ui/session", headers=cookie)).json()["csrf"]
        with trio.fail_after(20):
            async with event_stream(s.url, cookie) as stream:
                out = await s.client.post("/ui/signout", data={"csrf": csrf}, headers=cookie)
                assert out.status_code == 303
                while await stream.next() is not None:
                    pass
                assert stream.ended
                # The connection serves the browser's next request.
                assert await stream.ask("/ui/session", cookie) == 401


async def test_shutting_down_ends_the_streams_without_waiting(tmp_path: Path) -> None:
    async with served(tmp_path / "navarch.db") as s:
        cookie = await signed_in(s.client)
        with trio.fail_after(20):
            async with event_stream(s.url, cookie) as stream:
                assert stream.status == 200
                # What `navarch control-plane` does on SIGTERM, before it stops serving.
                s.service.stop_long_polls()
                s.app.stop_streams()
                s.stop.set()
                while await stream.next() is not None:
                    pass
                assert stream.ended
                # With a graceful period of ten minutes, the server stops at once only if the
                # streams ended and their connections closed.
                assert await stream.closed_by_server()
            await s.stopped.wait()
