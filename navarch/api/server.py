"""Running the control plane as a server: the store, the service and hypercorn's trio worker.

`serve` owns the whole process lifetime: it binds the listen address, opens the SQLite store,
loads the service, serves the app until SIGINT or SIGTERM, then stops accepting connections,
answers the long polls and ends the dashboard's live streams at once, lets in-flight requests
finish, and writes every queued change before it returns.

`serve_app` runs hypercorn's HTTP/1.1 connections with the limits of `[server]`: at most
`max_connections` at once (more wait in the listen backlog), request headers within
`header_timeout` and bodies within `body_timeout`. hypercorn's own `read_timeout` bounds every
read, so it would also cut the daemons' long polls and idle keep-alive connections; the header
deadline here runs only while a request's headers are arriving. With `tls_cert_file` and
`tls_key_file` every connection is TLS, and its handshake must end within the header deadline of
its first request. Neither deadline, nor the keep-alive timeout, runs while an answer streams
(the dashboard's `/ui/stream`).
"""

from __future__ import annotations

import errno
import gc
import ipaddress
import json
import logging
import math
import os
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any, cast

import hypercorn.config
import trio
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ASGIFramework, ConnectionState
from hypercorn.utils import repr_socket_addr, wrap_app

from navarch.api.app import ControlPlaneApp
from navarch.config import AuthConfig, Config, ServerConfig, tls_server_context
from navarch.controlplane import ControlPlane
from navarch.controlplane.leadership import run_control_plane
from navarch.errors import ConfigValueError, NavarchError, UsageError
from navarch.pools.context import MachineRunner
from navarch.store import open_store
from navarch.store.open import sqlite_path

log = logging.getLogger("navarch.server")

# Idle keep-alive connections must outlive the gap between two heartbeats, or every heartbeat
# pays for a new connection.
_MIN_KEEP_ALIVE = 75.0
# In-flight requests get this long to finish after a shutdown signal. The long polls are answered
# at once and other requests take milliseconds, so this only bounds what hypercorn fails to close:
# now and then a connection's task outlives its closed socket (measured: 1 shutdown in 4 with a
# daemon attached waited the whole period). Queued changes are written when the store closes,
# after this, whether or not a request was cut short.
_GRACEFUL_TIMEOUT = 1.5


def default_store_path() -> Path:
    """`navarch.db` in the user's data directory ($XDG_DATA_HOME/navarch)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "navarch" / "navarch.db"


def split_listen(listen: str) -> tuple[str, int]:
    """("HOST", PORT) of a HOST:PORT listen address; IPv6 hosts are written in brackets."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"listen address: expected HOST:PORT, got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(listen: str, auth: AuthConfig, *, auth_enabled: bool, insecure: bool) -> None:
    """Refuses to serve an API without tokens beyond this machine unless told `--insecure`."""
    host, _ = split_listen(listen)
    if auth_enabled or insecure or is_loopback(host):
        return
    raise UsageError(
        f"refusing to listen on {listen} with auth off; set {auth.admin_token_env} and "
        f"{auth.join_token_env}, or pass --insecure"
    )


def _tune_garbage_collector() -> None:
    """Makes full collections rare, because each one stalls every request while it runs.

    hypercorn keeps about 140 objects per open connection, so 10,000 nodes hold 1.4 million, and a
    full collection of them took more than a second here (measured: p99 over 1 s at 333
    heartbeats/s). With the default first threshold (700), request objects that live a few
    milliseconds are promoted to older generations under load and pile up there until a full
    collection. A first threshold of 50,000 lets them die young, so the old generations grow only
    with real state (connections, nodes) and full collections almost never run.
    """
    gc.set_threshold(50_000, 10, 10)


def http_config(server: ServerConfig, listen: str) -> hypercorn.config.Config:
    """hypercorn's settings for serving the API on `listen`."""
    http = hypercorn.config.Config()
    http.bind = [listen]
    http.keep_alive_timeout = max(_MIN_KEEP_ALIVE, 2.5 * server.heartbeat_interval.total_seconds())
    http.graceful_timeout = _GRACEFUL_TIMEOUT
    http.accesslog = None
    http.errorlog = logging.getLogger("navarch.http")
    # Thousands of nodes reconnect at once after a restart of the control plane.
    http.backlog = 4096
    return http


