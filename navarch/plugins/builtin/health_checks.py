"""The built-in health checks of the node daemon: `gpu`, `boot` and `xid`.

- `gpu` reads one sample of every GPU each health-check interval: temperatures against the GPU's
  own thresholds, ECC counters, remapped rows, retired pages, NVLink links, PCIe replays, clock
  event reasons, lost GPUs and queries that failed.
- `boot` checks that the machine has the GPUs it should.
- `xid` streams XIDs as they happen, from NVML's events and from the kernel log (/dev/kmsg),
  and reports an XID that both sources saw once, as the kernel log wrote it.

Every event uses the types, metric names and detail names that the default health policy reads
(docs/health.md). trio and the telemetry modules are imported when a check runs, not when the
plugin loads, so that `navarch --help` stays fast.
"""

from __future__ import annotations

import collections
import logging
import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from attrs import field, frozen

from navarch.plugins import (
    GpuInfo,
    HealthEvent,
    HealthEventType,
    NavarchError,
    WallClock,
    hookimpl,
    validators,
)

log = logging.getLogger("navarch.daemon")

T = HealthEventType
# The file in the daemon's state directory that holds the last kernel-log record handled.
KMSG_POSITION_FILE = "kmsg-position.json"
# How long to wait before reading the kernel log again after it failed.
KMSG_RETRY = 60.0

# ClockEventReason bits worth an event: the hardware or the driver slowed the clocks for heat or
# power, not for idleness or an application's clock setting.
_HW_SLOWDOWN, _SW_THERMAL, _HW_THERMAL, _HW_POWER_BRAKE = 0x8, 0x20, 0x40, 0x80
_CLOCK_NAMES = {
    _HW_SLOWDOWN: "HW_SLOWDOWN",
    _SW_THERMAL: "SW_THERMAL_SLOWDOWN",
    _HW_THERMAL: "HW_THERMAL_SLOWDOWN",
    _HW_POWER_BRAKE: "HW_POWER_BRAKE_SLOWDOWN",
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Repeats:
    """Decides when a condition is worth an event.

    A condition that lasts (a hot GPU, a pending row remap) is reported when it starts or
    changes, then again every `every` seconds while it lasts, so the control plane's verdict
    holds without one event per sample pushing the node's history out. News (a counter that
    increased) is reported at once.
    """

    def __init__(self, every: float) -> None:
        self._every = every
        self._last: dict[tuple[Any, ...], tuple[Any, float]] = {}

    def due(self, key: tuple[Any, ...], *, ongoing: bool, news: bool, signature: Any) -> bool:
        import trio

        if not (ongoing or news):
            self._last.pop(key, None)
            return False
        now = trio.current_time()
        last = self._last.get(key)
        if news or last is None or last[0] != signature or now - last[1] >= self._every:
            self._last[key] = (signature, now)
            return True
        return False

    def holds(self, first: Any) -> bool:
        """Whether any condition whose key starts with `first` may be reported again."""
        return any(key[0] == first for key in self._last)


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
        self._repeats = _Repeats(settings.repeat_every.total_seconds())
        self._wall_clock = wall_clock
        self._previous: dict[str, tuple[Any, float]] = {}  # key -> (sample, trio time)
        # key -> the sample that found nothing and left no condition to repeat. The same sample
        # again (a simulated GPU whose readings did not change) would find nothing again.
        self._quiet: dict[str, Any] = {}
        self._links_up: dict[str, set[int]] = collections.defaultdict(set)
        self._pci: dict[int, str] = {}

    def run(self, gpus: Sequence[Any]) -> list[HealthEvent]:
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
                found.pcie(previous, now)
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

    def __init__(self, check: GpuCheck, sample: Any, key: str) -> None:
        self.check = check
        self.sample = sample
        self.key = key
        self.events: list[HealthEvent] = []

    def due(self, kind: str, *, ongoing: bool, news: bool = False, signature: Any = None) -> bool:
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

    def ecc(self, previous: Any) -> None:
        s = self.sample
        sbe, dbe = s.ecc_corrected_volatile, s.ecc_uncorrected_volatile
        if sbe is None and dbe is None:
            return
        sbe_delta = _increase(sbe, previous and previous.ecc_corrected_volatile)
        dbe_delta = _increase(dbe, previous and previous.ecc_uncorrected_volatile)
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

    def remapped_rows(self, previous: Any) -> None:
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

    def retired_pages(self, previous: Any) -> None:
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

    def pcie(self, previous: tuple[Any, float] | None, now: float) -> None:
        counter = self.sample.pcie_replay_counter
        if previous is None or counter is None:
            return
        delta = _increase(counter, previous[0].pcie_replay_counter)
        if not self.due("pcie", ongoing=False, news=bool(delta)):
            return
        minutes = (now - previous[1]) / 60
        metrics = {"replay_delta": float(delta), "replay_counter": float(counter)}
        if minutes > 0:
            metrics["replays_per_minute"] = delta / minutes
        self.add(T.PCIE, f"{delta} new PCIe replays", metrics)

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


def _known(**values: float | int | None) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None}


