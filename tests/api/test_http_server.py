"""navarch's HTTP/1.1 server (`navarch.api.http`) over real loopback sockets, with a small ASGI
app whose answers the tests control: what a client sees at each limit, and what the app sees
when a client goes away."""

from __future__ import annotations

import json
import resource
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio.testing

from navarch.api.http import HttpConfig, serve_http
from navarch.api.server import bind, connection_limit

GET = b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"
SHED = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nretry-after: 3\r\n\r\nbusy"


@attrs.define
class App:
    """Answers `/echo` with the body it read, `/scope` with what the server told it, `/stream`
    with parts until the client goes away, `/gate` once `gate` is set; refuses POSTs to `/shed`
    early (`shed`)."""

    gate: trio.Event = attrs.field(factory=trio.Event)
    # The paths the app was called for, and the targets its early refusal was asked about.
    called: list[str] = attrs.field(factory=list)
    asked: list[bytes] = attrs.field(factory=list)
    entered: trio.Event = attrs.field(factory=trio.Event)
    disconnected: trio.Event = attrs.field(factory=trio.Event)
    lifespan: list[str] = attrs.field(factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.lifespan.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        path = scope["path"]
        self.called.append(path)
        if path == "/stream":
            await self._stream(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                return
            body += message["body"]
            if not message["more_body"]:
                break
        if path == "/fail":
            raise RuntimeError("the app failed")
        if path == "/gate":
            self.entered.set()
            await self.gate.wait()
        if path.endswith("/scope"):
            shown = {key: scope[key] for key in ("method", "path", "raw_path", "query_string")}
            shown = {k: v.decode() if isinstance(v, bytes) else v for k, v in shown.items()}
            shown["headers"] = [[k.decode(), v.decode()] for k, v in scope["headers"]]
            shown["scheme"] = scope["scheme"]
            shown["http_version"] = scope["http_version"]
            shown["client"] = list(scope["client"])
            shown["server"] = list(scope["server"])
            shown["received"] = isinstance(scope["extensions"]["navarch.received"], float)
            shown["shed"] = scope["extensions"]["navarch.shed"]
            body = json.dumps(shown).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def shed(self, method: bytes, target: bytes) -> bytes | None:
        self.asked.append(target)
        return SHED if method == b"POST" and target.startswith(b"/shed") else None

    async def _stream(self, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        self.entered.set()
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected.set()


@attrs.define
class Served:
    port: int
    stop: trio.Event
    stopped: trio.Event
    clients: list[trio.SocketStream] = attrs.field(factory=list)

    async def connect(self) -> trio.SocketStream:
        """A client connection, closed when the test ends."""
        stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        self.clients.append(stream)
        return stream


@asynccontextmanager
async def served(
    app: App,
    *,
    header_timeout: float = 5,
    body_timeout: float = 5,
    keep_alive_timeout: float = 30,
    graceful_timeout: float = 30,
    max_connections: int = 100,
) -> AsyncIterator[Served]:
    http = HttpConfig(
        listen="127.0.0.1:0",
        keep_alive_timeout=keep_alive_timeout,
        graceful_timeout=graceful_timeout,
    )
    sockets = bind(http, http.listen)
    stop, stopped = trio.Event(), trio.Event()

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        await serve_http(
            app,
            sockets,
            http,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_connections=max_connections,
            shutdown_trigger=stop.wait,
            task_status=task_status,
        )
        stopped.set()

    try:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(run)
                s = Served(sockets[0].getsockname()[1], stop, stopped)
                try:
                    yield s
                finally:
                    for client in s.clients:
                        await client.aclose()
                    stop.set()
    finally:
        for sock in sockets:
            sock.close()


async def read_to_end(stream: trio.SocketStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data


async def read_until(stream: trio.SocketStream, end: bytes, data: bytes = b"") -> bytes:
    while end not in data:
        chunk = await stream.receive_some()
        assert chunk, data
        data += chunk
    return data


async def read_to_end_of_two_answers(stream: trio.SocketStream) -> bytes:
    data = b""
    while data.count(b"\r\n\r\n") < 2:
        data += await stream.receive_some()
    return data


def post(path: str, body: bytes, *extra: bytes) -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n" % (path.encode(), len(body))
    return head + b"".join(extra) + b"\r\n" + body


class _TaskSteps(trio.abc.Instrument):
    """Counts the steps of the tasks whose name ends with `suffix`: how often they let others
    run."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith(self.suffix):
            self.steps += 1


async def test_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    async with served(App()) as s:
        stream = await s.connect()
        last = b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        await stream.send_all(post("/echo", b"one") + post("/echo", b"two") + last)
        data = await read_to_end(stream)
        assert data.count(b"HTTP/1.1 200 ") == 3
        assert data.index(b"one") < data.index(b"two")


async def test_many_pipelined_requests_do_not_hold_the_event_loop() -> None:
    # Answers are written at once, without a checkpoint: the connection still lets other
    # tasks run every few answers, so that one client's pipelined burst cannot stall the rest.
    async with served(App()) as s:
        stream = await s.connect()
        steps = _TaskSteps("._serve")
        trio.lowlevel.add_instrument(steps)
        try:
            await stream.send_all(
                GET * 255 + GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
            )
            data = await read_to_end(stream)
        finally:
            trio.lowlevel.remove_instrument(steps)
        assert data.count(b"HTTP/1.1 200 ") == 256
        assert steps.steps >= 256 // 8


async def test_a_client_that_expects_100_continue_is_told_to_send_its_body() -> None:
    async with served(App()) as s:
        stream = await s.connect()
        await stream.send_all(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        data = await read_until(stream, b"HTTP/1.1 100 ")
        await stream.send_all(b"body")
        data = await read_until(stream, b"body", data)
        assert b"HTTP/1.1 200 " in data


async def test_an_http_1_0_request_is_answered_and_its_connection_closed() -> None:
    async with served(App()) as s:
        stream = await s.connect()
        await stream.send_all(b"GET /echo HTTP/1.0\r\n\r\n")
        data = await read_to_end(stream)
        assert data.startswith(b"HTTP/1.1 200 ")
        assert b"connection: close" in data.lower()


async def test_connection_close_is_honoured() -> None:
    async with served(App()) as s:
        stream = await s.connect()
        await stream.send_all(b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert (await read_to_end(stream)).startswith(b"HTTP/1.1 200 ")


async def test_the_scope_says_what_the_request_and_connection_are() -> None:
    app = App()
    async with served(app) as s:
        stream = await s.connect()
        await stream.send_all(b"GET /a%20b/scope?x=1 HTTP/1.1\r\nHost: t\r\nX-Thing: v\r\n\r\n")
        await stream.send_all(b"GET /scope?x=1&y=2 HTTP/1.1\r\nHost: t\r\nX-Thing: V\r\n\r\n")
        data = await read_until(stream, b"}")
        first = json.loads(data[data.index(b"{") : data.index(b"}") + 1])
        assert first["path"] == "/a b/scope"
        assert first["raw_path"] == "/a%20b/scope"
        data = await read_until(stream, b"}", data[data.index(b"}") + 1 :])
        shown = json.loads(data[data.index(b"{") : data.index(b"}") + 1])
        assert shown["method"] == "GET"
        assert shown["path"] == "/scope"
        assert shown["query_string"] == "x=1&y=2"
        assert shown["headers"] == [["host", "t"], ["x-thing", "V"]]
        assert (shown["scheme"], shown["http_version"]) == ("http", "1.1")
        assert shown["client"][0] == "127.0.0.1"
        assert shown["server"] == ["127.0.0.1", s.port]
        assert shown["received"]
        # GETs are never refused early: the app's early refusal was not asked.
        assert (shown["shed"], app.asked) == (False, [])


async def test_a_whole_post_the_app_refuses_early_is_answered_unparsed_and_served_on() -> None:
    app = App()
    async with served(app) as s:
        stream = await s.connect()
        await stream.send_all(post("/shed/x", b'{"a": 1}'))
        assert await read_until(stream, b"busy") == SHED
        await stream.send_all(post("/shed/y", b""))
        assert await read_until(stream, b"busy") == SHED
        # One the app lets through is parsed and served, and the app knows it was asked.
        await stream.send_all(post("/echo/scope", b"{}"))
        data = await read_until(stream, b"}")
        assert json.loads(data[data.index(b"{") :])["shed"] is True
        assert app.asked == [b"/shed/x", b"/shed/y", b"/echo/scope"]
        assert app.called == ["/echo/scope"]


async def test_a_post_that_asks_more_than_an_answer_or_came_in_parts_reaches_the_app() -> None:
    """Closing, a chunked body, `100 Continue`, HTTP/1.0, a body longer or shorter than its
    length, pipelined requests and a request that arrives in two parts are parsed as ever: the
    app's early refusal is not asked, and the app answers."""
    app = App()
    chunked = b"POST /shed/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"3\r\nabc\r\n0\r\n\r\n"
    async with served(app) as s:
        for request in (
            post("/shed/a", b"x", b"Connection: close\r\n"),
            chunked,
            post("/shed/b", b"", b"Expect: 100-continue\r\n"),
            post("/shed/d", b"x").replace(b"HTTP/1.1", b"HTTP/1.0"),
            post("/shed/e", b"x") + b"y",
            post("/shed/f", b"x") + post("/shed/g", b"x"),
        ):
            stream = await s.connect()
            await stream.send_all(request)
            assert (await read_until(stream, b"\r\n\r\n")).startswith(b"HTTP/1.1 "), request
        stream = await s.connect()
        whole = post("/shed/h", b"xyz")
        await stream.send_all(whole[:-3])
        await trio.testing.wait_all_tasks_blocked()
        await stream.send_all(whole[-3:])
        assert (await read_until(stream, b"xyz")).startswith(b"HTTP/1.1 200 ")
        await trio.testing.wait_all_tasks_blocked()
    assert app.asked == []
    assert app.called[:3] == ["/shed/a", "/shed/c", "/shed/b"]
    assert "/shed/h" in app.called


async def test_a_head_request_gets_the_headers_alone_and_the_connection_serves_on() -> None:
    async with served(App()) as s:
        stream = await s.connect()
        await stream.send_all(post("/echo", b"xyz").replace(b"POST", b"HEAD", 1) + GET)
        data = await read_to_end_of_two_answers(stream)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert b"content-length: 3" in head.lower()
        assert rest.startswith(b"HTTP/1.1 200 ")


async def test_an_app_that_fails_before_answering_gives_500_and_the_server_serves_on() -> None:
    async with served(App()) as s:
        stream = await s.connect()
        await stream.send_all(b"GET /fail HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await read_to_end(stream)).startswith(b"HTTP/1.1 500 ")
        other = await s.connect()
        await other.send_all(GET)
        assert (await read_until(other, b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")


async def test_headers_over_the_size_cap_are_answered_431_and_closed() -> None:
    async with served(App()) as s:
        stream = await s.connect()
        await stream.send_all(b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20_000)
        assert (await read_to_end(stream)).startswith(b"HTTP/1.1 431 ")


async def test_a_malformed_request_line_is_answered_400_and_closed() -> None:
    async with served(App()) as s:
        stream = await s.connect()
        await stream.send_all(b"NOT A REQUEST\r\n\r\n")
        assert (await read_to_end(stream)).startswith(b"HTTP/1.1 400 ")
        # The server goes on serving others.
        other = await s.connect()
        await other.send_all(GET)
        assert (await read_until(other, b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")


async def test_headers_that_trickle_in_past_the_deadline_are_answered_408_and_closed() -> None:
    async with served(App(), header_timeout=0.3) as s:
        stream = await s.connect()
        await stream.send_all(b"GET /echo HTTP/1.1\r\nHo")
        assert (await read_to_end(stream)).startswith(b"HTTP/1.1 408 ")


async def test_a_later_request_whose_head_trickles_in_is_answered_408_after_its_deadline() -> None:
    # On a kept-alive connection the header deadline counts from the next request's first byte,
    # even though the server sets it only once the head needs a second read.
    async with served(App(), header_timeout=0.3, keep_alive_timeout=30) as s:
        stream = await s.connect()
        await stream.send_all(GET)
        await read_until(stream, b"\r\n\r\n")
        await trio.sleep(0.4)  # longer than the header timeout, within the keep-alive
        await stream.send_all(b"GET /echo HTTP/1.1\r\nHo")
        started = trio.current_time()
        data = await read_to_end(stream)
        assert data.count(b"HTTP/1.1 408 ") == 1, data
        assert 0.25 < trio.current_time() - started < 5


async def test_a_body_that_trickles_in_past_the_deadline_is_answered_408_and_closed() -> None:
    app = App()
    async with served(app, body_timeout=0.3) as s:
        stream = await s.connect()
        await stream.send_all(post("/echo", b"0123456789")[:-8])
        data = await read_to_end(stream)
        assert data.startswith(b"HTTP/1.1 408 ")
        assert json.loads(data[data.index(b"\r\n\r\n") + 4 :]) == {
            "code": "deadline_exceeded",
            "message": "the request body did not arrive within 0.3s",
        }
        # The app learns that the client is gone.
        await app.disconnected.wait()


async def test_a_client_that_goes_away_during_a_streamed_answer_is_seen_by_the_app() -> None:
    app = App()
    async with served(app, header_timeout=0.1, body_timeout=0.1, keep_alive_timeout=0.1) as s:
        stream = await s.connect()
        await stream.send_all(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        await read_until(stream, b"first")
        await app.entered.wait()
        # Past every deadline, the answer still streams.
        await trio.sleep(0.3)
        assert not app.disconnected.is_set()
        await stream.aclose()
        await app.disconnected.wait()


async def test_connections_beyond_the_cap_wait_until_one_closes() -> None:
    async with served(App(), max_connections=1) as s:
        first = await s.connect()
        await first.send_all(GET)
        await read_until(first, b"\r\n\r\n")
        second = await s.connect()  # the kernel's backlog takes it
        await second.send_all(GET)
        with trio.move_on_after(0.3) as waited:
            await second.receive_some()
        assert waited.cancelled_caught
        await first.aclose()
        assert (await read_until(second, b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")


async def test_an_idle_keep_alive_connection_is_closed_after_the_timeout() -> None:
    async with served(App(), keep_alive_timeout=0.2) as s:
        stream = await s.connect()
        await stream.send_all(GET)
        data = await read_to_end(stream)
        assert data.startswith(b"HTTP/1.1 200 ")
        assert data.count(b"HTTP/1.1") == 1


async def test_a_shutdown_lets_the_request_in_flight_finish_and_closes_idle_connections() -> None:
    app = App()
    async with served(app) as s:
        idle = await s.connect()
        await idle.send_all(GET)
        await read_until(idle, b"\r\n\r\n")
        busy = await s.connect()
        await busy.send_all(post("/gate", b"late"))
        await app.entered.wait()
        s.stop.set()
        assert await read_to_end(idle) == b""
        app.gate.set()
        data = await read_to_end(busy)
        assert data.startswith(b"HTTP/1.1 200 ")
        assert b"connection: close" in data.lower()
        assert data.endswith(b"late")
        await s.stopped.wait()
    assert app.lifespan == ["lifespan.startup", "lifespan.shutdown"]


async def test_a_client_that_stops_reading_its_answer_loses_the_connection_and_its_slot() -> None:
    body = b"x" * (8 * 2**20)  # more than the server's send buffer and the client's small one
    async with served(App(), body_timeout=2, max_connections=1) as s:
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await sock.connect(("127.0.0.1", s.port))
        stuck = trio.SocketStream(sock)
        s.clients.append(stuck)
        await stuck.send_all(post("/echo", body))
        # The answer is never read: once a write has waited `body_timeout`, the connection ends
        # and its place under max_connections goes to the next client.
        other = await s.connect()
        await other.send_all(GET)
        with trio.fail_after(10):
            assert (await read_until(other, b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")


def test_the_open_file_limit_is_raised_and_caps_the_connections() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 512), hard))
        assert connection_limit(10) == 10
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
        if hard != resource.RLIM_INFINITY:
            # Each connection takes a file and the process keeps some for itself.
            assert connection_limit(hard) == hard - 256
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_connections_waiting_in_the_backlog_are_taken_in_one_step() -> None:
    # A busy server passes through trio's scheduler slowly; taking one connection a pass left
    # thousands of reconnecting clients in the backlog for tens of seconds.
    async with served(App()) as s:
        # Connected in the kernel's backlog: the server gets no pass until the test awaits.
        waiting = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(50)]
        clients = [trio.SocketStream(trio.socket.from_stdlib_socket(c)) for c in waiting]
        s.clients += clients
        counter = _TaskSteps("_Server.accept")
        trio.lowlevel.add_instrument(counter)
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.remove_instrument(counter)
        assert counter.steps <= 2
        for client in clients:
            await client.send_all(GET)
        for client in clients:
            assert (await read_until(client, b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
