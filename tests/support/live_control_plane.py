"""A real control plane on loopback HTTP, run by trio in a thread, so CLI commands (which run
their own trio loop) can talk to it from the test's thread. Daemons run in the same thread, over
the in-process client, with drain actions a test chooses."""

from __future__ import annotations

import threading
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import trio

from navarch.api.app import ControlPlaneApp
from navarch.api.inprocess import InProcessClient
from navarch.api.methods import METHODS, call
from navarch.api.server import serve_app
from navarch.config import Config, ServerConfig
from navarch.controlplane import Caller, ControlPlane
from navarch.daemon.agent import Daemon
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import SimulatedGpus
from navarch.daemon.local import LocalMachines
from navarch.store import SQLiteStore
from support.serving import listening

SERVER = ServerConfig(
    heartbeat_interval=timedelta(seconds=1),
    health_check_interval=timedelta(seconds=5),
    command_poll_wait=timedelta(seconds=2),
)


class LiveControlPlane:
    def __init__(
        self,
        path: Path,
        *,
        admin_token: str = "",
        join_token: str = "",
        config: Config | None = None,
    ) -> None:
        self._path = path
        # A configuration with pools runs the pool manager and its fake nodes too.
        self._config = config
        self._tokens = {"admin_token": admin_token, "join_token": join_token}
        self._ready = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._failure: BaseException | None = None
        self.url = ""
        self.service: ControlPlane | None = None
        self.daemons: dict[str, Daemon] = {}

    def __enter__(self) -> LiveControlPlane:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("the control plane did not start")
        if self._failure is not None:
            raise self._failure
        return self

    def __exit__(self, *exc_info: object) -> None:
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(20)

    async def _main(self) -> None:
        self._stop = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        try:
            with listening(SERVER, "127.0.0.1:0") as (http, sockets):
                async with (
                    SQLiteStore.open(self._path) as store,
                    ControlPlane.open(
                        store, SERVER, config=self._config, machines=LocalMachines, **self._tokens
                    ) as service,
                    trio.open_nursery() as nursery,
                ):
                    self.service = service
                    self._nursery = nursery
                    binds = await nursery.start(
                        partial(
                            serve_app,
                            ControlPlaneApp(service),
                            SERVER,
                            http,
                            sockets,
                            shutdown_trigger=self._stop.wait,
                        )
                    )
                    self.url = binds[0]
                    self._ready.set()
                    await self._stop.wait()
                    service.stop_long_polls()
                    for daemon in self.daemons.values():
                        daemon.stop()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            raise

    def call(self, async_fn: Any, *args: Any) -> Any:
        """Runs `async_fn(*args)` in the control plane's thread and returns its result."""
        return trio.from_thread.run(async_fn, *args, trio_token=self._token)

    def admin(self, method: str, request: Any) -> Any:
        return self.call(call, self.service, METHODS[method], request, Caller.admin())

    def start_daemon(self, node_id: str, **kwargs: Any) -> Daemon:
        """Starts a daemon with 8 simulated GPUs and returns once it is registered."""
        config = DaemonConfig(node_id=node_id, pool=kwargs.pop("pool", "train"), provider="fake")
        daemon = Daemon(
            InProcessClient(self.service, Caller.node(node_id)),
            SimulatedGpus(8, seed=node_id),
            config,
            **kwargs,
        )
        self.daemons[node_id] = daemon
        self.call(self._nursery.start, daemon.run)
        return daemon
