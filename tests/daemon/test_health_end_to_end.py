"""Hardware faults from the fake libnvidia-ml and the kernel log, through a real daemon and the
control plane's health policy, to the node's health, status and remediation episode."""

from __future__ import annotations

import random

import trio
from support.api import rpc
from support.kmsg import xid_record
from support.switchable_client import SwitchableClient

from navarch.api import wire as m
from navarch.controlplane import Caller
from navarch.daemon.agent import Daemon
from navarch.daemon.checks import load_health_checks
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import NvmlGpus
from navarch.daemon.host import FixedHostStats
from navarch.plugins.manager import load_plugins
from navarch.telemetry.nvml import EventType

S = m.NodeStatus
H = m.HealthStatus


def real_daemon(control_plane, nvml, kmsg_path: str) -> Daemon:
    config = DaemonConfig(
        node_id="gpu-1",
        health_checks={"xid": {"kmsg": True, "kmsg_path": kmsg_path}},
    )
    return Daemon(
        SwitchableClient(control_plane),
        NvmlGpus(nvml),
        config,
        host_stats=FixedHostStats(),
        health_checks=load_health_checks(load_plugins(entry_points=False), config),
        rng=random.Random(1),
    )


async def node(control_plane) -> m.Node:
    reply = await rpc(control_plane, m.GetNodeRequest(node_id="gpu-1"), Caller.admin())
    return reply.node


async def episodes(control_plane) -> tuple[m.Remediation, ...]:
    reply = await rpc(control_plane, m.ListRemediationsRequest(node_id="gpu-1"), Caller.admin())
    return reply.remediations


async def test_an_nvml_xid_79_makes_the_node_unhealthy_and_opens_an_episode(
    control_plane, fake_nvml, open_fake, kmsg_pipe
):
    # Real time: NVML events are waited for in a worker thread, which a mock clock cannot see.
    daemon = real_daemon(control_plane, open_fake(), kmsg_pipe.path)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        assert (await node(control_plane)).status is S.NODE_STATUS_ACTIVE
        fake_nvml.inject(1, int(EventType.XID), 79)
        with trio.fail_after(15):
            while not await episodes(control_plane):
                await trio.sleep(0.1)
        current = await node(control_plane)
        assert current.health is H.HEALTH_STATUS_UNHEALTHY
        assert current.status is not S.NODE_STATUS_ACTIVE
        [episode] = await episodes(control_plane)
        assert episode.rule == "xid-replace"
        [xid] = [e for e in current.last_health_events if e.xid == 79]
        assert xid.gpu_index == 1
        daemon.stop()


async def test_kernel_log_xid_13_degrades_and_escalates_across_processes(
    control_plane, fake_nvml, open_fake, kmsg_pipe, autojump_clock
):
    nvml = open_fake()
    daemon = real_daemon(control_plane, nvml, kmsg_pipe.path)
    gpu = NvmlGpus(nvml).inventory()[0]
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(5)
        kmsg_pipe(xid_record(1, gpu, 13, "Graphics Exception", pid=100))
        await trio.sleep(2)
        current = await node(control_plane)
        assert (current.status, current.health) == (S.NODE_STATUS_ACTIVE, H.HEALTH_STATUS_DEGRADED)
        assert await episodes(control_plane) == ()

        kmsg_pipe(
            xid_record(2, gpu, 13, "Graphics Exception", pid=101),
            xid_record(3, gpu, 13, "Graphics Exception", pid=102),
        )
        await trio.sleep(60)
        current = await node(control_plane)
        assert current.health is H.HEALTH_STATUS_UNHEALTHY
        # The policy drains a GPU that fails the same way for three processes; no replacement.
        assert current.status in (S.NODE_STATUS_DRAINING, S.NODE_STATUS_DRAINED)
        assert await episodes(control_plane) == ()
        daemon.stop()
