"""The simulated fleet: machines that run real daemons with simulated GPUs, and their providers.

Each `SimNode` is a machine. Started, it runs a real `Daemon` (with the built-in `gpu` and `boot`
checks) over `SimulatedGpus`, talking to the control plane in process or over loopback HTTP.
Failures are injected into the GPUs, or into the machine: it boots without its GPUs, loses the
network, or stops sending heartbeats while the rest of it works.

Every provider the scenario names is a `SimProvider` (`navarch.sim.providers`), whose instances
are `SimNode`s. A machine that remediation resets or reboots plays the outcome its failures say
(`Failure.reset`, `Failure.reboot`).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import attrs
import trio

from navarch.api.client import HttpClient, Methods, Unreachable
from navarch.api.inprocess import InProcessClient
from navarch.controlplane import Caller, ControlPlane
from navarch.daemon import Daemon, DaemonConfig, DaemonError, RecoveryOutcome, SimulatedGpus
from navarch.daemon.preemption import Notice, SimulatedNotices
from navarch.plugins import (
    Diagnosis,
    HealthCheck,
    HealthEvent,
    HealthEventType,
    Instance,
    PluginTable,
    SimulatedMachine,
)
from navarch.plugins.builtin.health_checks import (
    BootCheck,
    BootCheckSettings,
    GpuCheck,
    GpuCheckSettings,
)
from navarch.plugins.telemetry import GpuSample
from navarch.sim.infiniband import SimulatedInfiniband
from navarch.sim.providers import SimMachine, SimProvider
from navarch.sim.scenario import GPU_FAILURES, NodeSpec
from navarch.telemetry.nvml import RecoveryAction

RACK_LABEL = "navarch.io/rack"
# How long a rebooting machine is down before its daemon starts again.
REBOOT_TIME = 60.0

R = TypeVar("R")


class _Faults:
    """What a machine's failures do to its link with the control plane."""

    def __init__(self) -> None:
        self.partitioned = False
        self.heartbeats = trio.Event()  # set while heartbeats flow
        self.heartbeats.set()

    def cut_off(self) -> bool:
        """Whether the machine's network is down now; asked again after each wait."""
        return self.partitioned


class _FaultyCalls(Methods):
    """A client whose machine may lose its network or its heartbeats (a failure's doing)."""

    _faults: _Faults

    async def _call(
        self, method: str, request: object, response_cls: type[R], **options: float | None
    ) -> R:
        if self._faults.partitioned:
            # The daemon sees what it would see on a real machine: no answer.
            await trio.sleep(1.0)
            raise Unreachable("control plane", "network partition (simulated)")
        if method == "SendHeartbeat" and not self._faults.heartbeats.is_set():
            await self._faults.heartbeats.wait()
        response = await super()._call(method, request, response_cls, **options)
        if method == "GetNodeCommands" and self._faults.cut_off():
            # A long poll outlasts the network: its answer is lost on the way, and the control
            # plane hands its commands out again later.
            await trio.sleep(1.0)
            raise Unreachable("control plane", "network partition (simulated)")
        return response


class _InProcess(_FaultyCalls, InProcessClient):
    def __init__(self, service: ControlPlane, node_id: str, faults: _Faults) -> None:
        super().__init__(service, Caller.node(node_id))
        self._faults = faults


class _OverHttp(_FaultyCalls, HttpClient):
    def __init__(self, url: str, faults: _Faults) -> None:
        super().__init__(url)
        self._faults = faults


