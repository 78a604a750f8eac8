"""The `xid` health check: XIDs streamed from NVML's events and the kernel log, merged once."""

from __future__ import annotations

import contextlib
import json
import random

import pytest
import trio
import trio.testing
from support.api import rpc
from support.health_policy import judge_each, verdict
from support.kmsg import kernel_pci, record, xid_record
from support.switchable_client import SwitchableClient

from navarch.api import wire as m
from navarch.api.mapping import health_events_from_wire
from navarch.clock import utc_now
from navarch.controlplane import Caller
from navarch.daemon.agent import Daemon
from navarch.daemon.checks import load_health_checks
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import NvmlGpus, SimulatedGpus
from navarch.daemon.host import FixedHostStats
from navarch.health import Action, Result
from navarch.model import HealthEvent
from navarch.model import HealthEventType as T
from navarch.plugins import NodeWatch
from navarch.plugins.builtin.health_checks import KMSG_POSITION_FILE, XidCheck, XidCheckSettings
from navarch.plugins.manager import load_plugins
from navarch.telemetry.nvml import EventType


class Watching:
    """An xid check watching a backend, with what it reports on a channel."""

    def __init__(self, gpus, state_dir: str = "") -> None:
        self.gpus = gpus
        self.state_dir = state_dir
        self.send, self.receive = trio.open_memory_channel[HealthEvent](1000)

    def node(self) -> NodeWatch:
        def report(events):
            for event in events:
                self.send.send_nowait(event)

        return NodeWatch(
            gpus=self.gpus,
            inventory=tuple(self.gpus.inventory()),
            state_dir=self.state_dir,
            report=report,
            wall_clock=utc_now,
        )

    async def take(self, count: int, timeout: float = 10) -> list[HealthEvent]:
        with trio.fail_after(timeout) if timeout else contextlib.nullcontext():
            return [await self.receive.receive() for _ in range(count)]

    async def nothing_more(self) -> None:
        with trio.move_on_after(30):
            event = await self.receive.receive()
            pytest.fail(f"unexpected event {event}")


def xid_check(**settings) -> XidCheck:
    return XidCheck(XidCheckSettings(**settings))


async def test_nvml_events_stream_as_they_happen(fake_nvml, open_fake):
    gpus = NvmlGpus(open_fake())
    watching = Watching(gpus)
    info = gpus.inventory()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(xid_check().watch, watching.node())
        # Once every task waits, the check's NVML event set exists.
        await trio.testing.wait_all_tasks_blocked()
        assert fake_nvml.inject(1, EventType.XID, 48) >= 1  # an earlier test's set may linger
        assert fake_nvml.inject(0, EventType.GPU_RECOVERY_ACTION, 1) >= 1
        xid48, recovery = await watching.take(2)
        fake_nvml.lose(0)
        (lost,) = await watching.take(1)
        nursery.cancel_scope.cancel()
    assert (xid48.type, xid48.gpu_index, xid48.gpu_uuid, xid48.xid) == (
        T.XID,
        1,
        info[1].uuid,
        48,
    )
    assert xid48.details == {"source": "nvml", "pci_bus_id": info[1].pci_bus_id}
    assert (recovery.xid, recovery.details["recovery_action"]) == (154, "GPU_RESET")
    assert (lost.type, lost.gpu_index) == (T.GPU_LOST, 0)
    matches = judge_each([xid48, recovery, lost])
    assert [(mt.rule, mt.action) for mt in matches] == [
        ("xid-double-bit-ecc", Action.RESET_GPU),
        ("recovery-reset-gpu", Action.RESET_GPU),
        ("gpu-lost", Action.REPLACE),
    ]