@frozen(kw_only=True)
class BootCheckSettings:
    # GPUs this machine should have; unset means as many as the daemon found when it started.
    expected_gpus: int | None = field(
        default=None, validator=attrs.validators.optional(validators.at_least(0))
    )
    repeat_every: timedelta = field(default=timedelta(minutes=5), validator=validators.positive)


class BootCheck:
    """A GPU machine whose driver shows no GPUs, or not the GPUs it should have, is not healthy.

    Runs at the daemon's first health check, and on every one after it.
    """

    Settings = BootCheckSettings

    def __init__(self, settings: BootCheckSettings, *, wall_clock: WallClock = _utc_now) -> None:
        self._expected = settings.expected_gpus
        self._repeats = _Repeats(settings.repeat_every.total_seconds())
        self._wall_clock = wall_clock

    def run(self, gpus: Sequence[Any]) -> list[HealthEvent]:
        count = len(gpus)
        if self._expected is None and count:
            self._expected = count
        if count == 0:
            message = "NVML loaded but found no GPUs"
        elif count != self._expected:
            message = f"NVML found {count} GPUs; this machine should have {self._expected}"
        else:
            message = ""
        if not self._repeats.due(("boot",), ongoing=bool(message), news=False, signature=count):
            return []
        metrics = {"gpu_count": float(count)}
        if self._expected is not None:
            metrics["expected_gpus"] = float(self._expected)
        return [
            HealthEvent(
                type=T.BOOT,
                time=self._wall_clock(),
                message=message,
                metrics=metrics,
            )
        ]


@frozen(kw_only=True)
class XidCheckSettings:
    # Read the kernel log for XIDs. Unset: only on the machine's own GPUs (NVML), never for
    # simulated GPUs.
    kmsg: bool | None = None
    # /dev/kmsg, or a file or pipe of kmsg records.
    kmsg_path: str = "/dev/kmsg"
    # An XID that NVML and the kernel log both report within this time counts once.
    merge_window: timedelta = field(default=timedelta(seconds=2), validator=validators.positive)
    # Also parse XIDs that userspace wrote to the kernel log; for tests only, since any process
    # can write a look-alike line.
    trust_user_facility: bool = False


