"""The `gpu` and `boot` health checks over real NVML samples from the fake libnvidia-ml."""

from __future__ import annotations

import trio
from support.health_policy import judge_each

from navarch.daemon.gpu import SimulatedGpus
from navarch.health import Action, Result
from navarch.model import HealthEventType as T
from navarch.plugins.builtin.health_checks import (
    BootCheck,
    BootCheckSettings,
    GpuCheck,
    GpuCheckSettings,
)
from navarch.telemetry.nvml import Return


def gpu_check() -> GpuCheck:
    return GpuCheck(GpuCheckSettings())


def kinds(events):
    return [(e.type, e.gpu_index) for e in events]


async def test_healthy_gpus_give_no_events(open_fake):
    nvml = open_fake()
    check = gpu_check()
    assert check.run(nvml.sample()) == []
    assert check.run(nvml.sample()) == []


async def test_thermal_is_judged_against_each_gpus_own_thresholds(fake_nvml, open_fake):
    nvml = open_fake()
    check = gpu_check()
    # GPU 0 runs cooler than GPU 1 but has a lower slowdown threshold.
    fake_nvml.set(0, temperature=80, temperature_slowdown=78, temperature_shutdown=90)
    fake_nvml.set(1, temperature=85, temperature_slowdown=87, temperature_shutdown=92)
    (event,) = check.run(nvml.sample())
    assert (event.type, event.gpu_index) == (T.THERMAL, 0)
    assert event.metrics == {"temperature_c": 80.0, "slowdown_c": 78.0, "shutdown_c": 90.0}
    assert event.gpu_uuid == nvml.sample()[0].uuid
    assert event.details["pci_bus_id"] == nvml.sample()[0].pci_bus_id
    (match,) = judge_each([event])
    assert (match.rule, match.result, match.action) == (
        "thermal-slowdown",
        Result.DEGRADED,
        Action.ALERT,
    )

    fake_nvml.set(1, temperature=93)
    (event,) = check.run(nvml.sample())  # GPU 0's lasting condition is not repeated yet
    assert (event.gpu_index, event.metrics["temperature_c"]) == (1, 93.0)
    assert judge_each([event])[0].action is Action.REPLACE


async def test_a_lasting_condition_is_reported_again_after_repeat_every(
    fake_nvml, open_fake, autojump_clock
):
    nvml = open_fake()
    check = gpu_check()
    fake_nvml.set(0, remapped_rows_pending=1)
    assert kinds(check.run(nvml.sample())) == [(T.REMAPPED_ROWS, 0)]
    await trio.sleep(60)
    assert check.run(nvml.sample()) == []
    await trio.sleep(240)
    assert kinds(check.run(nvml.sample())) == [(T.REMAPPED_ROWS, 0)]
    fake_nvml.set(0, remapped_rows_pending=0)
    assert check.run(nvml.sample()) == []
    fake_nvml.set(0, remapped_rows_pending=1)  # a new remap reports at once
    assert len(check.run(nvml.sample())) == 1


async def test_ecc_counters_report_their_increase(fake_nvml, open_fake):
    nvml = open_fake()
    check = gpu_check()
    assert check.run(nvml.sample()) == []  # GPU 1 starts with one old corrected error
    fake_nvml.set(1, ecc_corrected_volatile=4)
    (event,) = check.run(nvml.sample())
    assert event.type is T.ECC
    assert event.metrics["sbe_delta"] == 3.0
    assert event.metrics["dbe_volatile"] == 0.0
    assert judge_each([event])[0].result is Result.HEALTHY
    assert check.run(nvml.sample()) == []

    fake_nvml.set(1, ecc_uncorrected_volatile=2, ecc_uncorrected_aggregate=2)
    (event,) = check.run(nvml.sample())
    assert (event.metrics["dbe_volatile"], event.metrics["dbe_delta"]) == (2.0, 2.0)
    (match,) = judge_each([event])
    assert (match.rule, match.action) == ("ecc-double-bit", Action.RESET_GPU)


