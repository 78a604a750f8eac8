"""Simulated machines in this process: a real daemon over simulated GPUs for each one.

The fake provider's instances run here (`navarch control-plane` with a local fleet, and the
tests): each daemon talks to the control plane in process, as the node its instance is, and
stops when its machine is switched off.

Lifelike machines (`LocalMachines.lifelike`, what `navarch control-plane` runs) look like busy
ones to an operator: their GPU readings wander around the load, the `gpu` health check runs on
them, and they report host CPU and memory use that follows the load.

A test scripts what the machines' diagnostics find (`diagnose`): the run_diagnostic commands
that a pool's preflight sends pass, fail or hang as it says, per node and level.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

import trio

from navarch.api.inprocess import InProcessClient
from navarch.controlplane import Caller, ControlPlane
from navarch.daemon.agent import Daemon, DaemonError
from navarch.daemon.checks import load_health_checks
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import SimulatedGpus
from navarch.daemon.host import HostStats
from navarch.daemon.recovery import RecoveryOutcome
from navarch.daemon.state import DaemonState
from navarch.plugins import Instance, SimulatedMachine
from navarch.plugins.health_check import AnyHealthCheck, Diagnosis

log = logging.getLogger("navarch.daemon")

# The health check that reads simulated GPUs; the others read the machine's kernel log and boot.
LIFELIKE_CHECKS = ("gpu",)
# How long a simulated machine takes to come back from a reboot.
BOOT_SECONDS = 30.0

# What a simulated machine's diagnostic finds, given its node id and the level asked for.
Diagnose = Callable[[str, int | None], Awaitable[Diagnosis | None]]


class LocalMachine:
    """One simulated machine: its daemon and its GPUs.

    A reboot command stops the daemon, clears the GPUs' failures, and starts a new daemon with the
    same state after `BOOT_SECONDS`, which registers again as a rebooted machine's daemon does.
    """

    def __init__(self, gpus: SimulatedGpus, start: Callable[[LocalMachine, float], Daemon]) -> None:
        self.gpus = gpus
        self.reboots = 0
        self._start = start
        self.daemon = start(self, 0.0)

    def set_load(self, utilization: float) -> None:
        self.gpus.set_load(utilization)

    def power_off(self) -> None:
        self.daemon.stop()

    def reboot(self) -> None:
        old = self.daemon
        self.reboots += 1
        self.gpus.recover()
        self.daemon = self._start(self, BOOT_SECONDS)
        old.stop()


class _MachineReboot:
    """The reboot action of a simulated machine's daemon."""

    description = "a simulated reboot"

    def __init__(self, machine: LocalMachine) -> None:
        self._machine = machine

    async def __call__(self) -> RecoveryOutcome:
        self._machine.reboot()
        return RecoveryOutcome(True, "the simulated machine is rebooting")


class _SimulatedDiagnostic:
    """The on-demand diagnostic of a simulated machine: what `diagnose` scripts for the node."""

    def __init__(self, node_id: str, diagnose: Diagnose) -> None:
        self._node_id = node_id
        self._diagnose = diagnose

    async def diagnose(self, level: int | None) -> Diagnosis | None:
        return await self._diagnose(self._node_id, level)


class LocalMachines:
    """Boots simulated machines whose daemons run in `nursery` and call `service` in process."""

    def __init__(
        self,
        service: ControlPlane,
        nursery: trio.Nursery,
        *,
        lifelike: bool = False,
        diagnose: Diagnose | None = None,
    ) -> None:
        self._service = service
        self._nursery = nursery
        self._lifelike = lifelike
        self._diagnose = diagnose
        self._checks: list[tuple[str, AnyHealthCheck]] | None = None

    @classmethod
    def lifelike(cls, service: ControlPlane, nursery: trio.Nursery) -> LocalMachines:
        """Machines that run the `gpu` health check and report varying, non-zero readings."""
        return cls(service, nursery, lifelike=True)

    def boot(self, provider: str, instance: Instance, machine: SimulatedMachine) -> LocalMachine:
        gpus = SimulatedGpus(
            machine.gpu_count,
            seed=instance.instance_id,
            name=machine.gpu_type,
            varying=self._lifelike,
        )
        gpus.set_load(machine.utilization)
        config = DaemonConfig(
            node_id=instance.instance_id,
            pool=instance.pool,
            provider=provider,
            region=instance.region,
            zone=instance.zone,
            instance_type=instance.instance_type,
            labels=instance.labels,
        )
        host_stats: HostStats | None = None
        checks: list[tuple[str, AnyHealthCheck]] = []
        if self._lifelike:
            host_stats = SimulatedHostStats(gpus, random.Random(f"{machine.seed}/host"))
            checks = self._health_checks(config)
        if self._diagnose is not None:
            checks = [
                *checks,
                ("diagnostic", _SimulatedDiagnostic(instance.instance_id, self._diagnose)),
            ]
        # The daemon's state outlives a reboot, as its state directory would on a disk.
        state = DaemonState()

        def start(local: LocalMachine, delay: float) -> Daemon:
            daemon = Daemon(
                InProcessClient(self._service, Caller.node(instance.instance_id)),
                gpus,
                config,
                rng=random.Random(
                    machine.seed if not local.reboots else f"{machine.seed}/boot-{local.reboots}"
                ),
                host_stats=host_stats,
                health_checks=checks,
                state=state,
                reboot=_MachineReboot(local),
            )
            self._nursery.start_soon(_run, daemon, delay)
            return daemon

        return LocalMachine(gpus, start)

    def _health_checks(self, config: DaemonConfig) -> list[tuple[str, AnyHealthCheck]]:
        if self._checks is None:
            from navarch.plugins.manager import installed_plugins

            every = load_health_checks(installed_plugins(), config)
            self._checks = [(name, check) for name, check in every if name in LIFELIKE_CHECKS]
        return self._checks


class SimulatedHostStats:
    """Host CPU and memory use that follow the GPUs' load: feeding GPUs keeps the CPUs busy."""

    def __init__(self, gpus: SimulatedGpus, rng: random.Random) -> None:
        self._gpus = gpus
        self._rng = rng

    def read(self) -> tuple[float, float]:
        load = self._gpus.load
        cpu = 3.0 + 0.35 * load + self._rng.gauss(0.0, 1.0)
        memory = 12.0 + 0.4 * load + self._rng.gauss(0.0, 0.3)
        return round(min(max(cpu, 0.5), 100.0), 1), round(min(max(memory, 1.0), 100.0), 1)


async def _run(daemon: Daemon, delay: float = 0.0) -> None:
    if delay:
        await trio.sleep(delay)
    try:
        await daemon.run()
    except DaemonError as exc:
        # One refused node must not take the control plane down with it.
        log.warning("simulated node %s stopped: %s", daemon.node_id, exc)
