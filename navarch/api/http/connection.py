"""One HTTP/1.1 connection: h11 parses each request, the ASGI app answers it in the
connection's own task, then the connection waits for the next request or closes.

A connection is in one of four states, and one cancel scope per connection carries the deadline
of the state it is in:

- `_HANDSHAKE`: a TLS handshake, within the header deadline of the first request;
- `_HEADERS`: a request's line and headers arrive, within `header_timeout` of the connection's
  opening (the first request) or of the request's first byte (later ones); past it the client
  gets 408 and the connection closes;
- `_ANSWERING`: the app answers, with no deadline, so that long polls and the dashboard's live
  streams last as long as they need. The body, when the app reads it, must have arrived within
  `body_timeout` of the headers; past it the client gets 408 with a Connect error. Each write of
  the answer must be taken by the client within `body_timeout`, or the connection ends;
- `_WAITING`: between requests, for at most `keep_alive_timeout`.

Over plain TCP an answer is written to the socket at once when it fits the socket's buffer, as
a small answer does, without a pass of trio's scheduler; the rest, and every write over TLS, goes
through the stream.

The app reads the socket only through `receive`: the body, and then, for an app that waits for
`http.disconnect` (a live stream), the end of the connection. A pipelined request that arrives
meanwhile waits in h11's buffer until the answer ends.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from typing import Any
from urllib.parse import unquote

import attrs
import h11
import trio

from navarch.api.http.config import App, Shed

log = logging.getLogger("navarch.http")

_RECEIVE_SIZE = 65536
# Pipelined requests answered in a row before the connection lets other tasks run.
_ANSWERS_PER_YIELD = 8

_HANDSHAKE = 0
_HEADERS = 1
_ANSWERING = 2
_WAITING = 3

_ASGI = {"version": "3.0", "spec_version": "2.3"}
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


def _refusal(status: int) -> bytes:
    return b"HTTP/1.1 %d \r\ncontent-length: 0\r\nconnection: close\r\n\r\n" % status


_REQUEST_TIMEOUT = _refusal(408)
# In a request head in lower case, for the early refusal: the body's length, and the headers that
# ask for more than an answer (to close, a chunked body, `100 Continue`).
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d{1,12})[ \t]*\r")
_UNSHED = re.compile(rb"\r\n(?:connection:[^\r]*close|transfer-encoding:|expect:)")


@attrs.define
class Site:
    """What every connection of one server shares."""

    app: App
    header_timeout: float
    body_timeout: float
    keep_alive_timeout: float
    max_header_bytes: int
    # "http" or "https".
    scheme: str
    # The app's early refusal (`navarch.api.http.config.Shed`), if it has one.
    shed: Shed | None = None
    # Set once the server stops: answers close their connections.
    stopping: bool = False


class Connection:
    """One client connection, served by `run` in a task of its own."""

    __slots__ = (
        "_body_done",
        "_client",
        "_continue_owed",
        "_fd",
        "_gone",
        "_h11",
        "_head",
        "_headers_from",
        "_received",
        "_scope",
        "_server",
        "_shed_passed",
        "_site",
        "_start",
        "_state",
        "_stream",
        "_waiter",
    )

    def __init__(
        self,
        site: Site,
        stream: trio.SocketStream | trio.SSLStream[trio.SocketStream],
        client: tuple[str, int],
        server: tuple[str, int],
    ) -> None:
        self._site = site
        self._stream = stream
        self._client = client
        self._server = server
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=site.max_header_bytes)
        self._scope = trio.CancelScope(deadline=trio.current_time() + site.header_timeout)
        self._state = _HANDSHAKE if isinstance(stream, trio.SSLStream) else _HEADERS
        # When the current request's headers arrived (trio's clock).
        self._received = 0.0
        # Set once the current request's body was read to its end.
        self._body_done = False
        # Set while a HEAD request is answered: h11 sends the headers of a body it must drop.
        self._head = False
        # Set once the client went away, or the connection must close without another answer.
        self._gone = False
        # The status and headers of an answer whose first body part has not come yet: both go
        # out in one write.
        self._start: tuple[int, Any] | None = None
        # Set while the client waits for `100 Continue` and has not been sent it.
        self._continue_owed = False
        # Set while `receive` waits for the client to go away; cancelled when the answer ends.
        self._waiter: trio.CancelScope | None = None
        # Set when the app's early refusal let the request that is parsed next through.
        self._shed_passed = False
        # When the head of a request that arrived after a wait began to arrive, until its
        # header deadline is set (`_serve`); None otherwise.
        self._headers_from: float | None = None
        # The socket's descriptor for writes made at once (`_write`); -1 over TLS, while the
        # stream writes, and once the connection has closed.
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1

    def stop_if_idle(self) -> None:
        """Closes the connection now if it waits between requests (the server stops)."""
        if self._state == _WAITING:
            self._scope.cancel()

    async def run(self) -> None:
        """Serves requests until the client closes, a limit ends the connection, or the server
        stops; closes the connection."""
        try:
            with self._scope:
                if isinstance(self._stream, trio.SSLStream):
                    await self._stream.do_handshake()
                    self._state = _HEADERS
                await self._serve()
            if self._scope.cancelled_caught and self._state == _HEADERS:
                await self._refuse(_REQUEST_TIMEOUT)
        except h11.RemoteProtocolError as error:
            if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE) and not self._gone:
                await self._refuse(_refusal(error.error_status_hint))
        except _GONE:
            pass
        finally:
            await self._close()

    async def _serve(self) -> None:
        h = self._h11
        site = self._site
        answered = 0
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                answered = 0  # the read below yields
                if self._headers_from is not None:
                    # The request's head needs another read: from now on it has a deadline.
                    self._scope.deadline = self._headers_from + site.header_timeout
                    self._headers_from = None
                data = await self._stream.receive_some(_RECEIVE_SIZE)
                waiting = self._state == _WAITING
                if waiting and not data:
                    return
                if site.shed is not None and h.their_state is h11.IDLE:
                    # A request refused early arrived whole: it needs no header deadline.
                    answer = self._shed(site.shed, data)
                    if answer is not None:
                        self._state = _ANSWERING
                        await self._write(answer)
                        if self._gone or site.stopping:
                            return
                        self._state = _WAITING
                        self._scope.deadline = trio.current_time() + site.keep_alive_timeout
                        continue
                if waiting:
                    # The header deadline counts from this first byte; it is set only when the
                    # head did not come whole in this read (a request that did is answered
                    # at once, and a deadline set now would be removed by `_answer` again).
                    self._state = _HEADERS
                    self._headers_from = trio.current_time()
                h.receive_data(bytes(data))
            elif type(event) is h11.Request:
                await self._answer(event)
                if not await self._next_cycle():
                    return
                # An answer written at once does not yield to the scheduler: a client that
                # pipelines many requests in one read would hold the event loop until all are
                # answered. Every few answers without a read in between, other tasks run.
                answered += 1
                if answered >= _ANSWERS_PER_YIELD:
                    answered = 0
                    await trio.lowlevel.checkpoint()
            else:
                return  # ConnectionClosed: the client closed between requests

    def _shed(self, shed: Shed, data: bytes | bytearray) -> bytes | None:
        """The app's early refusal (`shed`) of `data` when it holds one whole POST and nothing
        more, in HTTP/1.1, with a `Content-Length` body and no header that asks for more than an
        answer; None to parse and serve it."""
        if self._h11.trailing_data[0]:
            return None
        line_end = data.find(b"\r\n")
        end = data.find(b"\r\n\r\n")
        if end < 0 or line_end < 16 or data[line_end - 9 : line_end] != b" HTTP/1.1":
            return None
        if not data.startswith(b"POST "):
            return None
        head = bytes(data[line_end : end + 2]).lower()
        lengths = _CONTENT_LENGTH.findall(head)
        if len(lengths) != 1 or int(lengths[0]) != len(data) - end - 4 or _UNSHED.search(head):
            return None
        answer = shed(b"POST", bytes(data[5 : line_end - 9]))
        self._shed_passed = answer is None
        return answer

    async def _answer(self, request: h11.Request) -> None:
        self._state = _ANSWERING
        self._headers_from = None
        self._scope.deadline = math.inf
        received = trio.current_time()
        self._received = received
        self._body_done = False
        self._continue_owed = self._h11.they_are_waiting_for_100_continue
        self._head = request.method == b"HEAD"
        raw_path, _, query = request.target.partition(b"?")
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": request.http_version.decode("ascii"),
            "method": request.method.decode("ascii"),
            "scheme": self._site.scheme,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            # h11's Headers: a sequence of (lower-case name, value).
            "headers": request.headers,
            "client": self._client,
            "server": self._server,
            "extensions": {"navarch.received": received, "navarch.shed": self._shed_passed},
        }
        self._shed_passed = False
        try:
            await self._site.app(scope, self.receive, self.send)
        except Exception:
            log.exception("path=%s outcome=app-error", path)
        if self._gone:
            return
        if self._h11.our_state is h11.SEND_RESPONSE:
            self._start = None
            body = b"internal error\n"
            await self._write(
                self._h11.send(
                    h11.Response(
                        status_code=500,
                        headers=[
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", b"%d" % len(body)),
                            (b"connection", b"close"),
                        ],
                    )
                )
                + self._h11.send(h11.Data(data=body))
                + self._h11.send(h11.EndOfMessage())
            )
        elif self._h11.our_state is h11.SEND_BODY:
            self._gone = True  # the app ended mid-answer: the client learns it from the close

    async def _next_cycle(self) -> bool:
        """Readies the connection for its next request; False when it must close instead."""
        h = self._h11
        if self._gone or self._site.stopping or h.our_state is not h11.DONE:
            return False
        drained = 0
        while h.their_state is h11.SEND_BODY:
            # The app answered without reading the whole body (a refusal): a short rest is read
            # and dropped to keep the connection; for a long one, closing is cheaper.
            event = h.next_event()
            if event is h11.NEED_DATA:
                if self._continue_owed:
                    return False  # the client never sends a body it was not asked for
                if drained >= _RECEIVE_SIZE:
                    return False
                with trio.move_on_at(self._received + self._site.body_timeout):
                    data = await self._stream.receive_some(_RECEIVE_SIZE)
                    if not data:
                        return False
                    drained += len(data)
                    h.receive_data(bytes(data))
                    continue
                return False
        if h.their_state is not h11.DONE:
            return False
        h.start_next_cycle()
        self._state = _WAITING
        self._scope.deadline = trio.current_time() + self._site.keep_alive_timeout
        return True

    async def receive(self) -> dict[str, Any]:
        """The ASGI `receive`: the body in one or more parts, then `http.disconnect` once the
        client has gone or the answer has ended."""
        if self._body_done or self._gone:
            if not self._gone and self._h11.our_state in (h11.SEND_RESPONSE, h11.SEND_BODY):
                await self._until_gone()
            return {"type": "http.disconnect"}
        h = self._h11
        body = b""
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError:
                # A malformed body (bad chunk framing): nothing more can be read from it.
                self._gone = True
                return {"type": "http.disconnect"}
            if type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                self._body_done = True
                return {"type": "http.request", "body": body, "more_body": False}
            elif body:
                return {"type": "http.request", "body": body, "more_body": True}
            else:
                if not await self._read_body():
                    return {"type": "http.disconnect"}

    async def _read_body(self) -> bool:
        """Reads more of the body into h11's buffer; False once the connection is gone."""
        if self._continue_owed:
            self._continue_owed = False
            await self._write(
                self._h11.send(h11.InformationalResponse(status_code=100, headers=[]))
            )
        if self._gone:
            return False
        with trio.move_on_at(self._received + self._site.body_timeout):
            data = await self._receive_or_nothing()
            if not data:
                self._gone = True
                return False
            self._h11.receive_data(bytes(data))
            return True
        await self._refuse_late_body()
        return False

    async def _refuse_late_body(self) -> None:
        """Answers 408 with a Connect error, unless the app began its answer, and ends the
        connection: the app sees the client go away."""
        self._gone = True
        if self._h11.our_state is not h11.SEND_RESPONSE:
            return
        timeout = self._site.body_timeout
        body = json.dumps(
            {
                "code": "deadline_exceeded",
                "message": f"the request body did not arrive within {timeout:g}s",
            }
        ).encode()
        await self._refuse(
            b"HTTP/1.1 408 \r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )

    async def _until_gone(self) -> None:
        """Returns once the client goes away or the answer ends. Bytes of a pipelined request
        go to h11's buffer, up to the header cap; past it the socket is no longer read."""
        h = self._h11
        waiter = self._waiter = trio.CancelScope()
        try:
            with waiter:
                while True:
                    if len(h.trailing_data[0]) > self._site.max_header_bytes:
                        await trio.sleep_forever()
                    data = await self._receive_or_nothing()
                    if not data:
                        self._gone = True
                        return
                    h.receive_data(bytes(data))
        finally:
            self._waiter = None

    async def _receive_or_nothing(self) -> bytes:
        """The next bytes from the client; nothing once it closed or the connection broke."""
        try:
            return bytes(await self._stream.receive_some(_RECEIVE_SIZE))
        except _GONE:
            return b""

    async def send(self, message: Any) -> None:
        """The ASGI `send`. After the client has gone, answers are dropped."""
        kind = message["type"]
        if kind == "http.response.body":
            if self._gone:
                return
            h = self._h11
            more = message.get("more_body", False)
            out = b""
            if self._start is not None:
                status, headers = self._start
                self._start = None
                out = h.send(h11.Response(status_code=status, headers=headers))
            body = message.get("body", b"")
            if body and not self._head:
                out += h.send(h11.Data(data=body))
            if not more:
                out += h.send(h11.EndOfMessage())
            await self._write(out)
            if not more and self._waiter is not None:
                self._waiter.cancel()
        elif kind == "http.response.start":
            if self._start is not None or self._h11.our_state is not h11.SEND_RESPONSE:
                raise RuntimeError("http.response.start sent twice for one request")
            headers = message.get("headers", [])
            if self._site.stopping:
                headers = [*headers, (b"connection", b"close")]
            self._start = (message["status"], headers)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    async def _write(self, data: bytes) -> None:
        # Over plain TCP an answer almost always fits the socket's send buffer: it is written
        # at once, without the reschedule that trio's send makes after every send (a pass of
        # the scheduler per answer, measured in docs/performance.md). What does not fit, and
        # every TLS write, goes through the stream.
        fd = self._fd
        if fd >= 0:
            try:
                sent = os.write(fd, data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._gone = True
                return
            if sent == len(data):
                return
            data = data[sent:]
            self._fd = -1  # no write at once while the stream writes the rest
        # A client must take each part of an answer within `body_timeout`: one that stops
        # reading would otherwise hold the connection, and the app's call, for ever. The
        # connection's own scope carries the deadline, so no scope is opened per write; past it
        # the connection ends.
        scope = self._scope
        scope.deadline = trio.current_time() + self._site.body_timeout
        try:
            await self._stream.send_all(data)
        except _GONE:
            self._gone = True
        finally:
            scope.deadline = math.inf
            if fd >= 0 and not self._gone:
                self._fd = fd

    async def _refuse(self, answer: bytes) -> None:
        """Sends a last answer; a client that reads nothing cannot hold the connection."""
        with trio.move_on_after(1):
            try:
                await self._stream.send_all(answer)
            except (*_GONE, trio.BusyResourceError):
                pass

    async def _close(self) -> None:
        self._fd = -1
        stream = self._stream
        if isinstance(stream, trio.SSLStream):
            await trio.aclose_forcefully(stream)
        else:
            stream.socket.close()