async def test_remapped_row_failure_replaces_the_node(fake_nvml, open_fake):
    nvml = open_fake()
    check = gpu_check()
    check.run(nvml.sample())
    fake_nvml.set(0, remapped_rows_failure=1, remapped_rows_uncorrected=3)
    (event,) = check.run(nvml.sample())
    assert event.type is T.REMAPPED_ROWS
    assert event.metrics == {
        "failure": 1.0,
        "pending": 0.0,
        "uncorrectable": 3.0,
        "correctable": 0.0,
    }
    (match,) = judge_each([event])
    assert (match.rule, match.result, match.action) == (
        "remapped-rows-failure",
        Result.UNHEALTHY,
        Action.REPLACE,
    )


async def test_retired_pages_total_and_pending(fake_nvml, open_fake):
    nvml = open_fake()
    check = gpu_check()
    fake_nvml.set(1, retired_pages_sbe=40, retired_pages_dbe=30)
    (event,) = check.run(nvml.sample())  # pages retired before the daemon started count once
    assert event.metrics["total"] == 70.0
    assert judge_each([event])[0].rule == "retired-pages-limit"
    assert check.run(nvml.sample()) == []
    fake_nvml.set(1, retired_pages_pending=1)
    (event,) = check.run(nvml.sample())
    assert event.metrics["pending"] == 1.0


async def test_nvlink_down_pcie_replays_and_clock_reasons(fake_nvml, open_fake):
    nvml = open_fake()
    check = gpu_check()
    fake_nvml.set(0, nvlink_up_mask=(1 << 18) - 1 - (1 << 17))
    check.run(nvml.sample())  # link 17 was never up: an unconnected link is not news
    fake_nvml.set(0, nvlink_up_mask=(1 << 18) - 1 - (1 << 17) - (1 << 3))
    fake_nvml.set(1, pcie_replay_counter=12, clock_event_reasons=0x40 | 0x80)
    events = check.run(nvml.sample())
    by_type = {e.type: e for e in events}
    assert set(by_type) == {
        T.NVLINK,
        T.PCIE,
        T.CLOCKS,
        T.POWER,
    }
    nvlink = by_type[T.NVLINK]
    assert (nvlink.gpu_index, nvlink.details["links"]) == (0, "3")
    assert by_type[T.PCIE].metrics["replay_delta"] == 12.0
    clocks = by_type[T.CLOCKS]
    assert clocks.metrics["reasons"] == float(0x40 | 0x80)
    assert clocks.details["reasons"] == "HW_THERMAL_SLOWDOWN"
    assert by_type[T.POWER].details["reasons"] == "HW_POWER_BRAKE_SLOWDOWN"
    rules = {m.event.type: m.rule for m in judge_each(events)}
    assert rules[T.CLOCKS] == "clocks-hardware-slowdown"
    assert rules[T.POWER] == "power"
    # The PCIe counter went no further: nothing more to say.
    assert T.PCIE not in {e.type for e in check.run(nvml.sample())}


