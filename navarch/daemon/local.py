"""Simulated machines in this process: a real daemon over simulated GPUs for each one.

The fake provider's instances run here (`navarch control-plane` with a local fleet, and the
tests): each daemon talks to the control plane in process, as the node its instance is, and
stops when its machine is switched off.
"""

from __future__ import annotations

import logging
import random

import trio

from navarch.api.inprocess import InProcessClient
from navarch.controlplane import Caller, ControlPlane
from navarch.daemon.agent import Daemon, DaemonError
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import SimulatedGpus
from navarch.plugins import Instance, SimulatedMachine

log = logging.getLogger("navarch.daemon")


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

    def __init__(self, service: ControlPlane, nursery: trio.Nursery) -> None:
        self._service = service
        self._nursery = nursery

    def boot(self, provider: str, instance: Instance, machine: SimulatedMachine) -> LocalMachine:
        gpus = SimulatedGpus(machine.gpu_count, seed=instance.instance_id, name=machine.gpu_type)
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
        daemon = Daemon(
            InProcessClient(self._service, Caller.node(instance.instance_id)),
            gpus,
            config,
            rng=random.Random(machine.seed),
        )
        self._nursery.start_soon(_run, daemon)
        return LocalMachine(daemon, gpus)


async def _run(daemon: Daemon) -> None:
    try:
        await daemon.run()
    except DaemonError as exc:
        # One refused node must not take the control plane down with it.
        log.warning("simulated node %s stopped: %s", daemon.node_id, exc)
