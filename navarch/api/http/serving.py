"""Accepting connections up to a cap, and stopping: the server around `Connection`.

Connections waiting in the listen backlog are accepted in bursts (see `_Server.accept`). At most
`max_connections` connections are open at once; while the server is at the cap it accepts
nothing, so that further clients wait in the kernel's listen backlog rather than in memory.
After the shutdown trigger the server stops accepting, closes the connections that wait between
requests, lets the answers in flight end (each then closes its connection) and cuts what remains
after `graceful_timeout`.
"""

from __future__ import annotations

import errno
import logging
import math
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from navarch.api.http.config import App, HttpConfig
from navarch.api.http.connection import Connection, Site
from navarch.api.http.lifespan import lifespan

log = logging.getLogger("navarch.http")

# Out of file descriptors or memory: accepting again at once would spin.
_PAUSE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
# A client that reset its connection before it was accepted, and the network errors of a pending
# connection that Linux's accept(2) reports on the listening socket.
_SKIP_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "EPROTO",
        "EPERM",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",  # Linux only
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
    )
    if hasattr(errno, name)
)
# Connections taken from the backlog in one step of the accept loop.
_ACCEPT_BURST = 1024
# Seconds between two log lines about running out of descriptors or memory.
_PAUSE_LOG_EVERY = 10.0


def url_of(sock: socket.socket, scheme: str) -> str:
    """`scheme://host:port` of a listening socket, with an IPv6 host in brackets."""
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


async def serve_http(
    app: App,
    sockets: list[socket.socket],
    config: HttpConfig,
    *,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
    tls: ssl.SSLContext | None = None,
    shutdown_trigger: Callable[[], Awaitable[Any]] = trio.sleep_forever,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serves `app` on the listening `sockets` (left open for the caller to close) until
    `shutdown_trigger` returns; starts with the URLs it serves on."""
    scheme = "http" if tls is None else "https"
    site = Site(
        app,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        keep_alive_timeout=config.keep_alive_timeout,
        max_header_bytes=config.max_header_bytes,
        scheme=scheme,
        shed=getattr(app, "shed", None),
    )
    server = _Server(site, max_connections, tls)
    async with lifespan(app), trio.open_nursery() as connections:
        try:
            async with trio.open_nursery() as accepting:
                for sock in sockets:
                    sock.setblocking(False)
                    accepting.start_soon(server.accept, sock, connections)
                task_status.started([url_of(sock, scheme) for sock in sockets])
                await shutdown_trigger()
                accepting.cancel_scope.cancel()
        finally:
            site.stopping = True
            for connection in list(server.connections):
                connection.stop_if_idle()
            connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout


def _host_port(address: Any) -> tuple[str, int]:
    """An IP socket's (host, port), as ASGI gives `client` and `server`; ("", 0) for a Unix one."""
    return (str(address[0]), int(address[1])) if isinstance(address, tuple) else ("", 0)


class _Server:
    """The open connections, and the accept loops that keep them under the cap."""

    def __init__(self, site: Site, max_connections: int, tls: ssl.SSLContext | None) -> None:
        self._site = site
        self._max_connections = max_connections
        self._tls = tls
        self.connections: set[Connection] = set()
        # Set when a connection closes, for an accept loop that waits at the cap.
        self._room = trio.Event()

    async def accept(self, listener: socket.socket, nursery: trio.Nursery) -> None:
        """Accepts connections on the non-blocking `listener` for as long as it runs.

        The connections waiting in the backlog are taken in bursts of up to `_ACCEPT_BURST`
        without a pass through trio's scheduler between them: when the process is busy, a pass
        takes as long as every other runnable task's step, and accepting one connection per pass
        left thousands of reconnecting clients in the backlog for tens of seconds.
        """
        name = listener.getsockname()
        server = _host_port(name)
        logged = -math.inf
        while True:
            for _ in range(_ACCEPT_BURST):
                while len(self.connections) >= self._max_connections:
                    if self._room.is_set():
                        self._room = trio.Event()
                    await self._room.wait()
                try:
                    sock, address = listener.accept()
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(listener)
                    break
                except OSError as exc:
                    if exc.errno in _PAUSE_ERRNOS:
                        if trio.current_time() - logged >= _PAUSE_LOG_EVERY:
                            logged = trio.current_time()
                            log.error(
                                "cannot accept a connection: %s; retrying every 0.1s (raise the "
                                "open-file limit or lower server.max_connections)",
                                exc.strerror,
                            )
                        await trio.sleep(0.1)
                        break
                    if exc.errno not in _SKIP_ERRNOS:
                        raise
                    continue
                self._start(sock, address, server, nursery)
            else:
                await trio.lowlevel.checkpoint()  # a whole burst: the other tasks' turn

    def _start(
        self, sock: socket.socket, address: Any, server: tuple[str, int], nursery: trio.Nursery
    ) -> None:
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        client = _host_port(address)
        if self._tls is None:
            connection = Connection(self._site, stream, client, server)
        else:
            tls = trio.SSLStream(stream, self._tls, server_side=True)
            connection = Connection(self._site, tls, client, server)
        self.connections.add(connection)
        nursery.start_soon(self._serve, connection)

    async def _serve(self, connection: Connection) -> None:
        try:
            await connection.run()
        except Exception:
            # A fault in serving one connection must not end the others.
            log.exception("outcome=connection-error")
        finally:
            self.connections.discard(connection)
            self._room.set()
