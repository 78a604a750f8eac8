"""What the daemon needs from a machine's GPUs, and a simulated machine that provides it.

A backend answers three questions: which GPUs are there (`inventory`, sent at registration),
what do they read now (`sample`, for heartbeats and health checks), and what just went wrong
(`watch_events`, streamed to the control plane as it happens). For a GPU reset it also says which
processes hold a GPU (`running_processes`) and resets one (`reset`). Samples are NVML's own
`navarch.telemetry.GpuSample`, whatever the backend, so a health check reads one type. `NvmlGpus`
reads the real hardware; `SimulatedGpus` is an in-memory machine whose failures a test, the fake
provider or the simulator injects.
"""

from __future__ import annotations

import collections
import random
import types
import uuid
from collections.abc import Awaitable, Callable, Mapping

import attrs
import trio

from navarch.api.wire import GpuMetrics
from navarch.model import GpuInfo, HealthEventType
from navarch.plugins.health_check import GpuEvent, ReportEvents
from navarch.telemetry.nvml import (
    FIELDS,
    EventType,
    GpuSample,
    Nvml,
    NVMLError,
    NvmlEvent,
    RecoveryAction,
    Return,
    open_nvml,
)

GIB = 1 << 30

__all__ = ["RESET_OUTCOMES", "GpuSample", "NvmlGpus", "SimulatedGpus", "to_metrics"]

# What a reset of a simulated GPU does: clears its failures, fails and leaves them, or loses it.
RESET_OUTCOMES = ("clean", "fails", "lost")


def to_metrics(sample: GpuSample) -> GpuMetrics:
    """The part of a sample that rides on every heartbeat."""
    return GpuMetrics(
        index=sample.index,
        utilization_percent=float(sample.utilization_gpu_pct or 0),
        memory_used_bytes=sample.memory_used_bytes or 0,
        temperature_c=float(sample.temperature_c or 0),
        power_watts=(sample.power_usage_mw or 0) / 1000,
        ecc_corrected=sample.ecc_corrected_volatile or 0,
        ecc_uncorrected=sample.ecc_uncorrected_volatile or 0,
    )


class GpuResetFailed(Exception):
    """A simulated reset that its script made fail."""


class NvmlGpus:
    """The machine's NVIDIA GPUs through an open NVML session (`navarch.telemetry.open_nvml`).

    A GPU reset needs every NVML client to let go of the GPU, the daemon too: `reset` closes the
    session (ending the event watch), runs the reset command, and the next `sample` opens NVML
    again. Meanwhile samples are the last ones taken, and afterwards, while NVML cannot open, a
    sample says why for every GPU.
    """

    hardware = True

    # Single-bit ECC errors are counted in every sample; streaming each one would only be noise.
    EVENTS = (
        EventType.XID
        | EventType.DOUBLE_BIT_ECC
        | EventType.GPU_UNAVAILABLE
        | EventType.GPU_RECOVERY_ACTION
    )

    def __init__(self, nvml: Nvml) -> None:
        self._nvml: Nvml | None = nvml
        self._library = nvml.library
        self._engine = nvml.backend
        self._last = nvml.sample()
        self._inventory = tuple(
            GpuInfo(
                index=s.index,
                uuid=s.uuid or "",
                name=s.name or "",
                pci_bus_id=s.pci_bus_id or "",
                memory_total_bytes=s.memory_total_bytes or 0,
            )
            for s in self._last
        )
        self._resetting = False
        self._open_error = NVMLError(Return.UNINITIALIZED, "NVML is closed")
        self._reopened = trio.Event()
        self._watching: set[trio.CancelScope] = set()

    def inventory(self) -> tuple[GpuInfo, ...]:
        return self._inventory

    def sample(self) -> tuple[GpuSample, ...]:
        if self._resetting:
            return self._last
        nvml = self._nvml or self._open()
        if nvml is None:
            return tuple(_unavailable(g.index, self._open_error.code) for g in self._inventory)
        self._last = nvml.sample()
        return self._last

    def running_processes(self, index: int) -> tuple[int, ...]:
        nvml = self._nvml or self._open()
        if nvml is None:
            raise self._open_error
        return tuple(p.pid for p in nvml.running_processes(index))

    async def reset(self, index: int, command: Callable[[], Awaitable[None]]) -> None:
        nvml, self._nvml = self._nvml, None
        self._resetting = True
        self._reopened = trio.Event()
        for scope in self._watching:
            scope.cancel()
        if nvml is not None:
            nvml.close()
        try:
            await command()
        finally:
            self._resetting = False

    def close(self) -> None:
        """Shuts NVML down."""
        if self._nvml is not None:
            self._nvml.close()

    async def watch_events(self, report: ReportEvents) -> None:
        while True:
            nvml = None if self._resetting else self._nvml
            if nvml is None:
                await self._reopened.wait()
                continue
            # A reset cancels the watch: the session it watches is closing.
            with trio.CancelScope() as scope:
                self._watching.add(scope)
                try:
                    async with nvml.watch_events(self.EVENTS) as events:
                        async for event in events:
                            _report_nvml_event(event, report)
                finally:
                    self._watching.discard(scope)

    def _open(self) -> Nvml | None:
        try:
            nvml = open_nvml(self._library, backend=self._engine)
        except NVMLError as exc:
            self._open_error = exc
            return None
        self._nvml = nvml
        self._reopened.set()
        return nvml


