"""Running the control plane as a server: the store, the service and hypercorn's trio worker.

`serve` owns the whole process lifetime: it opens the SQLite store, loads the service, serves the
app until SIGINT or SIGTERM, then stops accepting connections, answers the long polls at once,
lets in-flight requests finish, and writes every queued change before it returns.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import os
import signal
from collections.abc import Callable
from functools import partial
from pathlib import Path

import hypercorn.config
import hypercorn.trio
import trio

from navarch.api.app import ControlPlaneApp
from navarch.config import AuthConfig, Config, ServerConfig
from navarch.controlplane import ControlPlane
from navarch.errors import NavarchError, UsageError
from navarch.pools.context import MachineRunner
from navarch.store import SQLiteStore

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


async def serve(
    server: ServerConfig,
    *,
    listen: str,
    store_path: str,
    admin_token: str = "",
    join_token: str = "",
    on_ready: Callable[[str], None] = print,
    config: Config | None = None,
    machines: Callable[[ControlPlane, trio.Nursery], MachineRunner] | None = None,
) -> None:
    """Serves until SIGINT or SIGTERM; `on_ready` gets the one-line ready message.

    `machines` builds what runs the simulated machines of providers that have them (the fake
    provider's local fleet).
    """
    try:
        await _serve(
            server,
            listen=listen,
            store_path=store_path,
            admin_token=admin_token,
            join_token=join_token,
            on_ready=on_ready,
            config=config,
            machines=machines,
        )
    except BaseExceptionGroup as group:
        # A failure inside a nursery arrives wrapped; a single error for people is shown as is.
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, NavarchError):
            raise leaf from None
        raise


async def _serve(
    server: ServerConfig,
    *,
    listen: str,
    store_path: str,
    admin_token: str = "",
    join_token: str = "",
    on_ready: Callable[[str], None],
    config: Config | None = None,
    machines: Callable[[ControlPlane, trio.Nursery], MachineRunner] | None = None,
) -> None:
    _tune_garbage_collector()
    http = http_config(server, listen)
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with (
            SQLiteStore.open(store_path) as store,
            ControlPlane.open(
                store,
                server,
                admin_token=admin_token,
                join_token=join_token,
                config=config,
                machines=machines,
            ) as control_plane,
            trio.open_nursery() as nursery,
        ):
            app = ControlPlaneApp(control_plane, max_body_bytes=server.max_body_bytes)

            async def wait_for_signal() -> None:
                async for signum in signals:
                    log.info("signal=%s stopping", signal.Signals(signum).name)
                    control_plane.stop_long_polls()
                    stop.set()
                    return

            nursery.start_soon(wait_for_signal)
            try:
                binds = await nursery.start(
                    partial(hypercorn.trio.serve, app, http, shutdown_trigger=stop.wait)
                )
            except OSError as exc:
                raise NavarchError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
            on_ready(f"navarch control plane listening on {binds[0]} (store: {store.location})")
            await stop.wait()
    log.info("stopped")