async def test_nvlink_error_counters_report_their_increase(fake_nvml, open_fake, autojump_clock):
    fake_nvml.set_nvlink_errors(0, 4, replay=7, crc_flit=50)  # before the daemon started
    nvml = open_fake()
    check = gpu_check()
    assert check.run(nvml.sample()) == []

    await trio.sleep(60)
    fake_nvml.set_nvlink_errors(0, 4, replay=7, crc_flit=80, crc_data=10)
    (event,) = check.run(nvml.sample())
    assert (event.type, event.gpu_index) == (T.NVLINK, 0)
    assert event.message == "new NVLink errors: 40 CRC"
    assert event.metrics == {
        "replay_delta": 0.0,
        "recovery_delta": 0.0,
        "crc_delta": 40.0,
        "crc_per_second": 40 / 60,
        "replay_errors": 7.0,
        "recovery_errors": 0.0,
        "crc_flit_errors": 80.0,
        "crc_data_errors": 10.0,
    }
    (match,) = judge_each([event])
    assert (match.rule, match.result) == ("nvlink-crc", Result.DEGRADED)
    assert check.run(nvml.sample()) == []

    await trio.sleep(10)
    fake_nvml.set_nvlink_errors(0, 9, crc_data=5000)
    (event,) = check.run(nvml.sample())
    assert event.metrics["crc_per_second"] == 500.0
    assert judge_each([event])[0].rule == "nvlink-crc-rate"

    await trio.sleep(10)
    fake_nvml.set_nvlink_errors(1, 0, recovery=1)
    (event,) = check.run(nvml.sample())
    assert (event.gpu_index, event.metrics["recovery_delta"]) == (1, 1.0)
    (match,) = judge_each([event])
    assert (match.rule, match.action) == ("nvlink-replay-recovery", Action.RESET_GPU)


async def test_nvlink_counters_of_a_gpu_without_nvlink_are_left_out(fake_nvml, open_fake):
    fake_nvml.set(1, nvlink_links=0)
    nvml = open_fake()
    check = gpu_check()
    check.run(nvml.sample())
    assert check.run(nvml.sample()) == []  # NOT_SUPPORTED is no failed query
    assert nvml.sample()[1].nvlink_crc_flit_errors is None


async def test_pcie_replays_are_judged_against_the_links_budget(
    fake_nvml, open_fake, autojump_clock
):
    fake_nvml.set(0, pcie_link_gen=4, pcie_link_width=16)
    nvml = open_fake()
    check = gpu_check()
    check.run(nvml.sample())
    await trio.sleep(60)
    # Gen4 x16 may replay 16 * 0.96 = 15.36 times a minute.
    fake_nvml.set(0, pcie_replay_counter=15)
    (event,) = check.run(nvml.sample())
    assert event.metrics == {
        "replay_delta": 15.0,
        "replay_counter": 15.0,
        "link_gen": 4.0,
        "link_width": 16.0,
        "replays_per_minute": 15.0,
    }
    assert judge_each([event])[0].rule == ""
    await trio.sleep(60)
    fake_nvml.set(0, pcie_replay_counter=31)
    (event,) = check.run(nvml.sample())
    (match,) = judge_each([event])
    assert (match.rule, match.result) == ("pcie-replay-rate", Result.DEGRADED)


async def test_a_pcie_link_below_its_best(fake_nvml, open_fake):
    nvml = open_fake()
    check = gpu_check()
    assert check.run(nvml.sample()) == []
    # An idle GPU (the fake's default clock reason) may lower its link generation.
    fake_nvml.set(0, pcie_link_gen=1)
    assert check.run(nvml.sample()) == []
    fake_nvml.set(0, clock_event_reasons=0)
    (event,) = check.run(nvml.sample())
    assert (event.type, event.gpu_index) == (T.PCIE, 0)
    assert event.message == "PCIe link below its best: Gen1 of Gen5 while busy"
    assert check.run(nvml.sample()) == []  # lasting: reported again after repeat_every

    fake_nvml.set(1, pcie_link_width=8)
    (event,) = check.run(nvml.sample())
    assert event.gpu_index == 1
    assert event.message == "PCIe link below its best: x8 of x16"
    assert event.metrics == {
        "downgraded": 1.0,
        "link_gen": 5.0,
        "link_gen_max": 5.0,
        "link_width": 8.0,
        "link_width_max": 16.0,
    }


