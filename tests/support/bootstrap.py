"""A served control plane whose pool bootstraps the machines of a recording cloud, for the
bootstrap tests (the machines themselves are `support.machine`'s)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import trio

from navarch.api.app import ControlPlaneApp
from navarch.api.server import serve_app
from navarch.config import Config, parse_config
from navarch.controlplane import ControlPlane
from navarch.model import InstanceRecord
from navarch.plugins import Instance, InstanceNotFound, InstanceState, ProvisionRequest
from navarch.store import SQLiteStore
from support.fleet import free_port
from support.pool_manager import PLUGINS
from support.serving import ADMIN_TOKEN, SERVER, listening

REPO = Path(__file__).resolve().parents[2]
# The interpreter the machine makes navarch's virtual environment with.
PYTHON = getattr(sys, "_base_executable", sys.executable)


class RecordingCloud:
    """A provider whose machines are played by the test: it records what each was asked."""

    def __init__(self, address: str = "") -> None:
        self.address = address
        self.requests: dict[str, ProvisionRequest] = {}
        self.instances: dict[str, Instance] = {}
        self.terminated: list[str] = []

    async def provision(self, request: ProvisionRequest) -> Instance:
        instance_id = f"i-{len(self.requests) + 1:04d}"
        self.requests[instance_id] = request
        instance = Instance(
            instance_id=instance_id,
            provider="cloud",
            instance_type=request.instance_type,
            state=InstanceState.RUNNING,
            region="local",
            pool=request.pool,
            labels=dict(request.labels),
            created_at=datetime.now(UTC),
            address=self.address,
        )
        self.instances[instance_id] = instance
        return instance

    async def terminate(self, instance_id: str) -> None:
        if self.instances.pop(instance_id, None) is None:
            raise InstanceNotFound(instance_id)
        self.terminated.append(instance_id)

    async def list(self) -> list[Instance]:
        return list(self.instances.values())


def bootstrap_config(
    url: str, *, wheel: str = str(REPO), timeout: str = "10m", pool: str = "", extra: str = ""
) -> Config:
    text = f"""
[bootstrap]
control_plane_url = "{url}"
wheel_url = "{wheel}"
python = "{PYTHON}"

[providers.cloud]
type = "fake"

[pools.train]
instance_type = "h100-8x"
min_nodes = 1
max_nodes = 1
scale_interval = "1s"
registration_timeout = "{timeout}"
labels = {{ team = "vision" }}
{pool}

[[pools.train.providers]]
provider = "cloud"
{extra}
"""
    return parse_config(text, plugins=PLUGINS, base_dir=REPO)


@asynccontextmanager
async def served_fleet(
    tmp_path: Path, make_config: Callable[[str], Config], cloud: RecordingCloud
) -> AsyncIterator[tuple[str, ControlPlane]]:
    """A control plane with the pool of `make_config(url)`, served on a loopback port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with listening(SERVER, f"127.0.0.1:{port}") as (http, sockets):
        async with (
            SQLiteStore.open(tmp_path / "navarch.db") as store,
            ControlPlane.open(
                store,
                SERVER,
                admin_token=ADMIN_TOKEN,
                config=make_config(url),
                providers={"cloud": cloud},
            ) as service,
            trio.open_nursery() as nursery,
        ):
            app = ControlPlaneApp(service, max_body_bytes=SERVER.max_body_bytes)
            stop = trio.Event()
            await nursery.start(
                partial(serve_app, app, SERVER, http, sockets, shutdown_trigger=stop.wait)
            )
            try:
                yield url, service
            finally:
                stop.set()


def record_of(service: ControlPlane, instance_id: str) -> InstanceRecord:
    return service.pool_manager().instances.records[("cloud", instance_id)]


async def eventually(check: Callable[[], object], timeout: float = 120.0) -> None:
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.2)


def token_of(script: str) -> str:
    line = next(line for line in script.splitlines() if line.startswith("token="))
    return line.removeprefix("token=")
