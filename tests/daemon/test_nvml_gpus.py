"""The daemon on NVML's real dlopen path, over the fake libnvidia-ml, with a real clock."""

from __future__ import annotations

import pytest
import trio
from support.api import rpc
from support.switchable_client import SwitchableClient

from navarch.api import wire as m
from navarch.api.mapping import gpu_info_from_wire, health_events_from_wire
from navarch.controlplane import Caller
from navarch.daemon.agent import Daemon
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import NvmlGpus
from navarch.model import HealthEventType
from navarch.telemetry.nvml import EventType, open_nvml
from navarch.testing import CompilerNotFound, FakeNvml, build_fake_nvml


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    try:
        return build_fake_nvml(tmp_path_factory.mktemp("fake-nvml"))
    except CompilerNotFound as exc:
        pytest.skip(str(exc))


@pytest.fixture
def devices(library):
    fake = FakeNvml(library)
    fake.reset(4)
    return fake


async def test_nvml_gpus_register_report_metrics_and_stream_xids(control_plane, devices, library):
    devices.set(2, temperature=71)
    gpus = NvmlGpus(open_nvml(str(library)))
    try:
        assert [g.index for g in gpus.inventory()] == [0, 1, 2, 3]
        assert all(g.uuid.startswith("GPU-") for g in gpus.inventory())
        daemon = Daemon(SwitchableClient(control_plane), gpus, DaemonConfig(node_id="gpu-1"))
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            with trio.fail_after(10):
                # The daemon's event set exists once its event task has started.
                while devices.inject(1, EventType.XID, 48) == 0:
                    await trio.sleep(0.01)
                while True:
                    reply = await rpc(
                        control_plane, m.GetNodeRequest(node_id="gpu-1"), Caller.admin()
                    )
                    if reply.node.last_health_events:
                        break
                    await trio.sleep(0.05)
            daemon.stop()
    finally:
        gpus.close()
    node = reply.node
    assert tuple(gpu_info_from_wire(g) for g in node.gpus) == gpus.inventory()
    assert node.metrics.gpus[2].temperature_c == 71
    (event,) = health_events_from_wire(node.last_health_events)
    assert (event.type, event.gpu_index, event.xid) == (
        HealthEventType.XID,
        1,
        48,
    )
    assert event.gpu_uuid == gpus.inventory()[1].uuid