def tls_context(server: ServerConfig) -> ssl.SSLContext | None:
    """The TLS settings of `server`, None for plain http; NavarchError names a wrong file."""
    if not server.tls_cert_file:
        return None
    try:
        return tls_server_context(server)
    except ConfigValueError as exc:
        raise NavarchError(f"server.{exc}") from None


def bind(http: hypercorn.config.Config, listen: str) -> list[socket.socket]:
    """The listening sockets of `http`; NavarchError says why the address cannot be used."""
    try:
        sockets = http.create_sockets().insecure_sockets
        for sock in sockets:
            sock.listen(http.backlog)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            reason += (
                "; another process listens there (a control plane already running?): stop it, "
                "or pass --listen HOST:PORT with a free port"
            )
        raise NavarchError(f"cannot listen on {listen}: {reason}") from None
    return sockets


async def serve_app(
    app: ASGIFramework,
    server: ServerConfig,
    http: hypercorn.config.Config,
    sockets: list[socket.socket],
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] = trio.sleep_forever,
    tls: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serves `app` on `sockets` (from `bind`) with the limits of `server` until
    `shutdown_trigger` returns; starts with the URLs it serves on. With `tls` (from
    `tls_context`) it serves https.

    After the trigger it stops accepting, closes idle connections and gives requests in flight
    `http.graceful_timeout` seconds.
    """
    wrapped = wrap_app(_BodyDeadline(app, server.body_timeout.total_seconds()), 0, "asgi")
    context = WorkerContext(None)
    limiter = trio.CapacityLimiter(server.max_connections)
    header_timeout = server.header_timeout.total_seconds()
    listeners = [
        _CappedListener(
            trio.SocketListener(trio.socket.from_stdlib_socket(s)), limiter, header_timeout, tls
        )
        for s in sockets
    ]
    scheme = "http" if tls is None else "https"
    binds = [f"{scheme}://{repr_socket_addr(s.family, s.getsockname())}" for s in sockets]

    async def handle(connection: _Connection) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cut_when_gone, connection, nursery.cancel_scope)
                # TCPServer reads the socket off the stream it is given, as _Connection has it.
                stream = cast(trio.SSLStream[trio.SocketStream], connection)
                await TCPServer(wrapped, http, context, ConnectionState({}), stream)
                nursery.cancel_scope.cancel()
        finally:
            connection.socket.close()
            limiter.release_on_behalf_of(connection.token)

    async with trio.open_nursery() as connections:
        task_status.started(binds)
        try:
            async with trio.open_nursery() as accepting:
                accepting.start_soon(
                    partial(trio.serve_listeners, handle, listeners, handler_nursery=connections)
                )
                await shutdown_trigger()
                accepting.cancel_scope.cancel()
        finally:
            await context.terminated.set()
            connections.cancel_scope.deadline = trio.current_time() + http.graceful_timeout


async def _cut_when_gone(connection: _Connection, scope: trio.CancelScope) -> None:
    """Ends a connection whose client has gone, once no request of it is being answered.

    hypercorn keeps a connection's task, and its socket, until the keep-alive timeout even after
    the client closed it; that would hold a place under `max_connections` for minutes.
    """
    await connection.gone.wait()
    await connection.quiet()
    scope.cancel()


class _CappedListener(trio.abc.Listener["_Connection"]):
    """Accepts a connection only while fewer than the limiter's total are open; the others wait
    in the listen backlog. Each connection holds its token until its handler releases it."""

    def __init__(
        self,
        listener: trio.SocketListener,
        limiter: trio.CapacityLimiter,
        header_timeout: float,
        tls: ssl.SSLContext | None,
    ) -> None:
        self._listener = listener
        self._limiter = limiter
        self._header_timeout = header_timeout
        self._tls = tls

    async def accept(self) -> _Connection:
        token = object()
        await self._limiter.acquire_on_behalf_of(token)
        try:
            stream = await self._listener.accept()
        except BaseException:
            self._limiter.release_on_behalf_of(token)
            raise
        if self._tls is None:
            return _Connection(stream, stream, token, self._header_timeout)
        # No I/O yet: the handshake runs in the connection's own task (`_TLSConnection`).
        tls = trio.SSLStream(stream, self._tls, server_side=True)
        return _TLSConnection(tls, stream, token, self._header_timeout)

    async def aclose(self) -> None:
        await self._listener.aclose()


_HEADERS_END = b"\r\n\r\n"
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class _Connection(trio.abc.HalfCloseableStream):
    """One client connection, whose request headers must arrive within `header_timeout`.

    The deadline starts when the connection opens, and for each later request with its first
    byte; it ends with the blank line after the headers. While the app answers (a long poll) and
    between requests, reads wait as long as hypercorn lets them.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        transport: trio.SocketStream,
        token: object,
        header_timeout: float,
    ) -> None:
        self._stream = stream
        self.socket = transport.socket
        # The connection limiter's token, released when the connection is done.
        self.token = token
        self._header_timeout = header_timeout
        # "headers" while a request's headers arrive, "request" until its answer starts, then
        # "idle" until the next request's first byte.
        self._state = "headers"
        self._reading = trio.CancelScope(deadline=trio.current_time() + header_timeout)
        # The end of the headers read so far, to find a blank line split across reads.
        self._tail = b""
        # Set when the client closed its side or the connection broke.
        self.gone = trio.Event()
        # Set while no request waits for its answer.
        self._quiet = trio.Event()
        self._quiet.set()

    async def quiet(self) -> None:
        """Returns once no request of this connection waits for its answer."""
        while not self._quiet.is_set():
            await self._quiet.wait()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        # One scope for every read, so that a deadline set or lifted during a read applies to it.
        self._reading = trio.CancelScope(deadline=self._reading.deadline)
        with self._reading:
            try:
                data = bytes(await self._stream.receive_some(max_bytes))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.gone.set()
                raise
            if data:
                self._track(data)
            else:
                self.gone.set()
            return data
        self.gone.set()
        with trio.move_on_after(1):  # a client that reads nothing cannot hold the answer up
            try:
                await self._stream.send_all(_REQUEST_TIMEOUT)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                pass
        raise trio.BrokenResourceError(f"request headers took over {self._header_timeout:g}s")

    def _track(self, data: bytes) -> None:
        if self._state == "request":
            return  # the body, or a pipelined request
        if self._state == "idle":
            self._state = "headers"
            self._reading.deadline = trio.current_time() + self._header_timeout
            self._tail = b""
        seen = self._tail + data
        if _HEADERS_END in seen:
            self._state = "request"
            self._reading.deadline = math.inf
            self._quiet = trio.Event()
        else:
            self._tail = seen[-3:]

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        # An answer other than `100 Continue` ends the request: the next byte starts another.
        if self._state != "idle" and not bytes(data[:10]).startswith(b"HTTP/1.1 1"):
            self._state = "idle"
            self._reading.deadline = math.inf
            self._quiet.set()
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        assert isinstance(self._stream, trio.abc.HalfCloseableStream)
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