class XidCheck:
    """Streams XIDs, lost GPUs and uncorrectable ECC errors to the control plane as they happen.

    NVML's events arrive through the GPU backend; with the kernel log in use, an NVML XID waits
    up to `merge_window` for the kernel log's record of the same XID on the same GPU, which
    carries the process id and name and XID 154's recovery action, and only that record is sent.
    """

    Settings = XidCheckSettings

    def __init__(self, settings: XidCheckSettings) -> None:
        self.settings = settings

    async def watch(self, node: Any) -> None:
        import trio

        merger = _Merger(node, self.settings.merge_window.total_seconds())
        async with trio.open_nursery() as nursery:
            if self._reads_kmsg(node.gpus):
                merger.kmsg_active = True
                nursery.start_soon(self._kmsg_loop, node, merger)
            nursery.start_soon(merger.flush_loop)
            await node.gpus.watch_events(merger.gpu_events)

    def _reads_kmsg(self, gpus: Any) -> bool:
        if self.settings.kmsg is not None:
            return self.settings.kmsg
        return bool(gpus.hardware)

    async def _kmsg_loop(self, node: Any, merger: _Merger) -> None:
        import trio

        reported = ""
        while True:
            try:
                await self._read_kmsg(node, merger)
                merger.kmsg_active = False  # a file or pipe ended: NVML events wait no more
                return
            except (OSError, NavarchError) as exc:
                merger.kmsg_active = False
                # Once per kind of failure: retries that fail the same way tell nobody more.
                if str(exc) == reported:
                    await trio.sleep(KMSG_RETRY)
                    continue
                reported = str(exc)
                log.warning("reading %s failed: %s", self.settings.kmsg_path, exc)
                node.report(
                    [
                        HealthEvent(
                            type=T.CHECK_FAILED,
                            time=node.wall_clock(),
                            message=f"reading the kernel log {self.settings.kmsg_path} "
                            f"failed: {exc}",
                            details={"check": "xid", "source": "kmsg"},
                        )
                    ]
                )
            await trio.sleep(KMSG_RETRY)

    async def _read_kmsg(self, node: Any, merger: _Merger) -> None:
        import trio

        from navarch.plugins.telemetry import KmsgReader, ResumePosition

        saved = os.path.join(node.state_dir, KMSG_POSITION_FILE) if node.state_dir else ""
        resume = None
        if saved:
            try:
                resume = await trio.to_thread.run_sync(ResumePosition.load, saved)
            except Exception as exc:  # a damaged file costs the backlog, not the watcher
                log.warning("ignoring the saved kernel-log position: %s", exc)
        with KmsgReader(
            self.settings.kmsg_path,
            resume=resume,
            trust_user_facility=self.settings.trust_user_facility,
        ) as reader:
            merger.kmsg_active = True
            try:
                async for xid in reader.xid_events():
                    merger.kmsg_xid(xid)
                    if saved and reader.position is not None:
                        await trio.to_thread.run_sync(reader.position.save, saved)
            finally:
                # Records passed over since the last XID need not be read again after a restart.
                if saved and reader.position is not None and reader.position != resume:
                    reader.position.save(saved)