async def test_kmsg_records_become_events_with_pid_process_and_recovery_action(
    kmsg_pipe, autojump_clock
):
    gpus = SimulatedGpus(4, seed="node")
    gpu1, gpu2 = gpus.inventory()[1:3]
    watching = Watching(gpus)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(xid_check(kmsg=True, kmsg_path=kmsg_pipe.path).watch, watching.node())
        kmsg_pipe(
            xid_record(1, gpu1, 13, "Graphics SM Warp Exception", pid=4121),
            xid_record(
                2,
                gpu2,
                154,
                "GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)",
            ),
            record(
                3,
                f"NVRM: The NVIDIA GPU {gpu2.pci_bus_id[4:]} (PCI ID: 10de:2330) installed in "
                "this system has fallen off the bus and is not responding to commands.",
            ),
            # Userspace can write a look-alike line; only the kernel's records count.
            record(4, f"NVRM: Xid ({kernel_pci(gpu1.pci_bus_id)}): 79, spoofed", facility=1),
        )
        xid13, xid154, xid79 = await watching.take(3)
        await watching.nothing_more()
        nursery.cancel_scope.cancel()
    assert (xid13.type, xid13.gpu_index, xid13.gpu_uuid, xid13.xid) == (
        T.XID,
        1,
        gpu1.uuid,
        13,
    )
    assert xid13.details == {
        "pci_bus_id": gpu1.pci_bus_id,
        "source": "kmsg",
        "pid": "4121",
        "process_name": "python3",
        "kmsg_seq": "1",
    }
    assert xid13.message == "Graphics SM Warp Exception"
    assert (xid154.gpu_index, xid154.details["recovery_action"]) == (2, "GPU_RESET")
    assert (xid79.gpu_index, xid79.xid) == (2, 79)
    matches = judge_each([xid13, xid154, xid79])
    assert [(mt.rule, mt.result, mt.action) for mt in matches] == [
        ("app-error", Result.DEGRADED, Action.ALERT),
        ("recovery-reset-gpu", Result.UNHEALTHY, Action.RESET_GPU),
        ("xid-replace", Result.UNHEALTHY, Action.REPLACE),
    ]


async def test_xid_13_from_different_processes_escalates(kmsg_pipe, autojump_clock):
    gpus = SimulatedGpus(2, seed="node")
    gpu0 = gpus.inventory()[0]
    watching = Watching(gpus)
    batches = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(xid_check(kmsg=True, kmsg_path=kmsg_pipe.path).watch, watching.node())
        for seq, pid in enumerate((300, 300, 301, 302), 1):
            kmsg_pipe(xid_record(seq, gpu0, 13, "Graphics Exception", pid=pid))
            batches.append((seq * 600.0, await watching.take(1)))
        nursery.cancel_scope.cancel()
    assert verdict(batches[:1]).health is Result.DEGRADED
    # The same process twice is still one job's fault.
    assert verdict(batches[:2]).health is Result.DEGRADED
    assert verdict(batches[:3]).health is Result.DEGRADED
    final = verdict(batches)
    assert (final.health, final.action, final.rule) == (
        Result.UNHEALTHY,
        Action.DRAIN,
        "app-error-repeated",
    )


async def test_an_xid_seen_by_nvml_and_the_kernel_log_counts_once(kmsg_pipe, autojump_clock):
    gpus = SimulatedGpus(2, seed="node")
    gpu0 = gpus.inventory()[0]
    watching = Watching(gpus)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(xid_check(kmsg=True, kmsg_path=kmsg_pipe.path).watch, watching.node())
        await trio.sleep(1)

        # NVML first: its event waits for the kernel log's record, which is the one sent.
        gpus.inject_xid(0, 13)
        await trio.sleep(1)
        kmsg_pipe(xid_record(1, gpu0, 13, "Graphics Exception", pid=10))
        (event,) = await watching.take(1)
        assert event.details["source"] == "kmsg"
        await watching.nothing_more()

        # The kernel log first: NVML's event of the same XID is dropped.
        kmsg_pipe(xid_record(2, gpu0, 31, "MMU Fault", pid=11))
        (event,) = await watching.take(1)
        await trio.sleep(1)
        gpus.inject_xid(0, 31)
        assert event.details["pid"] == "11"
        await watching.nothing_more()

        # Two processes hit the same XID at once: two records and two NVML events, two events.
        gpus.inject_xid(0, 13)
        gpus.inject_xid(0, 13)
        kmsg_pipe(
            xid_record(3, gpu0, 13, "Graphics Exception", pid=12),
            xid_record(4, gpu0, 13, "Graphics Exception", pid=13),
        )
        events = await watching.take(2)
        assert [e.details["pid"] for e in events] == ["12", "13"]
        await watching.nothing_more()

        # NVML alone: sent when the window passes without a record.
        gpus.inject_xid(1, 43)
        started = trio.current_time()
        (event,) = await watching.take(1)
        assert trio.current_time() - started == pytest.approx(2.0)
        assert (event.gpu_index, event.xid, event.details["source"]) == (1, 43, "nvml")
        nursery.cancel_scope.cancel()