class _TLSConnection(_Connection):
    """A connection over TLS. hypercorn finds `do_handshake`, runs it first and serves the
    connection as https; the handshake must end within the header deadline."""

    def __init__(
        self,
        stream: trio.SSLStream[trio.SocketStream],
        transport: trio.SocketStream,
        token: object,
        header_timeout: float,
    ) -> None:
        super().__init__(stream, transport, token, header_timeout)
        self._tls = stream
        # hypercorn reads the peer's address from here on a TLS stream.
        self.transport_stream = transport

    async def do_handshake(self) -> None:
        with trio.move_on_at(self._reading.deadline):
            try:
                await self._tls.do_handshake()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.gone.set()
                raise
            return
        self.gone.set()
        raise trio.BrokenResourceError(f"TLS handshake took over {self._header_timeout:g}s")

    def selected_alpn_protocol(self) -> str:
        return "http/1.1"

    async def send_eof(self) -> None:
        # TLS cannot half-close; hypercorn takes this AttributeError, as from trio's SSLStream.
        raise AttributeError("a TLS connection cannot be half-closed")


class _BodyDeadline:
    """ASGI middleware: a request body that has not arrived within `timeout` of its headers is
    answered 408 and the connection closed; the app sees the client go away."""

    def __init__(self, app: ASGIFramework, timeout: float) -> None:
        self._app = app
        self._timeout = timeout

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        deadline = trio.current_time() + self._timeout
        body_read = False
        answered = False

        async def receive_in_time() -> Any:
            nonlocal body_read, answered
            if body_read:
                return await receive()
            with trio.move_on_at(deadline):
                message = await receive()
                body_read = message["type"] != "http.request" or not message.get("more_body")
                return message
            answered = True
            body = json.dumps(
                {
                    "code": "deadline_exceeded",
                    "message": f"the request body did not arrive within {self._timeout:g}s",
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 408,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return {"type": "http.disconnect"}

        async def send_unless_answered(message: Any) -> None:
            if not answered:
                await send(message)

        await self._app(scope, receive_in_time, send_unless_answered)


async def serve(
    server: ServerConfig,
    *,
    listen: str,
    store_path: str,
    admin_token: str = "",
    join_token: str = "",
    viewer_token: str = "",
    on_ready: Callable[[str], None] = print,
    config: Config | None = None,
    machines: Callable[[ControlPlane, trio.Nursery], MachineRunner] | None = None,
) -> None:
    """Serves until SIGINT or SIGTERM; `on_ready` gets the one-line ready message.

    `machines` builds what runs the simulated machines of providers that have them (the fake
    provider's local fleet).
    """
    # A failure inside a nursery arrives wrapped in exception groups; `navarch.cli.main` prints
    # a NavarchError among them as one line.
    await _serve(
        server,
        listen=listen,
        store_path=store_path,
        admin_token=admin_token,
        join_token=join_token,
        viewer_token=viewer_token,
        on_ready=on_ready,
        config=config,
        machines=machines,
    )


async def _serve(
    server: ServerConfig,
    *,
    listen: str,
    store_path: str,
    admin_token: str = "",
    join_token: str = "",
    viewer_token: str = "",
    on_ready: Callable[[str], None],
    config: Config | None = None,
    machines: Callable[[ControlPlane, trio.Nursery], MachineRunner] | None = None,
) -> None:
    _tune_garbage_collector()
    tls = tls_context(server)
    http = http_config(server, listen)
    sockets = bind(http, listen)
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with AsyncExitStack() as stack:
            for sock in sockets:
                stack.callback(sock.close)
            sqlite_file = sqlite_path(store_path)
            if sqlite_file is not None:
                _prepare_store_directory(sqlite_file)
            store = await stack.enter_async_context(open_store(store_path))
            control_plane, leadership = await stack.enter_async_context(
                run_control_plane(
                    store,
                    store_path,
                    server,
                    listen=listen,
                    tls=tls is not None,
                    admin_token=admin_token,
                    join_token=join_token,
                    viewer_token=viewer_token,
                    config=config,
                    machines=machines,
                )
            )
            nursery = await stack.enter_async_context(trio.open_nursery())
            app = ControlPlaneApp(
                control_plane, max_body_bytes=server.max_body_bytes, leadership=leadership
            )

            async def wait_for_signal() -> None:
                async for signum in signals:
                    log.info("signal=%s stopping", signal.Signals(signum).name)
                    control_plane.stop_long_polls()
                    if leadership is not None:
                        leadership.stop()
                    app.stop_streams()
                    stop.set()
                    return

            nursery.start_soon(wait_for_signal)
            binds = await nursery.start(
                partial(serve_app, app, server, http, sockets, shutdown_trigger=stop.wait, tls=tls)
            )
            on_ready(f"navarch control plane listening on {binds[0]} (store: {store.location})")
            await stop.wait()
    log.info("stopped")


def _prepare_store_directory(path: str) -> None:
    """Creates the store's directory; NavarchError says why a path cannot hold the store."""
    directory = Path(path).parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NavarchError(
            f"cannot use {directory} for the store: {exc.strerror or exc}; pass --data-dir "
            "with a directory navarch may write, or set [store] path"
        ) from None