@attrs.define
class Failure:
    """One failure injected into a node, and what became of it (for the report)."""

    id: int
    t: float
    node: str
    type: str
    source: str
    xid: int | None = None
    gpu: int | None = None
    cause: int | None = None
    # How the failure acts, where its type takes it (inject_failure's keys, with their defaults).
    celsius: float = 95.0
    corrected: int = 0
    uncorrected: int = 1
    link: int = 0
    message: str = ""
    # A preemption's warning to the daemon, in seconds.
    notice: float = 120.0
    # What a GPU reset does to it ("clean", "fails", "lost"), and a reboot ("clean", "stays").
    reset: str = "clean"
    reboot: str = "clean"
    # The driver's recovery action a `recovery_action` failure asks for.
    recovery: str = "NODE_REBOOT"
    # NVLink errors an `nvlink_errors` failure adds, the lanes a `pcie_downgrade` leaves, and the
    # InfiniBand port an `ib_port_down` takes down.
    errors: int = 100
    lanes: int = 8
    port: int = 0
    unhealthy_at: float | None = None
    degraded_at: float | None = None
    recovered_at: float | None = None
    terminated_at: float | None = None
    replaced_by: str | None = None
    replaced_at: float | None = None


class SimNode:
    """One machine of the fleet."""

    def __init__(self, spec: NodeSpec, fleet: Fleet) -> None:
        self.spec = spec
        self._fleet = fleet
        self.gpus: SimulatedGpus | None = None
        self.daemon: Daemon | None = None
        self.running = False
        # Ended by its provider: it never starts again.
        self.terminated = False
        self.boots = 0
        self.boot_failed = False
        self.utilization = fleet.utilization
        self._faults = _Faults()
        # Active failures, oldest first.
        self.failures: list[Failure] = []
        # What the machine's cloud metadata service would say of a coming preemption; watched
        # only in a run that preempts machines.
        self.notices = SimulatedNotices()
        # GPUs that did not come back from a reboot.
        self.lost_gpus: set[int] = set()
        self.ib = SimulatedInfiniband()

    @property
    def id(self) -> str:
        return self.spec.id

    def start(self) -> None:
        if self.running or self.terminated:
            return
        spec = self.spec
        fleet = self._fleet
        self.boots += 1
        gpus = _SimGpus(
            self, 0 if self.boot_failed else spec.gpu_count, seed=spec.id, name=spec.gpu_type
        )
        if not self.boot_failed:
            gpus.set_load(self.utilization)
        labels = dict(spec.labels)
        if spec.rack:
            labels[RACK_LABEL] = spec.rack
        config = DaemonConfig(
            node_id=spec.id,
            pool=spec.pool,
            provider=spec.provider,
            region=spec.region,
            zone=spec.zone,
            instance_type=spec.instance_type,
            labels=labels,
        )
        checks: list[tuple[str, HealthCheck]] = [
            (
                "boot",
                BootCheck(
                    BootCheckSettings(expected_gpus=spec.gpu_count), wall_clock=fleet.wall_clock
                ),
            ),
            ("gpu", GpuCheck(GpuCheckSettings(), wall_clock=fleet.wall_clock)),
        ]
        if fleet.infiniband:
            checks.append(("infiniband", self.ib.check(fleet.wall_clock)))
        if fleet.diagnostics:
            checks.append(("dcgm", SimulatedDiagnostic(self, fleet.wall_clock)))
        client = fleet.client_for(spec.id, self._faults)
        self.daemon = Daemon(
            client,
            gpus,
            config,
            hostname=spec.id,
            health_checks=checks,
            rng=random.Random(f"{fleet.seed}/{spec.id}/{self.boots}"),
            wall_clock=fleet.wall_clock,
            notices=self.notices if fleet.preemptible else None,
            reboot=_Reboot(self),
        )
        self.gpus = gpus
        self.running = True
        # Failures the machine still has come back with it, and GPUs a reboot lost stay lost.
        for failure in self.failures:
            if failure.type in GPU_FAILURES:
                self._apply(failure)
        for gpu in sorted(self.lost_gpus):
            if gpu < len(gpus.inventory()):
                gpus.lose_gpu(gpu)
        fleet.machines().start_soon(self._run, self.daemon, client)

    async def _run(self, daemon: Daemon, client: _InProcess | _OverHttp) -> None:
        try:
            await daemon.run()
        except DaemonError as exc:
            self._fleet.note(f"node {self.id} stopped: {exc}")
        finally:
            if isinstance(client, HttpClient):
                with trio.CancelScope(shield=True):
                    await client.aclose()
            if self.daemon is daemon:
                self.running = False
                if daemon.terminated:
                    # The control plane terminated the node; the machine powers off.
                    self.terminated = True

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        self.running = False

    def reboot(self) -> None:
        self.stop()
        self.daemon = None
        self.start()

    def restart(self) -> None:
        """A reboot that remediation asked for (of the provider, or of the daemon): the machine
        goes down, and comes back after `REBOOT_TIME` without the GPU failures a reboot clears."""
        gpu_failures = [f for f in self.failures if f.type in GPU_FAILURES]
        self.lost_gpus |= {f.gpu or 0 for f in gpu_failures if f.reboot == "lost"}
        self._fleet.recovered(self.recover([f for f in gpu_failures if f.reboot == "clean"]))
        self.stop()
        self.daemon = None

        async def boot() -> None:
            await trio.sleep(REBOOT_TIME)
            self.start()

        self._fleet.machines().start_soon(boot)

    def reset_done(self, gpu: int, outcome: str) -> None:
        """The daemon reset `gpu`: a clean reset ends the GPU's failures."""
        if outcome != "clean":
            return
        ended = [f for f in self.failures if f.type in GPU_FAILURES and (f.gpu or 0) == gpu]
        self.failures = [f for f in self.failures if f not in ended]
        self._fleet.recovered(ended)

    def inject(self, failure: Failure) -> None:
        """Applies `failure` to the machine and keeps it as active until it recovers."""
        self.failures.append(failure)
        match failure.type:
            case "boot_failure":
                self.boot_failed = True
                if self.running:
                    self.reboot()
            case "network_partition":
                self._faults.partitioned = True
            case "heartbeat_stop":
                self._faults.heartbeats = trio.Event()
            case "preemption":
                self._fleet.preempt(self, failure.notice)
            case "ib_port_down":
                self.ib.take_down(failure.port)
            case _:
                if self.running:
                    self._apply(failure)

    def _apply(self, failure: Failure) -> None:
        gpus = self.gpus
        if gpus is None or not gpus.inventory():
            return
        gpu = min(failure.gpu or 0, len(gpus.inventory()) - 1)
        if failure.reset != "clean":
            gpus.script_resets(gpu, failure.reset)
        match failure.type:
            case "xid":
                assert failure.xid is not None
                message = failure.message or f"simulated XID {failure.xid}"
                gpus.inject_xid(gpu, failure.xid, message)
            case "thermal":
                gpus.set_temperature(gpu, failure.celsius)
            case "ecc":
                gpus.inject_ecc(gpu, corrected=failure.corrected, uncorrected=failure.uncorrected)
            case "remap_failure":
                gpus.inject_remap_failure(gpu)
            case "nvlink_down":
                gpus.set_nvlink_down(gpu, failure.link)
            case "gpu_lost":
                gpus.lose_gpu(gpu)
            case "recovery_action":
                gpus.set_recovery_action(gpu, RecoveryAction[failure.recovery])
            case "nvlink_errors":
                gpus.inject_nvlink_errors(gpu, replay=failure.errors, crc=failure.errors)
            case "pcie_downgrade":
                gpus.set_pcie_lanes(gpu, failure.lanes)

    def recover(self, failures: Sequence[Failure]) -> list[Failure]:
        """Ends those of `failures` that are active; returns the ones it ended."""
        ended = [f for f in failures if f in self.failures]
        if not ended:
            return []
        self.failures = [f for f in self.failures if f not in ended]
        remaining = {f.type for f in self.failures}
        kinds = {f.type for f in ended} - remaining
        if "network_partition" in kinds:
            self._faults.partitioned = False
        for failure in ended:
            if failure.type == "ib_port_down" and not any(
                f.type == "ib_port_down" and f.port == failure.port for f in self.failures
            ):
                self.ib.bring_up(failure.port)
        if "heartbeat_stop" in kinds:
            self._faults.heartbeats.set()
        if self.gpus is not None:
            # As after a GPU reset: the GPU's counters and state are clean again.
            count = len(self.gpus.inventory())
            for gpu in sorted({f.gpu or 0 for f in ended if f.type in GPU_FAILURES}):
                if gpu < count:
                    self.gpus.recover(gpu)
        if "boot_failure" in kinds:
            self.boot_failed = False
            if self.running:
                self.reboot()
        return ended

    def set_load(self, utilization: float) -> None:
        self.utilization = utilization
        if self.gpus is not None and self.gpus.inventory():
            self.gpus.set_load(utilization)


