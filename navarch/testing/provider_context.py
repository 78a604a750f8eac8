"""A `ProviderContext` for provider tests: what `attach` gets, without a control plane."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import trio

from navarch.clock import utc_now
from navarch.plugins import Instance, Machine, ProviderError, SimulatedMachine, WallClock

log = logging.getLogger("navarch.testing")

Boot = Callable[[Instance, SimulatedMachine], Machine]


class MockProviderContext:
    """The context a provider's `attach` gets, for a test.

    `start_soon` runs the provider's tasks in `nursery`. As in a control plane, a task that raises
    ends alone; here its exception is also kept in `failures`, so that a test can say it failed.
    `boot` hands a simulated machine to `machines` and returns what it returns; without
    `machines` it refuses with `ProviderError`, as a control plane that runs no simulated machines
    does.

        async with trio.open_nursery() as nursery:
            provider.attach(MockProviderContext(nursery, name="moon"))
            ...
            nursery.cancel_scope.cancel()
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        name: str = "test",
        machines: Boot | None = None,
        wall_clock: WallClock = utc_now,
    ) -> None:
        self._nursery = nursery
        self._name = name
        self._machines = machines
        self._wall_clock = wall_clock
        self.failures: list[Exception] = []

    @property
    def name(self) -> str:
        return self._name

    def now(self) -> datetime:
        return self._wall_clock()

    def boot(self, instance: Instance, machine: SimulatedMachine) -> Machine:
        if self._machines is None:
            raise ProviderError(f"{self._name}: this test runs no simulated machines")
        return self._machines(instance, machine)

    def start_soon(self, task: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self._nursery.start_soon(self._guarded, task, args)

    async def _guarded(self, task: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            await task(*args)
        except Exception as exc:
            log.exception("provider %s: a task of its own failed", self._name)
            self.failures.append(exc)
