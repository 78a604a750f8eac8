"""What a provider's `attach` gets: the pool manager's `ProviderContext`, and the machine runner
behind its `boot`.

The control plane does not know how to run a simulated machine; whoever assembles the process
hands it a `MachineRunner` (`navarch.daemon.local` runs daemons in process, the simulator runs its
fleet's machines). Without one, `boot` refuses, and a provider that needs it makes instances that
never register.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

import trio

from navarch.plugins import Instance, Machine, ProviderError, SimulatedMachine

log = logging.getLogger("navarch.pools")


class MachineRunner(Protocol):
    def boot(self, provider: str, instance: Instance, machine: SimulatedMachine) -> Machine:
        """Starts a simulated machine that registers as `instance.instance_id`, reporting
        `provider` as its provider."""
        ...


class ProviderContextImpl:
    """One provider's context: its table's name, the service's clock, the manager's nursery."""

    def __init__(
        self,
        name: str,
        nursery: trio.Nursery,
        now: Callable[[], datetime],
        machines: MachineRunner | None,
    ) -> None:
        self._name = name
        self._nursery = nursery
        self._now = now
        self._machines = machines

    @property
    def name(self) -> str:
        return self._name

    def now(self) -> datetime:
        return self._now()

    def boot(self, instance: Instance, machine: SimulatedMachine) -> Machine:
        if self._machines is None:
            raise ProviderError(f"{self._name}: this control plane runs no simulated machines")
        return self._machines.boot(self._name, instance, machine)

    def start_soon(self, task: Callable[..., Awaitable[object]], *args: object) -> None:
        self._nursery.start_soon(self._guarded, task, args)

    async def _guarded(
        self, task: Callable[..., Awaitable[object]], args: tuple[object, ...]
    ) -> None:
        try:
            await task(*args)
        except Exception:
            # A provider's own task must not take the control plane down with it.
            log.exception("provider %s: a task of its own failed", self._name)