def _report_nvml_event(event: NvmlEvent, report: ReportEvents) -> None:
    if event.gpu_index is None:
        return
    if event.type == EventType.XID:
        report([GpuEvent(type=_XID, gpu_index=event.gpu_index, xid=event.data)])
    elif event.type == EventType.DOUBLE_BIT_ECC:
        report(
            [
                GpuEvent(
                    type=HealthEventType.ECC,
                    gpu_index=event.gpu_index,
                    message="uncorrectable ECC error",
                    details={"ecc": "uncorrected"},
                )
            ]
        )
    elif event.type == EventType.GPU_UNAVAILABLE:
        report([_lost(event.gpu_index, "the GPU no longer answers NVML")])
    elif event.type == EventType.GPU_RECOVERY_ACTION:
        report([_recovery_action(event.gpu_index, event.data)])


def _unavailable(index: int, code: Return) -> GpuSample:
    """The sample of a GPU that cannot be asked anything: lost, or NVML will not open."""
    return GpuSample(
        index=index,
        status=code,
        **dict.fromkeys(_VALUE_NAMES),
        nvlink_active=(),
        field_status=types.MappingProxyType(dict.fromkeys(FIELDS, code)),
    )


_XID = HealthEventType.XID


def _lost(index: int, message: str) -> GpuEvent:
    return GpuEvent(type=HealthEventType.GPU_LOST, gpu_index=index, message=message)


def _recovery_action(index: int, action: int) -> GpuEvent:
    """The driver's recovery action, reported as the XID 154 that logs the same change."""
    try:
        name = RecoveryAction(action).name
    except ValueError:
        name = str(action)
    return GpuEvent(
        type=_XID,
        gpu_index=index,
        xid=154,
        message=f"GPU recovery action changed to {name}",
        details={"recovery_action": name},
    )


_H100_BUSES = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)
NVLINKS = 18  # NVLink4 links of an H100 SXM
PCIE_GEN, PCIE_LANES = 5, 16  # an H100 SXM's host link
_ALL_OK: Mapping[str, Return] = types.MappingProxyType(dict.fromkeys(FIELDS, Return.SUCCESS))
_LINKS_UP = (True,) * NVLINKS


@attrs.define
class _SimulatedGpu:
    info: GpuInfo
    utilization: float = 0.0
    memory_fraction: float = 0.0
    temperature_override: float | None = None
    ecc_corrected: int = 0
    ecc_uncorrected: int = 0
    remapped_pending: bool = False
    remapped_failed: bool = False
    links_down: frozenset[int] = frozenset()
    nvlink_replays: int = 0
    nvlink_recoveries: int = 0
    nvlink_crc_errors: int = 0
    pcie_replays: int = 0
    pcie_lanes: int = PCIE_LANES
    recovery_action: int = RecoveryAction.NONE
    present: bool = True