class SimulatedDiagnostic:
    """DCGM's diagnostic on a simulated machine: it fails while the machine has an active
    `diagnostic_failure`, on GPU `gpu` of that failure, and passes otherwise."""

    def __init__(self, node: SimNode, wall_clock: Callable[[], datetime]) -> None:
        self._node = node
        self._wall_clock = wall_clock

    async def run(self, gpus: Sequence[GpuSample]) -> list[HealthEvent]:
        return []

    async def diagnose(self, level: int | None) -> Diagnosis:
        await trio.lowlevel.checkpoint()
        level = level or 1
        failing = [f for f in self._node.failures if f.type == "diagnostic_failure"]
        if not failing:
            return Diagnosis(ok=True, summary=f"level {level}: every test passed (simulated)")
        events = tuple(
            HealthEvent(
                type=HealthEventType.DIAGNOSTIC,
                time=self._wall_clock(),
                gpu_index=failure.gpu or 0,
                message=failure.message or "simulated diagnostic: memory test failed",
                details={"check": "dcgm", "test": "memory", "result": "fail", "level": str(level)},
            )
            for failure in failing
        )
        return Diagnosis(ok=False, summary=f"level {level}: {len(events)} failed", events=events)


class _SimGpus(SimulatedGpus):
    """A node's simulated GPUs, which tell the node how each reset went."""

    def __init__(self, node: SimNode, count: int, *, seed: str, name: str) -> None:
        super().__init__(count, seed=seed, name=name)
        self._node = node

    async def reset(self, index: int, command: Callable[[], Awaitable[None]]) -> None:
        try:
            await super().reset(index, command)
        finally:
            self._node.reset_done(index, self.resets[-1][1] if self.resets else "clean")


