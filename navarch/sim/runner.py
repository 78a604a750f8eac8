"""Running a scenario: the real control plane, the simulated fleet, the script, chaos, the report.

`run_scenario` runs in virtual time by default: trio's `MockClock` jumps ahead whenever every task
waits, the daemons call the service in process, and trio's scheduler is seeded, so a 10-minute
run takes seconds and one seed always gives the same report. With `real_time=True` the control
plane serves HTTP on loopback and every daemon talks to it over a socket, on the wall clock.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing

from navarch.clock import Clock
from navarch.controlplane import ControlPlane
from navarch.controlplane.notifiers import build_notifiers
from navarch.durations import format_duration
from navarch.errors import DomainError
from navarch.ids import IdFactory
from navarch.model import CommandType
from navarch.sim.chaos import ChaosEngine
from navarch.sim.checks import evaluate
from navarch.sim.determinism import freeze_the_fleet, rare_full_collections, seeded_scheduler
from navarch.sim.fleet import Failure, Fleet, SimNode
from navarch.sim.report import AssertionResult, Recorder, build_report
from navarch.sim.scenario import NODE_FAILURES, Condition, Event, NodeSpec, Scenario
from navarch.store import SQLiteStore

# Virtual runs start at this instant, so their timestamps do not depend on the day they ran.
VIRTUAL_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# How often wait_for looks again.
_POLL = 1.0


class WaitTimedOut(Exception):
    pass


@attrs.frozen
class Progress:
    """What the console shows while a run goes on."""

    t: float
    end: float | None
    by_status: dict[str, int]
    failures: int
    recoveries: int
    remediations_open: int
    replacements: int


def run_scenario(
    scenario: Scenario,
    *,
    seed: int | None = None,
    real_time: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    on_ready: Callable[[str], None] | None = None,
    forever: bool = False,
    listen: str = "127.0.0.1:0",
    on_log: Callable[[float, str], None] | None = None,
) -> dict[str, Any]:
    """Runs `scenario` to its end and returns the report (the content of report.json).

    In real time the control plane listens on `listen`; `on_ready` gets its URL once the fleet
    can reach it, and `forever` keeps the run going after its script until interrupted.
    `on_log` gets the messages of the script's `log` events.
    """
    seed = scenario.seed if seed is None else seed
    runner = Runner(scenario, seed=seed, real_time=real_time, on_progress=on_progress)
    runner.on_ready = on_ready
    runner.forever = forever
    runner.listen = listen
    runner.on_log = on_log
    with _quiet(), rare_full_collections():
        if real_time:
            return trio.run(runner.run)
        with seeded_scheduler(seed):
            return trio.run(runner.run, clock=trio.testing.MockClock(autojump_threshold=0))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keeps the log of the control plane and the daemons to errors: what they do is the report,
    and a simulated partition makes every daemon in it warn."""
    logger = logging.getLogger("navarch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class Runner:
    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int,
        real_time: bool = False,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.real_time = real_time
        self.on_progress = on_progress
        self.on_ready: Callable[[str], None] | None = None
        self.forever = False
        self.listen = "127.0.0.1:0"
        self.on_log: Callable[[float, str], None] | None = None
        self.rng = random.Random(f"chaos/{seed}")
        self._t0 = 0.0
        self.recorder = Recorder(self.elapsed)
        self.fleet: Fleet | None = None
        self.service: ControlPlane | None = None
        self._failure_ids = 0

    def elapsed(self) -> float:
        return round(trio.current_time() - self._t0, 3)

    def _wall_clock(self) -> datetime:
        return self._epoch + timedelta(seconds=trio.current_time() - self._t0)

    async def run(self) -> dict[str, Any]:
        scenario = self.scenario
        self._t0 = trio.current_time()
        self._epoch = datetime.now(UTC) if self.real_time else VIRTUAL_EPOCH
        with tempfile.TemporaryDirectory(prefix="navarch-sim-") as tmp:
            # In virtual time the store is an in-memory SQLite database: the same statements and
            # transactions, without the file writes and checkpoints that a run in virtual time
            # would otherwise wait for on the wall clock.
            path = Path(tmp) / "navarch.db" if self.real_time else ":memory:"
            async with (
                SQLiteStore.open(path, threaded=self.real_time) as store,
                trio.open_nursery() as outer,
            ):
                fleet = Fleet(
                    seed=self.seed,
                    preemptible=scenario.preemptible,
                    infiniband=scenario.infiniband,
                    diagnostics=scenario.diagnostics,
                    wall_clock=self._wall_clock,
                    on_note=lambda message: self.recorder.line(self.elapsed(), "note", "", message),
                    on_machine=self._machine_added,
                    on_recovered=self.recorder.recovered,
                )
                self.fleet = fleet
                for name in scenario.providers:
                    fleet.add_provider(name, scenario.config.providers[name])
                for spec in scenario.fleet:
                    fleet.add(spec)
                # Loopback only, so no tokens, as `navarch control-plane` on loopback: the
                # operator's CLI works against it as it is.
                async with ControlPlane.open(
                    store,
                    scenario.config.server,
                    clock=Clock(self._wall_clock),
                    ids=None
                    if self.real_time
                    else IdFactory.seeded(f"ids/{self.seed}", self._wall_clock),
                    config=scenario.config,
                    notifiers=[*build_notifiers(scenario.config), self.recorder],
                    providers=fleet.providers,
                    machines=lambda _service, _nursery: fleet,
                ) as service:
                    self.service = service
                    fleet.service = service
                    async with trio.open_nursery() as machines:
                        fleet.nursery = machines
                        if self.real_time:
                            fleet.url = await outer.start(self._serve, service)
                        if self.on_ready is not None:
                            self.on_ready(fleet.url)
                        await self._script()
                        machines.cancel_scope.cancel()
                    duration = self.elapsed()
                    remediations = await store.list_remediations(
                        pool="", node_id="", limit=1_000_000
                    )
                outer.cancel_scope.cancel()
        return build_report(
            self.recorder,
            scenario=scenario,
            seed=self.seed,
            mode="real-time" if self.real_time else "virtual",
            duration=duration,
            remediations=remediations,
        )

    async def _serve(
        self, service: ControlPlane, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serves the API on a free loopback port; starts with the URL the daemons use."""
        from navarch.api.app import ControlPlaneApp
        from navarch.api.server import bind, http_config, serve_app

        server = self.scenario.config.server
        http = http_config(server, self.listen)
        sockets = bind(http, self.listen)
        app = ControlPlaneApp(service, max_body_bytes=server.max_body_bytes)
        try:
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(serve_app, app, server, http, sockets)
                task_status.started(binds[0])
        finally:
            # serve_app leaves its listening sockets to the caller.
            for sock in sockets:
                sock.close()

    def _machine_added(self, node: SimNode, provisioned: bool) -> None:
        if provisioned:
            self.recorder.nodes_started.add(node.id)

    # The script.

    async def _script(self) -> None:
        scenario = self.scenario
        async with trio.open_nursery() as nursery:
            if scenario.chaos is not None:
                engine = ChaosEngine(scenario.chaos, self.rng, self, self._t0)
                nursery.start_soon(engine.run)
            nursery.start_soon(self._sampler)
            aborted = False
            for event in scenario.events:
                await trio.sleep_until(self._t0 + event.at.total_seconds())
                try:
                    await self._do(event)
                except WaitTimedOut:
                    aborted = True
                    break
            if scenario.duration is not None and not aborted:
                await trio.sleep_until(self._t0 + scenario.duration.total_seconds())
            if self.forever:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        break
            self._sample()
            for i, condition in enumerate(scenario.assertions):
                await self._assert(condition, f"assertions[{i}]", at=None)
            nursery.cancel_scope.cancel()

    async def _do(self, event: Event) -> None:
        assert self.fleet is not None and self.service is not None
        fleet = self.fleet
        action = event.action
        if action not in ("wait_for", "assert"):
            self.recorder.line(self.elapsed(), f"scenario.{action}", event.node, event.describe())
        match action:
            case "start_fleet":
                specs = [s for s in self.scenario.fleet if not fleet.nodes[s.id].running]
                fleet.machines().start_soon(self._start_fleet, specs)
            case "stop_fleet":
                for spec in self.scenario.fleet:
                    fleet.nodes[spec.id].stop()
            case "start_node":
                self._start(fleet.nodes[event.node])
            case "stop_node":
                fleet.nodes[event.node].stop()
            case "inject_failure":
                assert event.failure is not None
                target = self._target(event)
                if target is None:
                    self.recorder.line(
                        self.elapsed(), "scenario.skipped", "", f"pool {event.pool} has no node"
                    )
                    return
                self.inject(
                    target,
                    event.failure,
                    source="event",
                    xid=event.xid,
                    gpu=event.gpu,
                    params=event,
                )
            case "recover_failure":
                node = fleet.nodes[event.node]
                chosen = [f for f in node.failures if not event.failure or f.type == event.failure]
                self.recover(node, chosen)
            case "issue_command":
                await self._issue(event)
            case "set_utilization":
                self._set_utilization(event)
            case "set_queue_depth":
                assert event.depth is not None
                self.service.pool_manager().report_queue_depth(event.pool, event.depth)
            case "wait_for":
                await self._wait_for(event)
            case "assert":
                assert event.condition is not None
                await self._assert(event.condition, f"events[{event.index}]", at=self.elapsed())
            case "log":
                if self.on_log is not None:
                    self.on_log(self.elapsed(), event.message)

    def _target(self, event: Event) -> SimNode | None:
        """The node an event acts on: its own, or the first running node of its pool."""
        assert self.fleet is not None
        if event.node:
            return self.fleet.nodes[event.node]
        members = sorted(
            (n for n in self.fleet.running() if n.spec.pool == event.pool), key=lambda n: n.id
        )
        return members[0] if members else None

    async def _start_fleet(self, specs: list[NodeSpec]) -> None:
        startup = self.scenario.startup
        nodes = [self.fleet.nodes[s.id] for s in specs]  # type: ignore[union-attr]
        if startup.pattern == "instant" or not nodes:
            batches = [nodes]
        elif startup.pattern == "linear":
            batches = [[n] for n in nodes]
        elif startup.pattern == "exponential":
            batches = []
            size, i = 1, 0
            while i < len(nodes):
                batches.append(nodes[i : i + size])
                i += size
                size *= 2
        else:  # wave
            size = startup.batch_size
            batches = [nodes[i : i + size] for i in range(0, len(nodes), size)]
        # The batches spread evenly over the startup's duration.
        gap = (
            0.0 if startup.pattern == "instant" else startup.duration.total_seconds() / len(batches)
        )
        for batch in batches:
            for node in batch:
                self._start(node)
            if gap:
                jitter = gap * startup.jitter_percent / 100
                await trio.sleep(max(0.0, gap + self.rng.uniform(-jitter, jitter)))
            # What the machines started so far hold lives as long as they do.
            freeze_the_fleet()

    def _start(self, node: SimNode) -> None:
        node.start()
        if node.running:
            self.recorder.nodes_started.add(node.id)

    async def _issue(self, event: Event) -> None:
        assert self.service is not None
        try:
            await self.service.commands.issue(
                event.node, CommandType(event.command), "scenario", dict(event.args), "admin"
            )
        except DomainError as exc:
            self.recorder.assertions.append(
                AssertionResult(
                    source=f"events[{event.index}]",
                    check="issue_command",
                    description=event.describe(),
                    passed=False,
                    message=f"the control plane refused: {exc}",
                    at=self.elapsed(),
                )
            )

    def _set_utilization(self, event: Event) -> None:
        assert self.fleet is not None and event.utilization is not None
        fleet = self.fleet
        if event.node:
            fleet.nodes[event.node].set_load(event.utilization)
            return
        if event.pool:
            fleet.pool_utilization[event.pool] = event.utilization
        else:
            fleet.utilization = event.utilization
            fleet.utilization_set = True
            fleet.pool_utilization.clear()
        for node in fleet.nodes.values():
            if not event.pool or node.spec.pool == event.pool:
                node.set_load(event.utilization)

    # Failures, for the script and the chaos engine.

    def running(self) -> list[SimNode]:
        assert self.fleet is not None
        return sorted((n for n in self.fleet.nodes.values() if n.running), key=lambda n: n.id)

    def inject(
        self,
        node: SimNode,
        kind: str,
        *,
        source: str,
        xid: int | None = None,
        gpu: int | None = None,
        cause: int | None = None,
        params: Event | None = None,
    ) -> Failure | None:
        if node.terminated:
            return None
        self._failure_ids += 1
        failure = Failure(
            id=self._failure_ids,
            t=self.elapsed(),
            node=node.id,
            type=kind,
            source=source,
            xid=xid,
            gpu=None if kind in NODE_FAILURES else (gpu or 0),
            cause=cause,
        )
        if params is not None:
            # How the failure acts, as the event says (its defaults are the failure's own).
            failure.celsius, failure.link, failure.message = (
                params.celsius,
                params.link,
                params.message,
            )
            failure.corrected, failure.uncorrected = params.corrected, params.uncorrected
            failure.notice = params.notice.total_seconds()
            failure.reset, failure.reboot = params.reset, params.reboot
            failure.recovery = params.recovery
            failure.errors, failure.lanes, failure.port = params.errors, params.lanes, params.port
        self.recorder.failure(failure)
        node.inject(failure)
        return failure

    def recover(self, node: SimNode, failures: Sequence[Failure]) -> None:
        self.recorder.recovered(node.recover(failures))

    def set_provider_down(self, provider: str, reason: str) -> None:
        assert self.fleet is not None
        target = self.fleet.providers.get(provider)
        if target is not None:
            target.down_reason = reason
        self.recorder.line(
            self.elapsed(), "outage.provider", provider, reason or "provisioning again"
        )

    def outage(self, record: dict[str, Any]) -> None:
        self.recorder.outages.append(record)
        lasting = format_duration(timedelta(seconds=record["duration_s"]))
        self.recorder.line(
            self.elapsed(),
            "outage.started",
            record["target"],
            f"{record['name']}: {record['nodes']} nodes for {lasting}",
        )

    # Sampling and conditions.

    async def _sampler(self) -> None:
        interval = self.scenario.sample_interval.total_seconds()
        wall = time.monotonic()
        while True:
            self._sample()
            if self.on_progress is not None and time.monotonic() - wall >= 0.1:
                wall = time.monotonic()
                self._progress()
            await trio.sleep(interval)

    def _sample(self) -> None:
        assert self.service is not None
        nodes = list(self.service.all_nodes())
        pools: dict[str, int] = {}
        manager = self.service.pools
        if manager is not None:
            pools = {name: len(manager.members(name)) for name in manager.pools}
        self.recorder.sample(nodes, self.service.remediation.open_episodes(), pools)

    def _progress(self) -> None:
        assert self.on_progress is not None
        sample = self.recorder.samples[-1]
        end = None
        if self.scenario.duration is not None:
            end = self.scenario.duration.total_seconds()
        self.on_progress(
            Progress(
                t=self.elapsed(),
                end=end,
                by_status=sample["by_status"],
                failures=len(self.recorder.failures),
                recoveries=self.recorder.recoveries,
                remediations_open=sample["remediations_open"],
                replacements=self.recorder.replacements,
            )
        )

    async def _wait_for(self, event: Event) -> None:
        assert event.condition is not None
        condition = event.condition
        deadline = trio.current_time() + event.timeout.total_seconds()
        while True:
            held, seen = await self.evaluate(condition)
            if held:
                self.recorder.assertions.append(
                    AssertionResult(
                        source=f"events[{event.index}]",
                        check=condition.check,
                        description=f"wait_for {condition.describe()}",
                        passed=True,
                        at=self.elapsed(),
                    )
                )
                return
            if trio.current_time() >= deadline:
                self.recorder.assertions.append(
                    AssertionResult(
                        source=f"events[{event.index}]",
                        check=condition.check,
                        description=f"wait_for {condition.describe()}",
                        passed=False,
                        message=f"timed out after {format_duration(event.timeout)}: {seen}; "
                        "the remaining events did not run",
                        at=self.elapsed(),
                    )
                )
                raise WaitTimedOut
            await trio.sleep(_POLL)

    async def _assert(self, condition: Condition, source: str, at: float | None) -> None:
        held, seen = await self.evaluate(condition)
        self.recorder.assertions.append(
            AssertionResult(
                source=source,
                check=condition.check,
                description=condition.describe(),
                passed=held,
                message="" if held else f"expected {condition.describe()}; {seen}",
                at=at,
            )
        )

    async def evaluate(self, condition: Condition) -> tuple[bool, str]:
        """Whether `condition` holds now, and what was seen (for messages)."""
        assert self.service is not None and self.fleet is not None
        return await evaluate(condition, self.service, self.fleet, self.recorder)
