"""The node's health checks, and the reports that carry their events to the control plane.

Events come from three places: the checks run every health-check interval, checks that watch
the machine, and the GPU backend's own event stream when no check watches it. They wait in one
bounded queue while the control plane is away, so a node that comes back tells what happened.
A check that raises is reported as an event too, and the others go on.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence

import trio

from navarch.api import wire as m
from navarch.api.client import ControlPlaneClient, Unreachable
from navarch.api.codec import ApiError
from navarch.api.mapping import health_events_to_wire
from navarch.clock import WallClock
from navarch.daemon.link import Link
from navarch.daemon.nodelog import NodeLog
from navarch.model import GpuInfo, HealthEvent, HealthEventType
from navarch.plugins.health_check import (
    AnyHealthCheck,
    DiagnosingHealthCheck,
    Diagnosis,
    GpuBackend,
    GpuEvent,
    HealthCheck,
    NodeWatch,
    WatchingHealthCheck,
)

# The most health events held while the control plane is away; the oldest go first.
MAX_UNSENT_EVENTS = 1000
# How long to wait before watching GPU events again after the stream failed.
EVENTS_RETRY = 60.0


class HealthReporter:
    """Runs the health checks and reports their events, with the GPUs' own, as they come."""

    def __init__(
        self,
        client: ControlPlaneClient,
        link: Link,
        backend: GpuBackend,
        checks: Sequence[tuple[str, AnyHealthCheck]],
        log: NodeLog,
        *,
        state_dir: str,
        wall_clock: WallClock,
    ) -> None:
        self._client = client
        self._link = link
        self._backend = backend
        self._checks = list(checks)
        # Sorted once: isinstance against a Protocol costs microseconds, and checks run often.
        self._runners = [(n, c) for n, c in checks if isinstance(c, HealthCheck)]
        self._watchers = [(n, c) for n, c in checks if isinstance(c, WatchingHealthCheck)]
        self._diagnosers = [(n, c) for n, c in checks if isinstance(c, DiagnosingHealthCheck)]
        self._log = log
        self._state_dir = state_dir
        self._wall_clock = wall_clock
        self._inventory: tuple[GpuInfo, ...] = ()
        self._unsent: list[HealthEvent] = []
        self._events_arrived = trio.Event()

    def start(self, nursery: trio.Nursery, inventory: Sequence[GpuInfo]) -> None:
        """Starts the watching checks (or the GPU event stream) and the periodic report."""
        self._inventory = tuple(inventory)
        for name, check in self._watchers:
            nursery.start_soon(self._watch_loop, name, check)
        if not self._watchers:
            nursery.start_soon(self._gpu_events_loop)
        nursery.start_soon(self._report_loop)

    async def diagnose(self, level: int | None = None) -> Diagnosis:
        """Runs the periodic checks now, then every check's on-demand diagnostic at `level`
        (None: each check's own), one after the other, since each takes the GPUs; queues their
        events and says what they found, for a run_diagnostic command's result. Not ok when
        a diagnostic failed, or raised."""
        if not self._checks:
            return Diagnosis(ok=True, summary="no health checks are installed on this node")
        events = await self.check_now()
        found: list[Diagnosis] = []
        for name, check in self._diagnosers:
            try:
                diagnosis = await check.diagnose(level)
            except Exception as exc:
                self._log.exception("the diagnostic of health check %s failed", name)
                failed = self._check_failed(name, f"the diagnostic of {name} failed", exc)
                diagnosis = Diagnosis(ok=False, summary=failed.message, events=(failed,))
            if diagnosis is not None:
                self._queue(diagnosis.events)
                found.append(diagnosis)
        ran = [f"ran {len(self._runners)} health checks: {len(events)} events"]
        if not found:
            return Diagnosis(ok=True, summary=ran[0])
        summary = "; ".join([d.summary for d in found] + (ran if self._runners else []))
        return Diagnosis(ok=all(d.ok for d in found), summary=summary)

    async def check_now(self) -> list[HealthEvent]:
        """Runs the checks now, as a periodic report does, and queues their events for the
        control plane; returns them too."""
        events = await self._run_checks()
        self._queue(events)
        return events

    def report_problem(self, check: str, message: str) -> None:
        """Sends the control plane a CHECK_FAILED event about something the daemon itself did."""
        self._queue(
            [
                HealthEvent(
                    type=HealthEventType.CHECK_FAILED,
                    time=self._wall_clock(),
                    message=message,
                    details={"check": check},
                )
            ]
        )

    async def _gpu_events_loop(self) -> None:
        """Passes GPU events (XIDs, lost GPUs) on as they happen, not at the next check."""
        while True:
            try:
                await self._backend.watch_events(self._report_gpu_events)
                return
            except Exception as exc:
                # Health checks and heartbeats go on; the control plane hears why events stopped.
                self._log.exception("the GPU event stream failed; retrying in %gs", EVENTS_RETRY)
                self._queue([self._check_failed("gpu-events", "GPU event stream failed", exc)])
            await trio.sleep(EVENTS_RETRY)

    async def _watch_loop(self, name: str, check: WatchingHealthCheck) -> None:
        node = NodeWatch(
            gpus=self._backend,
            inventory=self._inventory,
            state_dir=self._state_dir,
            report=self._queue,
            wall_clock=self._wall_clock,
        )
        while True:
            try:
                await check.watch(node)
                return
            except Exception as exc:
                self._log.exception(
                    "health check %s stopped watching; retrying in %gs", name, EVENTS_RETRY
                )
                self._queue([self._check_failed(name, f"health check {name} failed", exc)])
            await trio.sleep(EVENTS_RETRY)

    def _report_gpu_events(self, events: Sequence[GpuEvent]) -> None:
        uuids = {g.index: g.uuid for g in self._inventory}
        now = self._wall_clock()
        self._queue(
            [
                HealthEvent(
                    type=e.type,
                    time=now,
                    gpu_index=e.gpu_index,
                    gpu_uuid=uuids.get(e.gpu_index, ""),
                    xid=e.xid,
                    message=e.message or (f"XID {e.xid}" if e.xid else ""),
                    details=e.details,
                )
                for e in events
            ]
        )

    def _check_failed(self, check: str, what: str, exc: Exception) -> HealthEvent:
        """The event that tells the control plane a check, or what feeds the checks, raised."""
        return HealthEvent(
            type=HealthEventType.CHECK_FAILED,
            time=self._wall_clock(),
            message=f"{what}: {type(exc).__name__}: {exc}",
            details={"check": check},
        )

    def _queue(self, events: Sequence[HealthEvent]) -> None:
        if not events:
            return
        self._unsent.extend(events)
        if len(self._unsent) > MAX_UNSENT_EVENTS:
            dropped = len(self._unsent) - MAX_UNSENT_EVENTS
            del self._unsent[:dropped]
            self._log.warning("dropped %d unsent health events (the oldest)", dropped)
        self._events_arrived.set()

    async def _run_checks(self) -> list[HealthEvent]:
        try:
            samples = self._backend.sample()
        except Exception as exc:
            # A driver that stops answering must not stop the daemon; the control plane hears it.
            self._log.exception("sampling the GPUs failed")
            return [self._check_failed("gpu-sample", "sampling the GPUs failed", exc)]
        events: list[HealthEvent] = []
        for name, check in self._runners:
            try:
                found = check.run(samples)
                if inspect.isawaitable(found):
                    found = await found
                events.extend(found)
            except Exception as exc:
                self._log.exception("health check %s failed", name)
                events.append(self._check_failed(name, f"health check {name} failed", exc))
        return events

    async def _report_loop(self) -> None:
        """Runs the health checks every interval and sends their events with any XIDs.

        With no health checks installed only XID events are sent, when they happen.
        """
        link = self._link
        backoff = link.new_backoff()
        next_check = trio.current_time() if self._checks else math.inf
        retry_at = math.inf
        due = False  # a periodic report is owed even when it carries no events
        while True:
            with trio.move_on_at(min(next_check, retry_at)):
                await self._events_arrived.wait()
            self._events_arrived = trio.Event()
            now = trio.current_time()
            if now >= next_check:
                self._queue(await self._run_checks())
                next_check = now + link.health_check_interval
                due = True
            if not (due or self._unsent) or (now < retry_at < math.inf):
                continue
            batch = list(self._unsent)
            generation = link.generation
            try:
                reply = await self._client.report_health(
                    m.ReportHealthRequest(node_id=link.node_id, events=health_events_to_wire(batch))
                )
            except (Unreachable, ApiError) as exc:
                retry_at = trio.current_time() + await link.recover(exc, generation, backoff)
                continue
            del self._unsent[: len(batch)]
            due = False
            retry_at = math.inf
            backoff.reset()
            link.ok()
            link.heard(reply.status, reply.health)