async def test_a_lost_gpu_and_failing_queries(fake_nvml, open_fake):
    nvml = open_fake()
    check = gpu_check()
    check.run(nvml.sample())
    fake_nvml.lose(1)
    fake_nvml.fail("nvmlDeviceGetPowerUsage", Return.NO_PERMISSION, 0)
    fake_nvml.fail("nvmlDeviceGetPcieReplayCounter", Return.NOT_SUPPORTED, 0)
    events = check.run(nvml.sample())
    assert kinds(events) == [
        (T.CHECK_FAILED, 0),
        (T.GPU_LOST, 1),
    ]
    failed, lost = events
    assert failed.details["fields"] == "power_usage"
    assert "NO_PERMISSION" in failed.message
    # The lost GPU no longer reports its identity; the check remembers it.
    assert lost.gpu_uuid.startswith("GPU-")
    assert lost.details["status"] == "GPU_IS_LOST"
    matches = judge_each(events)
    assert [m.rule for m in matches] == ["check-failed", "gpu-lost"]
    assert matches[1].action is Action.REPLACE


async def test_a_gpu_that_needs_a_reset_asks_for_one(fake_nvml, open_fake):
    nvml = open_fake()
    check = gpu_check()
    check.run(nvml.sample())
    fake_nvml.fail("nvmlDeviceGetTemperatureV", Return.RESET_REQUIRED, 0)
    fake_nvml.set(0, ecc_uncorrected_volatile=1)
    events = check.run(nvml.sample())
    # The counters still come through, and the failed query is no separate failure.
    assert kinds(events) == [(T.GPU_LOST, 0), (T.ECC, 0)]
    assert events[0].details["status"] == "RESET_REQUIRED"
    assert [(mt.rule, mt.action) for mt in judge_each(events)] == [
        ("recovery-reset-gpu", Action.RESET_GPU),
        ("ecc-double-bit", Action.RESET_GPU),
    ]
    # After the reset the GPU answers again; losing it later is news at once.
    fake_nvml.fail("nvmlDeviceGetTemperatureV", Return.SUCCESS, 0)
    fake_nvml.set(0, ecc_uncorrected_volatile=0)
    assert check.run(nvml.sample()) == []
    fake_nvml.lose(0)
    assert kinds(check.run(nvml.sample())) == [(T.GPU_LOST, 0)]


async def test_simulated_failures_go_through_the_same_check():
    gpus = SimulatedGpus(4, seed="sim")
    check = gpu_check()
    assert check.run(gpus.sample()) == []
    gpus.set_temperature(0, 90)
    gpus.inject_remap_failure(1)
    gpus.set_nvlink_down(2, 5)
    gpus.lose_gpu(3)
    events = check.run(gpus.sample())
    assert sorted(kinds(events), key=lambda k: (k[1], k[0].value)) == [
        (T.CLOCKS, 0),
        (T.THERMAL, 0),
        (T.REMAPPED_ROWS, 1),
        (T.NVLINK, 2),
        (T.GPU_LOST, 3),
    ]
    gpus.recover()
    check.run(gpus.sample())
    gpus.inject_nvlink_errors(1, replay=2)
    gpus.set_pcie_lanes(2, 4)
    events = check.run(gpus.sample())
    assert kinds(events) == [(T.NVLINK, 1), (T.PCIE, 2)]
    assert judge_each(events)[0].rule == "nvlink-replay-recovery"
    assert events[1].metrics["link_width"] == 4.0


async def test_boot_check_counts_gpus(fake_nvml, open_fake):
    check = BootCheck(BootCheckSettings(expected_gpus=4))
    (event,) = check.run(open_fake().sample())
    assert event.type is T.BOOT
    assert event.gpu_index == -1
    assert event.metrics == {"gpu_count": 2.0, "expected_gpus": 4.0}
    (match,) = judge_each([event])
    assert (match.rule, match.action) == ("boot-failure", Action.REPLACE)

    fake_nvml.reset(0)
    (event,) = BootCheck(BootCheckSettings()).run(open_fake().sample())
    assert event.message == "NVML loaded but found no GPUs"

    check = BootCheck(BootCheckSettings())
    assert check.run(SimulatedGpus(8).sample()) == []
    (event,) = check.run(SimulatedGpus(7).sample())
    assert event.message == "NVML found 7 GPUs; this machine should have 8"