async def test_simulated_gpus_read_no_kernel_log(autojump_clock):
    gpus = SimulatedGpus(2, seed="node")
    watching = Watching(gpus)
    # The default path would be the machine's /dev/kmsg; simulated GPUs never read it.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(xid_check().watch, watching.node())
        await trio.sleep(1)
        started = trio.current_time()
        gpus.lose_gpu(1)
        (event,) = await watching.take(1)
        assert trio.current_time() == started  # nothing waits for a kernel-log record
        nursery.cancel_scope.cancel()
    assert (event.xid, event.gpu_index, event.details["source"]) == (79, 1, "nvml")
    assert judge_each([event])[0].action is Action.REPLACE


async def test_a_restart_resumes_the_kernel_log_where_it_stopped(tmp_path, autojump_clock):
    gpus = SimulatedGpus(2, seed="node")
    gpu0 = gpus.inventory()[0]
    log = tmp_path / "kmsg.log"
    log.write_bytes(b"".join(xid_record(s, gpu0, 13, "Graphics Exception", pid=s) for s in (1, 2)))
    state = tmp_path / "state"
    state.mkdir()
    check = xid_check(kmsg=True, kmsg_path=str(log))

    async def run_once(expected: int) -> list[HealthEvent]:
        watching = Watching(gpus, str(state))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(check.watch, watching.node())
            # No deadline: on the autojump clock it would pass while the position file is
            # read and written in a worker thread.
            events = await watching.take(expected, timeout=0)
            await watching.nothing_more()
            nursery.cancel_scope.cancel()
        return events

    assert [e.details["pid"] for e in await run_once(2)] == ["1", "2"]
    assert json.loads((state / KMSG_POSITION_FILE).read_text())["seq"] == 2
    with log.open("ab") as f:
        f.write(xid_record(3, gpu0, 13, "Graphics Exception", pid=3))
    assert [e.details["pid"] for e in await run_once(1)] == ["3"]