class SimulatedGpus:
    """A machine with `count` identical GPUs whose readings follow their load, deterministically.

    Readings depend only on the load and the injected failures, never on a clock, so two runs
    with the same script see the same values. Safe to build outside trio and to share with the
    code that injects failures while a daemon runs.

    With `varying=True` (the local fleet's machines) each sample moves a little, as a busy
    machine's readings do: utilization wanders around the load, temperature follows it with a
    lag, power follows it. The wander is seeded by `seed`, so it repeats sample for sample.
    """

    hardware = False

    def __init__(
        self,
        count: int = 8,
        *,
        seed: str = "navarch-sim",
        name: str = "NVIDIA H100 80GB HBM3",
        memory_total_bytes: int = 80 * GIB,
        power_limit_watts: float = 700.0,
        varying: bool = False,
    ) -> None:
        if count < 0:
            raise ValueError(f"count must be at least 0, got {count}")
        self._power_limit_mw = round(power_limit_watts * 1000)
        self._gpus = [
            _SimulatedGpu(
                info=GpuInfo(
                    index=i,
                    uuid="GPU-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"navarch-sim/{seed}/{i}")),
                    name=name,
                    pci_bus_id=_pci_bus_id(i),
                    memory_total_bytes=memory_total_bytes,
                )
            )
            for i in range(count)
        ]
        self._events: list[GpuEvent] = []
        self._arrived = trio.Event()
        # The readings change only when the load or a failure does: each change clears this.
        self._samples: tuple[GpuSample, ...] | None = None
        self._wander = _Wander(random.Random(f"{seed}/varying"), count) if varying else None
        self._processes: dict[int, tuple[int, ...]] = {}
        self._reset_script: dict[int, collections.deque[str]] = {}
        # The GPUs reset so far, in order, with what each reset did.
        self.resets: list[tuple[int, str]] = []

    def inventory(self) -> tuple[GpuInfo, ...]:
        return tuple(gpu.info for gpu in self._gpus)

    def sample(self) -> tuple[GpuSample, ...]:
        if self._samples is None:
            self._samples = tuple(self._sample(gpu) for gpu in self._gpus)
        if self._wander is not None:
            return self._wander.step(self._samples, self._gpus, self._power_limit_mw)
        return self._samples

    async def watch_events(self, report: ReportEvents) -> None:
        while True:
            while not self._events:
                await self._arrived.wait()
                self._arrived = trio.Event()
            events, self._events = self._events, []
            report(events)

    def running_processes(self, index: int) -> tuple[int, ...]:
        self._gpu(index)
        return self._processes.get(index, ())

    async def reset(self, index: int, command: Callable[[], Awaitable[None]]) -> None:
        """Plays the next scripted outcome for the GPU (`script_resets`); `command` is not run."""
        self._gpu(index)
        await trio.lowlevel.checkpoint()
        script = self._reset_script.get(index)
        outcome = script.popleft() if script else "clean"
        self.resets.append((index, outcome))
        if outcome == "fails":
            raise GpuResetFailed(f"the simulated reset of GPU {index} failed")
        if outcome == "lost":
            self.lose_gpu(index)
            return
        self._processes.pop(index, None)
        self.recover(index)

    @property
    def load(self) -> float:
        """The mean utilization (0-100) set with `set_load`."""
        return sum(g.utilization for g in self._gpus) / len(self._gpus) if self._gpus else 0.0

    # Load and failures, for tests, the fake provider and the simulator.

    def set_load(
        self,
        utilization_percent: float,
        memory_fraction: float | None = None,
        gpu: int | None = None,
    ) -> None:
        """Sets GPU utilization (0-100) and memory use (0-1, default follows utilization)."""
        if not 0 <= utilization_percent <= 100:
            raise ValueError(f"utilization must be from 0 to 100, got {utilization_percent}")
        fraction = utilization_percent / 100 if memory_fraction is None else memory_fraction
        for target in self._targets(gpu):
            target.utilization = float(utilization_percent)
            target.memory_fraction = min(max(fraction, 0.0), 1.0)
        self._samples = None

    def inject_xid(self, gpu: int, xid: int, message: str = "") -> None:
        target = self._gpu(gpu)
        self._push(
            GpuEvent(
                type=_XID,
                gpu_index=gpu,
                xid=xid,
                message=message,
                details={"pci_bus_id": target.info.pci_bus_id},
            )
        )

    def set_temperature(self, gpu: int, celsius: float | None) -> None:
        """Pins a GPU's temperature; None returns it to the load-driven value."""
        self._changed(gpu).temperature_override = celsius

    def inject_ecc(self, gpu: int, *, corrected: int = 0, uncorrected: int = 0) -> None:
        """Adds ECC errors. Uncorrectable ones leave a pending row remap, as on an H100, and
        are reported as they happen, as NVML's double-bit ECC event is."""
        target = self._changed(gpu)
        target.ecc_corrected += corrected
        target.ecc_uncorrected += uncorrected
        if uncorrected:
            target.remapped_pending = True
            self._push(
                GpuEvent(
                    type=HealthEventType.ECC,
                    gpu_index=gpu,
                    message="uncorrectable ECC error",
                    details={"ecc": "uncorrected"},
                )
            )

    def inject_remap_failure(self, gpu: int) -> None:
        self._changed(gpu).remapped_failed = True

    def set_nvlink_down(self, gpu: int, link: int, down: bool = True) -> None:
        if not 0 <= link < NVLINKS:
            raise IndexError(f"no NVLink {link} (links 0 to {NVLINKS - 1})")
        target = self._changed(gpu)
        links = set(target.links_down)
        (links.add if down else links.discard)(link)
        target.links_down = frozenset(links)

    def inject_nvlink_errors(
        self, gpu: int, *, replay: int = 0, recovery: int = 0, crc: int = 0
    ) -> None:
        """Adds to the GPU's NVLink error counters (CRC errors count as flow-control CRC)."""
        target = self._changed(gpu)
        target.nvlink_replays += replay
        target.nvlink_recoveries += recovery
        target.nvlink_crc_errors += crc

    def inject_pcie_replays(self, gpu: int, count: int = 1) -> None:
        self._changed(gpu).pcie_replays += count

    def set_pcie_lanes(self, gpu: int, lanes: int) -> None:
        """The GPU's PCIe link trains at `lanes` of its 16, as a badly seated card's does."""
        if not 1 <= lanes <= PCIE_LANES:
            raise ValueError(f"lanes must be from 1 to {PCIE_LANES}, got {lanes}")
        self._changed(gpu).pcie_lanes = lanes

    def set_recovery_action(self, gpu: int, action: RecoveryAction) -> None:
        """The driver asks for a reset or reboot, and says so in an XID 154."""
        self._changed(gpu).recovery_action = action
        self._push(_recovery_action(gpu, action))

    def lose_gpu(self, gpu: int) -> None:
        """The GPU falls off the bus: it stops answering and the driver logs XID 79."""
        target = self._changed(gpu)
        if target.present:
            target.present = False
            self._push(
                GpuEvent(
                    type=_XID,
                    gpu_index=gpu,
                    xid=79,
                    message="GPU has fallen off the bus",
                    details={"pci_bus_id": target.info.pci_bus_id},
                )
            )

    def set_processes(self, gpu: int, pids: tuple[int, ...]) -> None:
        """The processes that hold the GPU; a clean reset ends them, as the drain should have."""
        self._gpu(gpu)
        self._processes[gpu] = tuple(pids)

    def script_resets(self, gpu: int, *outcomes: str) -> None:
        """What the next resets of the GPU do, in order ("clean", "fails" or "lost"); once the
        script runs out, resets are clean."""
        for outcome in outcomes:
            if outcome not in RESET_OUTCOMES:
                raise ValueError(f"reset outcome must be one of {', '.join(RESET_OUTCOMES)}")
        self._gpu(gpu)
        self._reset_script.setdefault(gpu, collections.deque()).extend(outcomes)

    def recover(self, gpu: int | None = None) -> None:
        """Clears injected failures (not the load): as after a GPU reset or a reboot."""
        for target in self._targets(gpu):
            target.temperature_override = None
            target.ecc_corrected = target.ecc_uncorrected = 0
            target.remapped_pending = target.remapped_failed = False
            target.links_down = frozenset()
            target.nvlink_replays = target.nvlink_recoveries = target.nvlink_crc_errors = 0
            target.pcie_replays = 0
            target.pcie_lanes = PCIE_LANES
            target.recovery_action = RecoveryAction.NONE
            target.present = True
        self._samples = None

    def _push(self, event: GpuEvent) -> None:
        self._events.append(event)
        self._arrived.set()

    def _gpu(self, index: int) -> _SimulatedGpu:
        if not 0 <= index < len(self._gpus):
            raise IndexError(f"no GPU {index} (this machine has {len(self._gpus)})")
        return self._gpus[index]

    def _changed(self, index: int) -> _SimulatedGpu:
        """The GPU at `index`, about to change: its readings will be sampled again."""
        target = self._gpu(index)
        self._samples = None
        return target

    def _targets(self, index: int | None) -> list[_SimulatedGpu]:
        return list(self._gpus) if index is None else [self._gpu(index)]

    def _sample(self, gpu: _SimulatedGpu) -> GpuSample:
        info = gpu.info
        if not gpu.present:
            return _unavailable(info.index, Return.GPU_IS_LOST)
        load = gpu.utilization / 100
        # Idle near 35 C, about 75 C at full load; GPUs further along the board run a little warmer.
        temperature = round(35 + 40 * load + 0.5 * info.index)
        if gpu.temperature_override is not None:
            temperature = round(gpu.temperature_override)
        reasons = 0x1 if load == 0 else 0
        if temperature >= 87:
            reasons |= 0x20 | 0x40  # software and hardware thermal slowdown
        return GpuSample(
            index=info.index,
            status=Return.SUCCESS,
            name=info.name,
            uuid=info.uuid,
            pci_bus_id=info.pci_bus_id,
            memory_total_bytes=info.memory_total_bytes,
            memory_used_bytes=int(info.memory_total_bytes * gpu.memory_fraction),
            utilization_gpu_pct=round(gpu.utilization),
            utilization_memory_pct=round(gpu.utilization * 0.6),
            temperature_c=temperature,
            temperature_slowdown_c=87,
            temperature_shutdown_c=92,
            power_usage_mw=round(70_000 + (self._power_limit_mw - 70_000) * load * 0.9),
            power_limit_mw=self._power_limit_mw,
            ecc_corrected_volatile=gpu.ecc_corrected,
            ecc_uncorrected_volatile=gpu.ecc_uncorrected,
            ecc_corrected_aggregate=gpu.ecc_corrected,
            ecc_uncorrected_aggregate=gpu.ecc_uncorrected,
            retired_pages_sbe=0,
            retired_pages_dbe=0,
            retired_pages_pending=False,
            remapped_rows_corrected=0,
            remapped_rows_uncorrected=gpu.ecc_uncorrected,
            remapped_rows_pending=gpu.remapped_pending,
            remapped_rows_failure=gpu.remapped_failed,
            pcie_replay_counter=gpu.pcie_replays,
            pcie_link_gen=PCIE_GEN,
            pcie_link_gen_max=PCIE_GEN,
            pcie_link_width=gpu.pcie_lanes,
            pcie_link_width_max=PCIE_LANES,
            clock_event_reasons=reasons,
            recovery_action=int(gpu.recovery_action),
            nvlink_replay_errors=gpu.nvlink_replays,
            nvlink_recovery_errors=gpu.nvlink_recoveries,
            nvlink_crc_flit_errors=gpu.nvlink_crc_errors,
            nvlink_crc_data_errors=0,
            nvlink_active=tuple(link not in gpu.links_down for link in range(NVLINKS))
            if gpu.links_down
            else _LINKS_UP,
            field_status=_ALL_OK,
        )


