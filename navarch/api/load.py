"""How long calls wait to run: the event loop's lag, and each call's own wait.

Under trio a saturated process does not queue requests where a server can count them: each
connection's task waits in the run queue, and a pass of the scheduler runs every task that is
ready. `LoadMeter` measures the two things admission control needs from that:

- `waited()`: how long the task running now has waited at least, the time since the pass it runs
  in began, from a trio instrument that notes when each of the scheduler's I/O waits ends. Every
  task of a pass was woken by that wait or before it, so a call late in a long pass knows it is
  late, at the cost of reading the clock.
- `delay`: how late a short sleep wakes, late on two ticks in a row (one slow step is not
  saturation), shown as a metric: about how long a call waits to run.

Times come from `trio.current_time()`, so the meter runs unchanged on `MockClock`.
"""

from __future__ import annotations

import trio

# How often `watch` measures the event loop's lag, in seconds.
TICK = 0.05


class LoadMeter(trio.abc.Instrument):
    """The event loop's lag, and how long the running task waited; `watch` runs it."""

    def __init__(self) -> None:
        # The event loop's lag as `watch` last measured it, in seconds.
        self.delay = 0.0
        # When the scheduler's last I/O wait ended: the pass running now began then. None while
        # the meter is not installed.
        self._woke: float | None = None

    def after_io_wait(self, timeout: float) -> None:
        self._woke = trio.current_time()

    def waited(self) -> float:
        """How long the task running now has waited to run at least: the time since the pass
        of the scheduler it runs in began, which is when the network events that woke this
        pass's tasks were collected. 0 while `watch` does not run."""
        woke = self._woke
        return 0.0 if woke is None else trio.current_time() - woke

    async def watch(self, tick: float = TICK) -> None:
        """Installs the meter and measures the lag every `tick` seconds, for as long as it
        runs."""
        trio.lowlevel.add_instrument(self)
        try:
            previous = 0.0
            while True:
                asleep = trio.current_time()
                await trio.sleep(tick)
                late = trio.current_time() - asleep - tick
                self.delay = min(previous, late)
                previous = late
        finally:
            trio.lowlevel.remove_instrument(self)
            self._woke = None
