"""The simulated fleet: machines that run real daemons with simulated GPUs, and their providers.

Each `SimNode` is a machine. Started, it runs a real `Daemon` (with the built-in `gpu` and `boot`
checks) over `SimulatedGpus`, talking to the control plane in process or over loopback HTTP.
Failures are injected into the GPUs, or into the machine: it boots without its GPUs, loses the
network, or stops sending heartbeats while the rest of it works.

Every provider the scenario names is a `SimProvider`: the fake provider, or a plugin's own
provider, whose instances are `SimNode`s. The scenario's own machines are listed by their
(fake) provider as instances, so a pool adopts them as it would machines a restarted control
plane had made, and remediation terminates and replaces them through the provider like any
other. A provider outage refuses provisioning.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import attrs
import trio

from navarch.api.client import HttpClient, Methods, Unreachable
from navarch.api.inprocess import InProcessClient
from navarch.controlplane import Caller, ControlPlane
from navarch.daemon import Daemon, DaemonConfig, DaemonError, SimulatedGpus
from navarch.daemon.preemption import Notice, SimulatedNotices
from navarch.plugins import (
    AttachableProvider,
    CheckedProvider,
    HealthCheck,
    Instance,
    InstanceState,
    InstanceType,
    InstanceTypeNames,
    PluginTable,
    Provider,
    ProviderCatalog,
    ProviderContext,
    ProvisionRequest,
    SimulatedMachine,
    TransientError,
)
from navarch.plugins.builtin.fake_provider import FakeProvider, FakeProviderSettings
from navarch.plugins.builtin.health_checks import (
    BootCheck,
    BootCheckSettings,
    GpuCheck,
    GpuCheckSettings,
)
from navarch.sim.scenario import GPU_FAILURES, NodeSpec

RACK_LABEL = "navarch.io/rack"

R = TypeVar("R")


class _Faults:
    """What a machine's failures do to its link with the control plane."""

    def __init__(self) -> None:
        self.partitioned = False
        self.heartbeats = trio.Event()  # set while heartbeats flow
        self.heartbeats.set()


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
        return await super()._call(method, request, response_cls, **options)


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

    @property
    def id(self) -> str:
        return self.spec.id

    def start(self) -> None:
        if self.running or self.terminated:
            return
        spec = self.spec
        fleet = self._fleet
        self.boots += 1
        gpus = SimulatedGpus(
            0 if self.boot_failed else spec.gpu_count, seed=spec.id, name=spec.gpu_type
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
        )
        self.gpus = gpus
        self.running = True
        # Failures the machine still has come back with it.
        for failure in self.failures:
            if failure.type in GPU_FAILURES:
                self._apply(failure)
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
            case _:
                if self.running:
                    self._apply(failure)

    def _apply(self, failure: Failure) -> None:
        gpus = self.gpus
        if gpus is None or not gpus.inventory():
            return
        gpu = min(failure.gpu or 0, len(gpus.inventory()) - 1)
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


class _SimMachine:
    """A fleet machine as its provider sees it: switching it off ends it for good."""

    def __init__(self, fleet: Fleet, node: SimNode) -> None:
        self._fleet = fleet
        self._node = node

    def set_load(self, utilization: float) -> None:
        self._node.set_load(utilization)

    def power_off(self) -> None:
        self._fleet.terminated(self._node.id)


