from __future__ import annotations

import pytest
import trio

from navarch.daemon.gpu import SimulatedGpus, to_metrics
from navarch.model import HealthEventType
from navarch.telemetry.nvml import RecoveryAction, Return


def test_inventory_is_stable_per_seed_and_distinct_across_machines():
    a, b = SimulatedGpus(8, seed="n1"), SimulatedGpus(8, seed="n1")
    other = SimulatedGpus(8, seed="n2")
    assert a.inventory() == b.inventory()
    assert {g.uuid for g in a.inventory()}.isdisjoint(g.uuid for g in other.inventory())
    assert [g.index for g in a.inventory()] == list(range(8))
    assert len({g.pci_bus_id for g in SimulatedGpus(20).inventory()}) == 20


def test_readings_follow_load_deterministically():
    gpus = SimulatedGpus(2)
    idle = gpus.sample()
    assert idle[0].status is Return.SUCCESS and idle[0].uuid == gpus.inventory()[0].uuid
    gpus.set_load(100)
    busy = gpus.sample()
    assert busy == gpus.sample()
    assert busy[0].utilization_gpu_pct == 100
    assert busy[0].temperature_c > idle[0].temperature_c
    assert busy[0].power_usage_mw > idle[0].power_usage_mw
    assert busy[0].memory_used_bytes == busy[0].memory_total_bytes
    metrics = to_metrics(busy[0])
    assert (metrics.utilization_percent, metrics.power_watts) == (100.0, 637.0)
    gpus.set_load(50, memory_fraction=0.25, gpu=1)
    assert gpus.sample()[1].memory_used_bytes == busy[1].memory_total_bytes // 4
    with pytest.raises(ValueError):
        gpus.set_load(120)


def test_injected_failures_show_in_samples_until_recovered():
    gpus = SimulatedGpus(4)
    gpus.set_temperature(1, 95)
    gpus.inject_ecc(2, uncorrected=1, corrected=5)
    gpus.set_nvlink_down(3, 7)
    gpus.inject_pcie_replays(3, 40)
    gpus.lose_gpu(0)
    sample = gpus.sample()
    assert sample[0].status is Return.GPU_IS_LOST and sample[0].temperature_c is None
    assert sample[1].temperature_c == 95 and sample[1].clock_event_reasons & 0x40
    assert sample[2].ecc_uncorrected_volatile == 1 and sample[2].remapped_rows_pending
    assert sample[3].nvlink_active[7] is False and sample[3].nvlink_active.count(True) == 17
    assert sample[3].pcie_replay_counter == 40
    gpus.recover()
    healthy = gpus.sample()
    assert all(s.status is Return.SUCCESS and not s.remapped_rows_pending for s in healthy)
    assert healthy[1].temperature_c < 87 and all(healthy[3].nvlink_active)
    with pytest.raises(IndexError, match="no GPU 9"):
        gpus.inject_xid(9, 79)


async def test_events_are_streamed_as_they_happen(autojump_clock):
    gpus = SimulatedGpus(8)
    batches = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gpus.watch_events, batches.append)
        await trio.sleep(1)
        assert batches == []
        gpus.inject_xid(3, 48, "Double Bit ECC Error")
        gpus.lose_gpu(5)
        gpus.lose_gpu(5)  # already gone: no second XID 79
        await trio.sleep(1)
        gpus.inject_ecc(1, uncorrected=2)
        gpus.set_recovery_action(2, RecoveryAction.GPU_RESET)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    first, second = batches
    assert [(e.gpu_index, e.xid) for e in first] == [(3, 48), (5, 79)]
    assert first[1].details == {"pci_bus_id": gpus.inventory()[5].pci_bus_id}
    assert [e.type for e in second] == [HealthEventType.ECC, first[0].type]
    assert second[1].xid == 154 and second[1].details == {"recovery_action": "GPU_RESET"}
