"""Running the control plane as a server: the store, the service and the HTTP server.

`serve` owns the whole process lifetime: it binds the listen address, opens the SQLite store,
loads the service, serves the app until SIGINT or SIGTERM, then stops accepting connections,
answers the long polls and ends the dashboard's live streams at once, lets in-flight requests
finish, and writes every queued change before it returns.

`serve_app` serves the app on navarch's HTTP/1.1 server (`navarch.api.http`) with the limits of
`[server]`: at most `max_connections` connections at once (more wait in the listen backlog),
request headers within `header_timeout` and bodies within `body_timeout`. The header deadline
runs only while a request's headers are arriving, so it cuts neither the daemons' long polls nor
idle keep-alive connections. With `tls_cert_file` and `tls_key_file` every connection is TLS,
and its handshake must end within the header deadline of its first request. Neither deadline,
nor the keep-alive timeout, runs while an answer streams (the dashboard's `/ui/stream`).
"""

from __future__ import annotations

import errno
import gc
import ipaddress
import logging
import os
import resource
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import attrs
import trio

from navarch.api.admission import Admission
from navarch.api.app import ControlPlaneApp
from navarch.api.http import App, HttpConfig, serve_http
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
# at once and other requests take milliseconds, so this only bounds a request stuck elsewhere.
# Queued changes are written when the store closes, after this, whether or not a request was cut
# short.
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

    Open connections are long-lived objects (about 42 tracked objects each in navarch's HTTP
    server, 117 in hypercorn, which served the API before), and a full collection of hypercorn's
    10,000 took more than a second here (measured: p99 over 1 s at 333 heartbeats/s). With the
    default first threshold (700), request objects that live a few
    milliseconds are promoted to older generations under load and pile up there until a full
    collection. A first threshold of 50,000 lets them die young, so the old generations grow only
    with real state (connections, nodes) and full collections almost never run.
    """
    gc.set_threshold(50_000, 10, 10)


# File descriptors the process needs besides its clients' connections: the store, logs, sockets
# to providers and notifiers.
_SPARE_FILES = 256


def connection_limit(max_connections: int) -> int:
    """Raises the open-file soft limit to the hard one, since each connection takes a file, and
    returns how many connections the server may hold: `max_connections`, or fewer when even the
    hard limit leaves too few files (clients past it then wait in the listen backlog instead of
    failing)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):
            pass
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft - _SPARE_FILES))


def http_config(server: ServerConfig, listen: str) -> HttpConfig:
    """The HTTP server's settings for serving the API on `listen`."""
    return HttpConfig(
        listen=listen,
        keep_alive_timeout=max(_MIN_KEEP_ALIVE, 2.5 * server.heartbeat_interval.total_seconds()),
        graceful_timeout=_GRACEFUL_TIMEOUT,
        # Thousands of nodes reconnect at once after a restart of the control plane.
        backlog=4096,
    )


def tls_context(server: ServerConfig) -> ssl.SSLContext | None:
    """The TLS settings of `server`, None for plain http; NavarchError names a wrong file."""
    if not server.tls_cert_file:
        return None
    try:
        return tls_server_context(server)
    except ConfigValueError as exc:
        raise NavarchError(f"server.{exc}") from None


def bind(http: HttpConfig, listen: str) -> list[socket.socket]:
    """The listening sockets of `http`; NavarchError says why the address cannot be used."""
    host, port = split_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(http.backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            reason += (
                "; another process listens there (a control plane already running?): stop it, "
                "or pass --listen HOST:PORT with a free port"
            )
        raise NavarchError(f"cannot listen on {listen}: {reason}") from None
    return [sock]


async def serve_app(
    app: App,
    server: ServerConfig,
    http: HttpConfig,
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
    await serve_http(
        app,
        sockets,
        http,
        header_timeout=server.header_timeout.total_seconds(),
        body_timeout=server.body_timeout.total_seconds(),
        max_connections=server.max_connections,
        tls=tls,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )


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
    max_connections = connection_limit(server.max_connections)
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
                control_plane,
                max_body_bytes=server.max_body_bytes,
                leadership=leadership,
                admission=Admission.from_config(server),
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
            if max_connections < server.max_connections:
                log.info(
                    "max_connections=%d open_files=%d: serving at most %d connections, about "
                    "%d nodes; raise the hard open-file limit (ulimit -Hn, systemd LimitNOFILE) "
                    "for more",
                    server.max_connections,
                    max_connections + _SPARE_FILES,
                    max_connections,
                    max_connections // 2,
                )
            serving = attrs.evolve(server, max_connections=max_connections)
            binds = await nursery.start(
                partial(serve_app, app, serving, http, sockets, shutdown_trigger=stop.wait, tls=tls)
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