class SimProvider:
    """A provider of the simulated world: its machines are the fleet's `SimNode`s, and it refuses
    to provision during an outage.

    A `fake` table is the fake provider, seeded by the run. Any other type is that plugin's own
    provider, as a user installed it: what it provisions is booted as a simulated machine (with
    the GPUs its catalog names for the instance type), and what it terminates is switched off.
    """

    def __init__(self, name: str, table: PluginTable, fleet: Fleet) -> None:
        self.name = name
        self._fleet = fleet
        self.inner: Provider
        if table.type == "fake":
            self.settings: FakeProviderSettings | None = table.settings
            # Instance ids and simulated provisioning failures follow the run's seed, so that
            # two runs of one seed are the same.
            self.inner = FakeProvider(
                table.settings,
                name=name,
                run_id="sim",
                rng=random.Random(f"{fleet.seed}/provider/{name}"),
            )
        else:
            self.settings = None
            self.inner = table.create(Provider)
        self.down_reason = ""

    def attach(self, context: ProviderContext) -> None:
        if isinstance(self.inner, AttachableProvider):
            self.inner.attach(context)

    def add_machine(self, spec: NodeSpec, node: SimNode) -> None:
        """Lists one of the scenario's machines as this provider's running instance."""
        assert isinstance(self.inner, FakeProvider), "scenario machines need a fake provider"
        instance = Instance(
            instance_id=spec.id,
            provider=self.name,
            instance_type=spec.instance_type,
            state=InstanceState.RUNNING,
            region=spec.region,
            zone=spec.zone,
            pool=spec.pool,
            labels=dict(spec.labels),
            created_at=self._fleet.wall_clock(),
        )
        self.inner.add_instance(instance, _SimMachine(self._fleet, node))

    async def provision(self, request: ProvisionRequest) -> Instance:
        if self.down_reason:
            await trio.lowlevel.checkpoint()
            raise TransientError(f"{self.name}: {self.down_reason}")
        instance = await self.inner.provision(request)
        if (
            not isinstance(self.inner, FakeProvider)
            and instance.state in (InstanceState.PROVISIONING, InstanceState.RUNNING)
            and instance.instance_id not in self._fleet.nodes
        ):
            # A plugin's machine: it boots as its cloud would boot it.
            self._fleet.boot(self.name, instance, await self._machine(instance.instance_type))
        return instance

    async def _machine(self, instance_type: str) -> SimulatedMachine:
        gpus, kind = 8, "NVIDIA H100 80GB HBM3"
        if isinstance(self.inner, ProviderCatalog):
            for item in await self.inner.instance_types():
                if item.name == instance_type:
                    gpus, kind = item.gpu_count, item.gpu_type
        return SimulatedMachine(
            gpu_count=gpus, gpu_type=kind, utilization=self._fleet.utilization, seed=self.name
        )

    def instance_type_for(self, name: str) -> str:
        if isinstance(self.inner, InstanceTypeNames):
            return self.inner.instance_type_for(name)
        return name

    def check(self) -> Sequence[str]:
        return list(self.inner.check()) if isinstance(self.inner, CheckedProvider) else []

    def preempt(self, instance_id: str) -> bool:
        """Takes the machine back as the cloud would; False where the provider cannot say so
        (a plugin's own provider: its machine only goes away)."""
        if isinstance(self.inner, FakeProvider):
            self.inner.preempt(instance_id)
            return True
        return False

    async def terminate(self, instance_id: str) -> None:
        await self.inner.terminate(instance_id)
        if not isinstance(self.inner, FakeProvider):
            self._fleet.terminated(instance_id)

    async def list(self) -> Sequence[Instance]:
        return await self.inner.list()

    async def instance_types(self) -> Sequence[InstanceType]:
        if isinstance(self.inner, ProviderCatalog):
            return await self.inner.instance_types()
        return []


class Fleet:
    """Every machine of the run, by id, and the providers they belong to."""

    def __init__(
        self,
        *,
        seed: int,
        wall_clock: Callable[[], datetime],
        preemptible: bool = False,
        on_note: Callable[[str], None] = lambda _message: None,
        on_machine: Callable[[SimNode, bool], None] = lambda _node, _provisioned: None,
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
        self.nodes: dict[str, SimNode] = {}
        self.providers: dict[str, SimProvider] = {}
        # Set by set_utilization for every node; until then each provider's `utilization`.
        self.utilization = 50.0
        self.utilization_set = False
        self.pool_utilization: dict[str, float] = {}
        self._zones: dict[tuple[str, str], str] = {}
        self._on_note = on_note
        self._on_machine = on_machine

    def note(self, message: str) -> None:
        self._on_note(message)

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

    def boot(self, provider: str, instance: Instance, machine: SimulatedMachine) -> _SimMachine:
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
        return _SimMachine(self, node)

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