class _Merger:
    """Turns XIDs from NVML and the kernel log into events, reporting each XID once.

    Pairing is by count: each kernel-log record cancels one NVML XID with the same GPU and code
    within the window, whichever came first, so repeated XIDs from different processes are all
    reported.
    """

    def __init__(self, node: Any, window: float) -> None:
        import trio

        from navarch.plugins.telemetry import normalize_bus_id

        self.node = node
        self.window = window
        self._kmsg_active = False
        self._infos: dict[int, GpuInfo] = {g.index: g for g in node.inventory}
        self._by_pci: dict[str, GpuInfo] = {}
        for g in node.inventory:
            bus = normalize_bus_id(g.pci_bus_id) if g.pci_bus_id else None
            if bus:
                self._by_pci[bus] = g
        # (gpu index, xid) -> NVML events waiting for the kernel log, with their deadlines
        self._held: dict[tuple[int, int], collections.deque[tuple[float, HealthEvent]]] = (
            collections.defaultdict(collections.deque)
        )
        # (gpu index, xid) -> until when each kernel-log record may still cancel an NVML event
        self._credits: dict[tuple[int, int], collections.deque[float]] = collections.defaultdict(
            collections.deque
        )
        self._changed = trio.Event()

    @property
    def kmsg_active(self) -> bool:
        return self._kmsg_active

    @kmsg_active.setter
    def kmsg_active(self, active: bool) -> None:
        self._kmsg_active = active
        if not active:
            self._changed.set()  # NVML events held for the kernel log go out now

    def gpu_events(self, events: Sequence[Any]) -> None:
        import trio

        now = trio.current_time()
        out: list[HealthEvent] = []
        for e in events:
            info = self._infos.get(e.gpu_index)
            details = dict(e.details)
            if info is not None and info.pci_bus_id:
                details.setdefault("pci_bus_id", info.pci_bus_id)
            event = HealthEvent(
                type=e.type,
                time=self.node.wall_clock(),
                gpu_index=e.gpu_index,
                gpu_uuid=info.uuid if info else "",
                xid=e.xid,
                message=e.message or (f"XID {e.xid}" if e.xid else ""),
                details={"source": "nvml", **details},
            )
            if not e.xid:
                out.append(event)
                continue
            key = (e.gpu_index, e.xid)
            credits = self._credits.get(key)
            while credits and credits[0] < now:
                credits.popleft()
            if credits:
                credits.popleft()  # the kernel log already reported this XID
            elif self.kmsg_active:
                self._held[key].append((now + self.window, event))
                self._changed.set()
            else:
                out.append(event)
        self._send(out)

    def kmsg_xid(self, xid: Any) -> None:
        import trio

        from navarch.plugins.telemetry import RecoveryAction

        now = trio.current_time()
        info = self._by_pci.get(xid.pci_bus_id)
        index = info.index if info else -1
        details = {"pci_bus_id": xid.pci_bus_id, "source": "kmsg"}
        if xid.pid >= 0:
            details["pid"] = str(xid.pid)
        if xid.process_name:
            details["process_name"] = xid.process_name
        if xid.recovery_action is not None:
            try:
                details["recovery_action"] = RecoveryAction(xid.recovery_action.new).name
            except ValueError:
                details["recovery_action"] = str(xid.recovery_action.new)
        if xid.nvlink5 is not None:
            details["nvlink_link"] = str(xid.nvlink5.link)
            details["nvlink_fatal"] = "true" if xid.nvlink5.fatal else "false"
        if xid.seq is not None:
            details["kmsg_seq"] = str(xid.seq)
        key = (index, xid.code)
        held = self._held.get(key)
        if held:
            held.popleft()  # NVML's event of the same XID is superseded by this record
        else:
            self._credits[key].append(now + self.window)
        self._send(
            [
                HealthEvent(
                    type=T.XID,
                    time=self.node.wall_clock(),
                    gpu_index=index,
                    gpu_uuid=info.uuid if info else "",
                    xid=xid.code,
                    message=xid.message,
                    details=details,
                )
            ]
        )

    async def flush_loop(self) -> None:
        """Sends NVML XIDs whose window passed without a kernel-log record."""
        import trio

        while True:
            deadlines = [q[0][0] for q in self._held.values() if q]
            with trio.move_on_at(min(deadlines, default=math.inf)):
                await self._changed.wait()
            self._changed = trio.Event()
            now = trio.current_time()
            out: list[HealthEvent] = []
            for key, queue in list(self._held.items()):
                while queue and (queue[0][0] <= now or not self.kmsg_active):
                    out.append(queue.popleft()[1])
                if not queue:
                    del self._held[key]
            for key, credits in list(self._credits.items()):
                while credits and credits[0] <= now:
                    credits.popleft()
                if not credits:
                    del self._credits[key]
            self._send(out)

    def _send(self, events: list[HealthEvent]) -> None:
        if events:
            self.node.report(events)


@hookimpl
def navarch_health_checks(register: Any) -> None:
    register("gpu", GpuCheck)
    register("boot", BootCheck)
    register("xid", XidCheck)
