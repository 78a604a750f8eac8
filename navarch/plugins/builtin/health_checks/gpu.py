"""The `gpu` health check: one sample of every GPU, each health-check interval.

It reads temperatures against the GPU's own thresholds, ECC counters, remapped rows, retired
pages, NVLink links and error counters, the PCIe link and its replays, clock event reasons, lost
GPUs and queries that failed.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from attrs import field, frozen

from navarch.plugins import HealthEvent, HealthEventType, WallClock, validators
from navarch.plugins.builtin.health_checks.repeats import Repeats

if TYPE_CHECKING:
    from navarch.plugins.telemetry import GpuSample

T = HealthEventType

# ClockEventReason bits worth an event: the hardware or the driver slowed the clocks for heat or
# power, not for idleness or an application's clock setting.
_HW_SLOWDOWN, _SW_THERMAL, _HW_THERMAL, _HW_POWER_BRAKE = 0x8, 0x20, 0x40, 0x80
_GPU_IDLE = 0x1
_CLOCK_NAMES = {
    _HW_SLOWDOWN: "HW_SLOWDOWN",
    _SW_THERMAL: "SW_THERMAL_SLOWDOWN",
    _HW_THERMAL: "HW_THERMAL_SLOWDOWN",
    _HW_POWER_BRAKE: "HW_POWER_BRAKE_SLOWDOWN",
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


@frozen(kw_only=True)
class GpuCheckSettings:
    # How often a condition that lasts is reported again; shorter than the control plane's
    # health window, so a node stays judged by it.
    repeat_every: timedelta = field(default=timedelta(minutes=5), validator=validators.positive)


class GpuCheck:
    """Sampled checks over every GPU, run each health-check interval.

    Counters are compared with the previous sample of the same GPU (by UUID), so an increase is
    reported once, when it happens.
    """

    Settings = GpuCheckSettings

    def __init__(self, settings: GpuCheckSettings, *, wall_clock: WallClock = _utc_now) -> None:
        from navarch.plugins.telemetry import NvmlReturn as Return

        self._lost = {Return.GPU_IS_LOST, Return.RESET_REQUIRED}
        self._gone = Return.GPU_IS_LOST
        # A missing feature is no failure; a lost GPU has its own event.
        self._ignored = {
            Return.SUCCESS,
            Return.NOT_SUPPORTED,
            Return.FUNCTION_NOT_FOUND,
            Return.GPU_IS_LOST,
            Return.RESET_REQUIRED,
        }
        self._reset_required = Return.RESET_REQUIRED
        self._repeats = Repeats(settings.repeat_every.total_seconds())
        self._wall_clock = wall_clock
        self._previous: dict[str, tuple[GpuSample, float]] = {}  # key -> (sample, trio time)
        # key -> the sample that found nothing and left no condition to repeat. The same sample
        # again (a simulated GPU whose readings did not change) would find nothing again.
        self._quiet: dict[str, GpuSample] = {}
        self._links_up: dict[str, set[int]] = collections.defaultdict(set)
        self._pci: dict[int, str] = {}

    def run(self, gpus: Sequence[GpuSample]) -> list[HealthEvent]:
        import trio

        now = trio.current_time()
        events: list[HealthEvent] = []
        for sample in gpus:
            key = sample.uuid or self._uuid_of(sample.index) or f"index-{sample.index}"
            previous = self._previous.get(key)
            if sample.pci_bus_id:
                self._pci[sample.index] = sample.pci_bus_id
            if self._quiet.get(key) is sample:
                self._previous[key] = (sample, now)
                continue
            found = _Found(self, sample, key)
            found.lost()
            # A GPU that needs a reset still reports its error counters, which matter most then.
            if sample.status != self._gone:
                before = previous[0] if previous else None
                found.failed_queries()
                found.thermal()
                found.ecc(before)
                found.remapped_rows(before)
                found.retired_pages(before)
                found.nvlink()
                found.nvlink_errors(previous, now)
                found.pcie(previous, now)
                found.pcie_link()
                found.clocks()
                self._previous[key] = (sample, now)
            if found.events or sample.status == self._gone or self._repeats.holds(key):
                self._quiet.pop(key, None)
            else:
                self._quiet[key] = sample
            events.extend(found.events)
        return events

    def _uuid_of(self, index: int) -> str:
        for key, (sample, _) in self._previous.items():
            if sample.index == index:
                return key
        return ""


class _Found:
    """The events of one GPU's sample."""

    def __init__(self, check: GpuCheck, sample: GpuSample, key: str) -> None:
        self.check = check
        self.sample = sample
        self.key = key
        self.events: list[HealthEvent] = []

    def due(
        self, kind: str, *, ongoing: bool, news: bool = False, signature: object = None
    ) -> bool:
        return self.check._repeats.due(
            (self.key, kind), ongoing=ongoing, news=news, signature=signature
        )

    def add(
        self,
        type_: HealthEventType,
        message: str,
        metrics: dict[str, float] | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        s = self.sample
        pci = s.pci_bus_id or self.check._pci.get(s.index, "")
        self.events.append(
            HealthEvent(
                type=type_,
                time=self.check._wall_clock(),
                gpu_index=s.index,
                gpu_uuid=s.uuid or (self.key if self.key.startswith("GPU-") else ""),
                message=message,
                metrics=metrics or {},
                details={**({"pci_bus_id": pci} if pci else {}), **(details or {})},
            )
        )

    def lost(self) -> None:
        status = self.sample.status
        if not self.due("lost", ongoing=status in self.check._lost, signature=status):
            return
        details = {"status": status.name}
        if status == self.check._reset_required:
            # The driver's word: a reset brings the GPU back, so the policy's recovery rules
            # ask for one rather than a new machine.
            details["recovery_action"] = "GPU_RESET"
            message = "NVML says the GPU needs a reset (RESET_REQUIRED)"
        else:
            message = "NVML lost the GPU (GPU_IS_LOST): it no longer answers on the bus"
        self.add(T.GPU_LOST, message, details=details)

    def failed_queries(self) -> None:
        failed = {
            name: code
            for name, code in self.sample.field_status.items()
            if code not in self.check._ignored
        }
        signature = tuple(sorted(failed.items()))
        if not self.due("queries", ongoing=bool(failed), signature=signature):
            return
        listed = ", ".join(f"{name} ({code.name})" for name, code in sorted(failed.items()))
        self.add(
            T.CHECK_FAILED,
            f"NVML could not read {listed}",
            details={"check": "gpu", "fields": ",".join(sorted(failed))},
        )

    def thermal(self) -> None:
        s = self.sample
        temperature, slowdown, shutdown = (
            s.temperature_c,
            s.temperature_slowdown_c,
            s.temperature_shutdown_c,
        )
        if temperature is None:
            return
        level = ""
        if shutdown and temperature >= shutdown:
            level = "shutdown"
        elif slowdown and temperature >= slowdown:
            level = "slowdown"
        if not self.due("thermal", ongoing=bool(level), signature=level):
            return
        metrics = {"temperature_c": float(temperature)}
        if slowdown:
            metrics["slowdown_c"] = float(slowdown)
        if shutdown:
            metrics["shutdown_c"] = float(shutdown)
        threshold = shutdown if level == "shutdown" else slowdown
        self.add(
            T.THERMAL,
            f"{temperature} C reached the GPU's {level} temperature of {threshold} C",
            metrics,
        )

    def ecc(self, previous: GpuSample | None) -> None:
        s = self.sample
        sbe, dbe = s.ecc_corrected_volatile, s.ecc_uncorrected_volatile
        if sbe is None and dbe is None:
            return
        sbe_delta = _increase(sbe, previous.ecc_corrected_volatile if previous else None)
        dbe_delta = _increase(dbe, previous.ecc_uncorrected_volatile if previous else None)
        ongoing = bool(dbe)
        if not self.due(
            "ecc", ongoing=ongoing, news=bool(sbe_delta or dbe_delta), signature=(sbe, dbe)
        ):
            return
        metrics = _known(
            sbe_volatile=sbe,
            dbe_volatile=dbe,
            sbe_aggregate=s.ecc_corrected_aggregate,
            dbe_aggregate=s.ecc_uncorrected_aggregate,
            sbe_delta=sbe_delta,
            dbe_delta=dbe_delta,
        )
        if dbe:
            message = f"{dbe} uncorrectable ECC errors since the last reset"
        else:
            message = f"{sbe_delta} new correctable ECC errors"
        self.add(T.ECC, message, metrics)

    def remapped_rows(self, previous: GpuSample | None) -> None:
        s = self.sample
        if s.remapped_rows_failure is None:
            return
        failure, pending = bool(s.remapped_rows_failure), bool(s.remapped_rows_pending)
        uncorrectable = s.remapped_rows_uncorrected or 0
        if previous is None:
            news = uncorrectable > 0  # rows remapped before the daemon started, reported once
        else:
            news = bool(_increase(uncorrectable, previous.remapped_rows_uncorrected))
        if not self.due(
            "remapped_rows", ongoing=failure or pending, news=news, signature=(failure, pending)
        ):
            return
        metrics = _known(
            failure=float(failure),
            pending=float(pending),
            uncorrectable=uncorrectable,
            correctable=s.remapped_rows_corrected,
        )
        if failure:
            message = "a row remap failed: the GPU cannot hide its bad memory"
        elif pending:
            message = "a row remap waits for the next GPU reset"
        else:
            message = f"{uncorrectable} rows remapped for uncorrectable errors"
        self.add(T.REMAPPED_ROWS, message, metrics)

    def retired_pages(self, previous: GpuSample | None) -> None:
        s = self.sample
        if s.retired_pages_sbe is None and s.retired_pages_dbe is None:
            return
        total = (s.retired_pages_sbe or 0) + (s.retired_pages_dbe or 0)
        pending = bool(s.retired_pages_pending)
        if previous is None:
            news = total > 0
        else:
            before = (previous.retired_pages_sbe or 0) + (previous.retired_pages_dbe or 0)
            news = total > before
        if not self.due("retired_pages", ongoing=pending, news=news, signature=pending):
            return
        metrics = _known(
            total=total,
            pending=float(pending),
            sbe=s.retired_pages_sbe,
            dbe=s.retired_pages_dbe,
        )
        message = f"{total} retired pages"
        if pending:
            message += ", and a retirement waits for the next GPU reset"
        self.add(T.RETIRED_PAGES, message, metrics)

    def nvlink(self) -> None:
        links = self.sample.nvlink_active
        seen_up = self.check._links_up[self.key]
        seen_up.update(i for i, up in enumerate(links) if up)
        # Only a link seen up counts as down: many boards leave links unconnected.
        down = sorted(i for i, up in enumerate(links) if up is False and i in seen_up)
        if not self.due("nvlink", ongoing=bool(down), signature=tuple(down)):
            return
        listed = ",".join(map(str, down))
        self.add(
            T.NVLINK,
            f"NVLink {'links' if len(down) > 1 else 'link'} {listed} went down",
            {"links_down": float(len(down))},
            {"links": listed},
        )

    def nvlink_errors(self, previous: tuple[GpuSample, float] | None, now: float) -> None:
        """Increases of the NVLink error counters since the previous sample. Replays and
        recoveries are named apart from CRC errors, whose rate matters more than their count."""
        s = self.sample
        if previous is None:
            return
        before = previous[0]
        replay = _increase(s.nvlink_replay_errors, before.nvlink_replay_errors)
        recovery = _increase(s.nvlink_recovery_errors, before.nvlink_recovery_errors)
        crc = _increase(s.nvlink_crc_flit_errors, before.nvlink_crc_flit_errors) + _increase(
            s.nvlink_crc_data_errors, before.nvlink_crc_data_errors
        )
        if not self.due("nvlink_errors", ongoing=False, news=bool(replay or recovery or crc)):
            return
        has_crc = s.nvlink_crc_flit_errors is not None or s.nvlink_crc_data_errors is not None
        metrics = _known(
            replay_delta=replay if s.nvlink_replay_errors is not None else None,
            recovery_delta=recovery if s.nvlink_recovery_errors is not None else None,
            crc_delta=crc if has_crc else None,
            replay_errors=s.nvlink_replay_errors,
            recovery_errors=s.nvlink_recovery_errors,
            crc_flit_errors=s.nvlink_crc_flit_errors,
            crc_data_errors=s.nvlink_crc_data_errors,
        )
        seconds = now - previous[1]
        if has_crc and seconds > 0:
            metrics["crc_per_second"] = crc / seconds
        counts = [(replay, "replay"), (recovery, "recovery"), (crc, "CRC")]
        listed = ", ".join(f"{n} {name}" for n, name in counts if n)
        self.add(T.NVLINK, f"new NVLink errors: {listed}", metrics)

    def pcie(self, previous: tuple[GpuSample, float] | None, now: float) -> None:
        s = self.sample
        counter = s.pcie_replay_counter
        if previous is None or counter is None:
            return
        delta = _increase(counter, previous[0].pcie_replay_counter)
        if not self.due("pcie", ongoing=False, news=bool(delta)):
            return
        minutes = (now - previous[1]) / 60
        # The policy's replay budget is per lane and grows with the generation the link runs at.
        metrics = _known(
            replay_delta=delta,
            replay_counter=counter,
            link_gen=s.pcie_link_gen,
            link_width=s.pcie_link_width,
        )
        if minutes > 0:
            metrics["replays_per_minute"] = delta / minutes
        self.add(T.PCIE, f"{delta} new PCIe replays", metrics)

    def pcie_link(self) -> None:
        """A PCIe link below its best: narrower, or slower while the GPU works. An idle GPU
        lowers its link generation to save power, so only a busy one's generation counts."""
        s = self.sample
        narrow = _below(s.pcie_link_width, s.pcie_link_width_max)
        busy = s.clock_event_reasons is not None and not s.clock_event_reasons & _GPU_IDLE
        slow = busy and _below(s.pcie_link_gen, s.pcie_link_gen_max)
        if not self.due("pcie_link", ongoing=narrow or slow, signature=(narrow, slow)):
            return
        metrics = _known(
            downgraded=1.0,
            link_gen=s.pcie_link_gen,
            link_gen_max=s.pcie_link_gen_max,
            link_width=s.pcie_link_width,
            link_width_max=s.pcie_link_width_max,
        )
        found = []
        if narrow:
            found.append(f"x{s.pcie_link_width} of x{s.pcie_link_width_max}")
        if slow:
            found.append(f"Gen{s.pcie_link_gen} of Gen{s.pcie_link_gen_max} while busy")
        self.add(T.PCIE, f"PCIe link below its best: {', '.join(found)}", metrics)

    def clocks(self) -> None:
        reasons = self.sample.clock_event_reasons
        if reasons is None:
            return
        slowed = reasons & (_HW_SLOWDOWN | _SW_THERMAL | _HW_THERMAL)
        brake = reasons & _HW_POWER_BRAKE
        for kind, bits, type_ in (
            ("clocks", slowed, T.CLOCKS),
            ("power", brake, T.POWER),
        ):
            if not self.due(kind, ongoing=bool(bits), signature=bits):
                continue
            names = ",".join(name for bit, name in _CLOCK_NAMES.items() if bits & bit)
            self.add(
                type_,
                f"clocks slowed: {names}",
                {"reasons": float(reasons)},
                {"reasons": names},
            )


def _increase(current: int | None, before: int | None) -> int:
    """How much a counter grew; 0 when either reading is missing or it went down (a reset)."""
    if current is None or before is None or current <= before:
        return 0
    return current - before


def _below(current: int | None, best: int | None) -> bool:
    """Whether a link runs below its best; False when either is unknown (0 means unknown)."""
    return bool(current and best and current < best)


def _known(**values: float | int | None) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None}
