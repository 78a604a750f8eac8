"""Simulated machines in this process: a real daemon over simulated GPUs for each one.

The fake provider's instances run here (`navarch control-plane` with a local fleet, and the
tests): each daemon talks to the control plane in process, as the node its instance is, and
stops when its machine is switched off.

Lifelike machines (`LocalMachines.lifelike`, what `navarch control-plane` runs) look like busy
ones to an operator: their GPU readings wander around the load, the `gpu` health check runs on
them, and they report host CPU and memory use that follows the load.
"""

from __future__ import annotations

import logging
import random

import trio

from navarch.api.inprocess import InProcessClient
from navarch.controlplane import Caller, ControlPlane
from navarch.daemon.agent import Daemon, DaemonError
from navarch.daemon.checks import load_health_checks
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import SimulatedGpus
from navarch.daemon.host import HostStats
from navarch.plugins import Instance, SimulatedMachine
from navarch.plugins.health_check import HealthCheck, WatchingHealthCheck

log = logging.getLogger("navarch.daemon")

# The health check that reads simulated GPUs; the others read the machine's kernel log and boot.
LIFELIKE_CHECKS = ("gpu",)


class LocalMachine:
    """One simulated machine: its daemon and its GPUs."""

    def __init__(self, daemon: Daemon, gpus: SimulatedGpus) -> None:
        self.daemon = daemon
        self.gpus = gpus

    def set_load(self, utilization: float) -> None:
        self.gpus.set_load(utilization)

    def power_off(self) -> None:
        self.daemon.stop()


class LocalMachines:
    """Boots simulated machines whose daemons run in `nursery` and call `service` in process."""

    def __init__(
        self, service: ControlPlane, nursery: trio.Nursery, *, lifelike: bool = False
    ) -> None:
        self._service = service
        self._nursery = nursery
        self._lifelike = lifelike
        self._checks: list[tuple[str, HealthCheck | WatchingHealthCheck]] | None = None

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
        checks: list[tuple[str, HealthCheck | WatchingHealthCheck]] = []
        if self._lifelike:
            host_stats = SimulatedHostStats(gpus, random.Random(f"{machine.seed}/host"))
            checks = self._health_checks(config)
        daemon = Daemon(
            InProcessClient(self._service, Caller.node(instance.instance_id)),
            gpus,
            config,
            rng=random.Random(machine.seed),
            host_stats=host_stats,
            health_checks=checks,
        )
        self._nursery.start_soon(_run, daemon)
        return LocalMachine(daemon, gpus)

    def _health_checks(
        self, config: DaemonConfig
    ) -> list[tuple[str, HealthCheck | WatchingHealthCheck]]:
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


async def _run(daemon: Daemon) -> None:
    try:
        await daemon.run()
    except DaemonError as exc:
        # One refused node must not take the control plane down with it.
        log.warning("simulated node %s stopped: %s", daemon.node_id, exc)