class _Wander:
    """Slow, mean-reverting noise over the load-driven readings of `SimulatedGpus`."""

    def __init__(self, rng: random.Random, count: int) -> None:
        self._rng = rng
        self._offsets = [0.0] * count  # utilization points above or below the load
        self._temperatures: list[float | None] = [None] * count

    def step(
        self,
        samples: tuple[GpuSample, ...],
        gpus: list[_SimulatedGpu],
        power_limit_mw: int,
    ) -> tuple[GpuSample, ...]:
        return tuple(self._one(s, g, power_limit_mw) for s, g in zip(samples, gpus, strict=True))

    def _one(self, sample: GpuSample, gpu: _SimulatedGpu, power_limit_mw: int) -> GpuSample:
        i = sample.index
        if sample.status != Return.SUCCESS:
            return sample
        offset = self._offsets[i] = 0.8 * self._offsets[i] + self._rng.gauss(0.0, 1.5)
        spread = min(gpu.utilization, 100 - gpu.utilization, 5.0)  # an idle GPU stays idle
        load = min(max(gpu.utilization + max(-spread, min(spread, offset)), 0.0), 100.0) / 100
        target = 35 + 40 * load + 0.5 * i
        last = self._temperatures[i]
        # The board warms and cools over a few samples, not at once.
        temperature = target if last is None else last + 0.3 * (target - last)
        self._temperatures[i] = temperature = temperature + self._rng.gauss(0.0, 0.2)
        if gpu.temperature_override is not None:
            temperature = gpu.temperature_override
        power = 70_000 + (power_limit_mw - 70_000) * load * 0.9 + self._rng.gauss(0.0, 2_000.0)
        return attrs.evolve(
            sample,
            utilization_gpu_pct=round(load * 100),
            utilization_memory_pct=round(load * 60),
            temperature_c=round(temperature),
            power_usage_mw=min(max(round(power), 0), power_limit_mw),
        )


# The reading fields of GpuSample: all None for a GPU that no longer answers.
_VALUE_NAMES = tuple(
    f.name
    for f in attrs.fields(GpuSample)
    if f.name not in ("index", "status", "nvlink_active", "field_status")
)


def _pci_bus_id(index: int) -> str:
    domain, slot = divmod(index, len(_H100_BUSES))
    return f"{domain:08X}:{_H100_BUSES[slot]:02X}:00.0"