class _Reboot:
    """The reboot action of a fleet machine's daemon: the simulated machine restarts."""

    description = "a simulated reboot"

    def __init__(self, node: SimNode) -> None:
        self._node = node

    async def __call__(self) -> RecoveryOutcome:
        self._node.restart()
        return RecoveryOutcome(True, "the simulated machine is rebooting")


class Fleet:
    """Every machine of the run, by id, and the providers they belong to."""

    def __init__(
        self,
        *,
        seed: int,
        wall_clock: Callable[[], datetime],
        preemptible: bool = False,
        infiniband: bool = False,
        diagnostics: bool = False,
        on_note: Callable[[str], None] = lambda _message: None,
        on_machine: Callable[[SimNode, bool], None] = lambda _node, _provisioned: None,
        on_recovered: Callable[[Sequence[Failure]], None] = lambda _failures: None,
    ) -> None:
        # Set once the control plane is open: the service the daemons call, the nursery their
        # tasks run in, and the URL they use in real time (empty: in process).
        self.service: ControlPlane | None = None
        self.nursery: trio.Nursery | None = None
        self.url = ""
        self.seed = seed
        self.wall_clock = wall_clock
        # Whether daemons watch for preemption notices (the scenario preempts machines).
        self.preemptible = preemptible
        # Whether daemons check their simulated InfiniBand ports (the scenario takes one down).
        self.infiniband = infiniband
        # Whether daemons run a simulated diagnostic (the scenario fails one).
        self.diagnostics = diagnostics
        self.nodes: dict[str, SimNode] = {}
        self.providers: dict[str, SimProvider] = {}
        # Set by set_utilization for every node; until then each provider's `utilization`.
        self.utilization = 50.0
        self.utilization_set = False
        self.pool_utilization: dict[str, float] = {}
        self._zones: dict[tuple[str, str], str] = {}
        self._on_note = on_note
        self._on_machine = on_machine
        self._on_recovered = on_recovered

    def note(self, message: str) -> None:
        self._on_note(message)

    def recovered(self, failures: Sequence[Failure]) -> None:
        """Failures that ended on the machine itself (a GPU reset, a reboot), for the report."""
        if failures:
            self._on_recovered(failures)

    def machines(self) -> trio.Nursery:
        """The nursery the machines' daemons run in, once the control plane is open."""
        assert self.nursery is not None, "the fleet's nursery is not open yet"
        return self.nursery

    def client_for(self, node_id: str, faults: _Faults) -> _InProcess | _OverHttp:
        if self.url:
            return _OverHttp(self.url, faults)
        assert self.service is not None, "the control plane is not open yet"
        return _InProcess(self.service, node_id, faults)

    def add_provider(self, name: str, table: PluginTable) -> SimProvider:
        provider = SimProvider(name, table, self)
        self.providers[name] = provider
        return provider

    def boot(self, provider: str, instance: Instance, machine: SimulatedMachine) -> SimMachine:
        """Starts a machine that a provider made (`MachineRunner.boot` of the pool manager)."""
        zone = instance.zone or self.zone_for(provider, instance.region)
        spec = NodeSpec(
            id=instance.instance_id,
            provider=provider,
            region=instance.region,
            zone=zone,
            rack=f"{zone}-r900",
            instance_type=instance.instance_type,
            gpu_count=machine.gpu_count,
            gpu_type=machine.gpu_type,
            pool=instance.pool,
            labels=dict(instance.labels),
        )
        node = self.add(spec, provisioned=True)
        node.start()
        return SimMachine(self, node)

    def add(self, spec: NodeSpec, *, provisioned: bool = False) -> SimNode:
        node = SimNode(spec, self)
        provider = self.providers.get(spec.provider)
        if spec.pool in self.pool_utilization:
            node.utilization = self.pool_utilization[spec.pool]
        elif self.utilization_set or provider is None or provider.settings is None:
            node.utilization = self.utilization
        else:
            node.utilization = provider.settings.utilization
        self.nodes[spec.id] = node
        self._zones.setdefault((spec.provider, spec.region), spec.zone)
        if provider is not None and not provisioned:
            provider.add_machine(spec, node)
        self._on_machine(node, provisioned)
        return node

    def zone_for(self, provider: str, region: str) -> str:
        return self._zones.get((provider, region)) or f"{region}-a"

    def preempt(self, node: SimNode, notice: float) -> None:
        """Warns the node's daemon, then after `notice` seconds its provider takes it back."""
        if notice > 0:
            node.notices.give(
                Notice(
                    kind="spot",
                    at=self.wall_clock() + timedelta(seconds=notice),
                    detail="simulated spot interruption",
                )
            )

        async def take_back() -> None:
            await trio.sleep(notice)
            provider = self.providers.get(node.spec.provider)
            if provider is None or not provider.preempt(node.id):
                self.terminated(node.id)

        self.machines().start_soon(take_back)

    def terminated(self, node_id: str) -> None:
        node = self.nodes.get(node_id)
        if node is None:
            return
        node.stop()
        node.terminated = True

    def running(self) -> Iterator[SimNode]:
        return (n for n in self.nodes.values() if n.running)