async def test_an_unreadable_kernel_log_is_reported_once_and_nvml_goes_on(tmp_path, autojump_clock):
    gpus = SimulatedGpus(2, seed="node")
    watching = Watching(gpus)
    check = xid_check(kmsg=True, kmsg_path=str(tmp_path / "missing"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(check.watch, watching.node())
        (failed,) = await watching.take(1)
        await trio.sleep(200)  # retries fail the same way, without a new event
        gpus.inject_xid(0, 48)
        (event,) = await watching.take(1)
        nursery.cancel_scope.cancel()
    assert failed.type is T.CHECK_FAILED
    assert failed.details == {"check": "xid", "source": "kmsg"}
    assert event.xid == 48


async def test_the_daemon_runs_the_builtin_checks_against_the_control_plane(
    control_plane, kmsg_pipe, autojump_clock
):
    """Simulated failures and kernel-log XIDs reach the control plane through the real checks."""
    config = DaemonConfig(
        node_id="gpu-1",
        health_checks={"xid": {"kmsg": True, "kmsg_path": kmsg_pipe.path}},
    )
    checks = load_health_checks(load_plugins(entry_points=False), config)
    assert [name for name, _ in checks] == [
        "boot",
        "dcgm",
        "fabricmanager",
        "gpu",
        "infiniband",
        "nccl",
        "nvswitch",
        "xid",
    ]
    gpus = SimulatedGpus(4, seed="gpu-1")
    gpu1 = gpus.inventory()[1]
    daemon = Daemon(
        SwitchableClient(control_plane),
        gpus,
        config,
        host_stats=FixedHostStats(),
        health_checks=checks,
        rng=random.Random(1),
    )

    async def node() -> m.Node:
        reply = await rpc(control_plane, m.GetNodeRequest(node_id="gpu-1"), Caller.admin())
        return reply.node

    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(5)
        assert (await node()).health is m.HealthStatus.HEALTH_STATUS_HEALTHY

        kmsg_pipe(xid_record(1, gpu1, 13, "Graphics Exception", pid=777))
        await trio.sleep(1)  # streamed at once, not at the next health check
        (event,) = health_events_from_wire((await node()).last_health_events)
        assert (event.type, event.gpu_index, event.gpu_uuid, event.xid) == (
            T.XID,
            1,
            gpu1.uuid,
            13,
        )
        assert (event.details["pid"], event.details["process_name"]) == ("777", "python3")
        assert event.details["pci_bus_id"] == gpu1.pci_bus_id
        assert (await node()).health is m.HealthStatus.HEALTH_STATUS_DEGRADED

        gpus.set_temperature(0, 89)
        gpus.inject_remap_failure(2)
        await trio.sleep(daemon.health_check_interval)
        current = await node()
        by_type = {e.type: e for e in health_events_from_wire(current.last_health_events)}
        assert by_type[T.THERMAL].metrics == {
            "temperature_c": 89.0,
            "slowdown_c": 87.0,
            "shutdown_c": 92.0,
        }
        assert by_type[T.REMAPPED_ROWS].metrics["failure"] == 1.0
        assert by_type[T.REMAPPED_ROWS].gpu_index == 2
        daemon.stop()
    # What the control plane stored is what the default policy judges.
    rules = {
        mt.event.type: (mt.rule, mt.action)
        for mt in judge_each(health_events_from_wire(current.last_health_events))
    }
    assert rules[T.THERMAL] == ("thermal-slowdown", Action.ALERT)
    assert rules[T.REMAPPED_ROWS] == ("remapped-rows-failure", Action.REPLACE)
    assert judge_each([event])[0].rule == "app-error"


class FlakyWatch:
    """A watching check whose first watch fails; the second reports one event."""

    def __init__(self) -> None:
        self.starts = 0

    async def watch(self, node: NodeWatch) -> None:
        self.starts += 1
        if self.starts == 1:
            raise OSError("the source went away")
        node.report([HealthEvent(type=T.POWER, time=node.wall_clock())])
        await trio.sleep_forever()


async def test_a_failed_watch_is_reported_and_started_again(control_plane, autojump_clock):
    flaky = FlakyWatch()
    gpus = SimulatedGpus(2, seed="gpu-1")
    daemon = Daemon(
        SwitchableClient(control_plane),
        gpus,
        DaemonConfig(node_id="gpu-1"),
        health_checks=[("flaky", flaky), ("xid", xid_check())],
        rng=random.Random(1),
    )

    async def events() -> tuple[HealthEvent, ...]:
        reply = await rpc(control_plane, m.GetNodeRequest(node_id="gpu-1"), Caller.admin())
        return health_events_from_wire(reply.node.last_health_events)

    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(1)
        (failed,) = await events()
        assert failed.type is T.CHECK_FAILED
        assert failed.message == "health check flaky failed: OSError: the source went away"
        await trio.sleep(60)
        assert flaky.starts == 2
        assert [e.type for e in await events()] == [T.POWER]
        # The xid check took over the backend's events: each XID arrives once.
        gpus.inject_xid(1, 31)
        await trio.sleep(1)
        assert [(e.type, e.xid) for e in await events()] == [(T.XID, 31)]
        daemon.stop()
