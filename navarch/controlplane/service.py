"""The control-plane service: the parts that own the fleet's state, assembled and run.

`ControlPlane.open` loads the state from the store and runs, in one nursery, the heartbeat
monitor, the health recheck, the notifiers, the pool manager (with pools configured), the
remediation worker and the history sampler. The parts, each owning one idea:

- `book`: every node, heartbeat soft state, and the one commit/event API;
- `nodes`: registration, heartbeats, silence, termination, listings;
- `commands`: issuing commands, long polls, acknowledgements;
- `verdicts`: health reports judged by the policy, and the actions they take;
- `remediation`: the persisted episodes that take bad nodes out and replace them, and
  `recovery`: their steps that reset a GPU or reboot a node first;
- `pools`: the pool manager, when the configuration has pools;
- `node_pages` and `history`: the dashboard's reads, the node table's pages and the fleet's and
  pools' last 6 hours (`summary` puts the fleet page together).

The service speaks the domain (`navarch.model`) and raises domain errors (`navarch.errors`); the
API (`navarch.api`) maps both to the wire. The service owns one clock and one id factory, which
every part uses, so the simulator makes a whole run repeatable by injecting seeded ones.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

import trio

from navarch.clock import Clock
from navarch.config import Config, HealthConfig, MetricsConfig, PoolHealthConfig, ServerConfig
from navarch.controlplane import lifecycle
from navarch.controlplane.auth import Authenticator
from navarch.controlplane.book import NodeBook
from navarch.controlplane.commands import Commands
from navarch.controlplane.health_counts import HealthCounts
from navarch.controlplane.history import History
from navarch.controlplane.node_pages import NodeOrder, NodePage, NodePages
from navarch.controlplane.nodes import NodeFilter, Nodes
from navarch.controlplane.notifiers import build_notifiers
from navarch.controlplane.preemption import Preemptions, Taken
from navarch.controlplane.queue import CommandQueue
from navarch.controlplane.remediation import Remediator, Replacer
from navarch.controlplane.summary import FleetSummary, fleet_summary
from navarch.controlplane.verdicts import Verdicts
from navarch.errors import NotFound
from navarch.health import HealthJudge, load_policy
from navarch.ids import IdFactory
from navarch.model import (
    HEARTBEAT_LOST,
    Command,
    CommandType,
    Event,
    Node,
    NodeStatus,
    Remediation,
)
from navarch.plugins import Notifier, Provider
from navarch.pools.context import MachineRunner
from navarch.pools.manager import PoolManager
from navarch.store import Change, Store, StoreError

# The most events or episodes one listing returns.
MAX_PAGE = 1000
# How often terminated nodes past their retention are pruned, in seconds.
PRUNE_INTERVAL = 3600.0

log = logging.getLogger("navarch.controlplane")


class ControlPlane:
    """The service. Use `async with ControlPlane.open(store, server) as control_plane:`."""

    def __init__(
        self,
        store: Store,
        server: ServerConfig,
        *,
        admin_token: str = "",
        join_token: str = "",
        viewer_token: str = "",
        clock: Clock | None = None,
        ids: IdFactory | None = None,
        health: HealthConfig | None = None,
        pool_health: Mapping[str, PoolHealthConfig] | None = None,
        replacer: Replacer | None = None,
        notifiers: Sequence[Notifier] = (),
    ) -> None:
        health = health or HealthConfig()
        self.store = store
        self.server = server
        self.clock = clock or Clock()
        self.ids = ids or IdFactory()
        self.auth = Authenticator(admin_token, join_token, viewer_token)
        self.book = NodeBook(
            store,
            self.clock,
            self.ids,
            server.effective_heartbeat_timeout.total_seconds(),
            notifiers,
        )
        self.queue = CommandQueue(redeliver_after=server.heartbeat_interval.total_seconds())
        self.commands = Commands(self.book, self.queue, server.command_poll_wait)
        self.nodes = Nodes(self.book, self.commands, self.auth)
        self.remediation = Remediator(
            self.book, self.commands, self.nodes.mark_terminated, pool_health or {}, replacer
        )
        self.nodes.on_silent = self.remediation.silent
        self.nodes.silent_intents = self.remediation.silent_intents
        self.preemptions = Preemptions(self.book, self.commands, self.remediation)
        # A bad policy file stops the service here, with the ConfigError that lists its problems.
        self.verdicts = Verdicts(
            self.book,
            self.commands,
            self.remediation,
            HealthJudge(load_policy(health.policy), health.window),
        )
        self.remediation.recovery.judgments = self.verdicts
        # What `/metrics` shows of the health reports: their event types and XIDs.
        self.health_counts = HealthCounts()
        self.book.listeners.append(self.health_counts.observe)
        # The pool manager, when the configuration has pools.
        self.pools: PoolManager | None = None
        # The dashboard's reads: the node table's pages, and the fleet's and pools' recent past.
        self.node_pages = NodePages(self.book)
        self.history = History(self.clock, self.book, self.remediation)
        # Which series `/metrics` serves beyond the fleet's and the pools' (`[metrics]`).
        self.metrics_config = MetricsConfig()

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        store: Store,
        server: ServerConfig | None = None,
        *,
        admin_token: str = "",
        join_token: str = "",
        viewer_token: str = "",
        clock: Clock | None = None,
        ids: IdFactory | None = None,
        config: Config | None = None,
        replacer: Replacer | None = None,
        notifiers: Sequence[Notifier] | None = None,
        pool_health: Mapping[str, PoolHealthConfig] | None = None,
        providers: Mapping[str, Provider] | None = None,
        machines: Callable[[ControlPlane, trio.Nursery], MachineRunner] | None = None,
    ) -> AsyncIterator[ControlPlane]:
        """Loads the state from `store` and runs the service until the block ends.

        With a `config` that has pools, the pool manager runs too (one scaling loop per pool) and
        replaces the nodes that remediation hands it, unless `replacer` stands in for it. The
        health policy, the pools' health settings and the notifiers come from `config`;
        `pool_health` and `notifiers` replace the last two; `providers` replaces provider objects
        by name (the simulator's); `machines` builds what boots the simulated machines of
        providers that have them (the fake provider's). Open remediation episodes go on.
        """
        if notifiers is None:
            notifiers = build_notifiers(config) if config is not None else ()
        service = cls(
            store,
            server or ServerConfig(),
            admin_token=admin_token,
            join_token=join_token,
            viewer_token=viewer_token,
            clock=clock,
            ids=ids,
            health=config.health if config is not None else None,
            pool_health=pool_health
            if pool_health is not None or config is None
            else {name: pool.health for name, pool in config.pools.items()},
            replacer=replacer,
            notifiers=notifiers,
        )
        if config is not None:
            service.metrics_config = config.metrics
        await service._load()
        async with trio.open_nursery() as nursery:
            for notifier in service.book.notifiers:
                nursery.start_soon(notifier.run)
            nursery.start_soon(service.book.monitor.run, service.nodes.heartbeats_lost)
            nursery.start_soon(service.verdicts.recheck_forever)
            nursery.start_soon(service.prune_forever)
            if config is not None and config.pools:
                service.pools = PoolManager(
                    service,
                    config,
                    providers=providers,
                    machines=machines(service, nursery) if machines is not None else None,
                )
                service.auth.bootstrap_tokens = service.pools.bootstraps.holder
                service.nodes.hold = service.pools.preflights.hold
                await nursery.start(service.pools.run)
                if service.remediation.replacer is None:
                    service.remediation.replacer = service.pools
            await nursery.start(service.remediation.run)
            await nursery.start(service.history.run, service.pools)
            try:
                yield service
            finally:
                service.stop_long_polls()
                nursery.cancel_scope.cancel()

    @classmethod
    async def snapshot(
        cls,
        store: Store,
        server: ServerConfig,
        *,
        admin_token: str = "",
        join_token: str = "",
        viewer_token: str = "",
        config: Config | None = None,
    ) -> ControlPlane:
        """The state in `store` now, loaded but not run: what a follower answers reads from."""
        service = cls(
            store,
            server,
            admin_token=admin_token,
            join_token=join_token,
            viewer_token=viewer_token,
            health=config.health if config is not None else None,
        )
        # A follower writes nothing, so it leaves unreadable rows where they are, to the leader.
        await service._load(set_aside=False)
        return service

    async def _load(self, *, set_aside: bool = True) -> None:
        state = await self.store.load(set_aside=set_aside)
        book = self.book
        for node in state.nodes:
            book.put(node, stored=True)
            if node.status is lifecycle.TERMINATED or node.status is lifecycle.UNHEALTHY:
                if node.status_reason == HEARTBEAT_LOST:
                    book.silent.add(node.node_id)
            else:
                book.monitor.seen(node.node_id)
        for command in state.open_commands:
            self.queue.put(command)
        for node_id, hashed in state.node_tokens.items():
            self.auth.set_node_token(node_id, hashed)
        self.verdicts.load(state)
        self.remediation.load(state)

    def stop_long_polls(self) -> None:
        """Answers every command poll now, for a prompt shutdown."""
        self.queue.close()

    @property
    def stopping(self) -> bool:
        return self.queue.closing

    def now(self) -> datetime:
        """The service's wall clock: real time, or the simulator's virtual time."""
        return self.clock.now()

    def pool_manager(self) -> PoolManager:
        """The pool manager; NotFound when the configuration has no pools."""
        if self.pools is None:
            raise NotFound("no pools are configured")
        return self.pools

    async def list_events(
        self, *, node_id: str, kinds: Sequence[str], limit: int, before: str
    ) -> tuple[list[Event], str]:
        """Events newest first, and the cursor of the next page ("" after the last)."""
        events = await self.store.list_events(
            node_id=node_id, kinds=kinds, limit=limit, before=before
        )
        return events, events[-1].event_id if len(events) == limit else ""

    async def list_commands(
        self, *, node_id: str, limit: int, before: str
    ) -> tuple[list[Command], str]:
        """A node's commands newest first, and the cursor of the next page ("" after the last).
        An open command is as the queue has it: its delivery reaches the store a moment later."""
        self.book.require(node_id)
        stored = await self.store.list_commands(node_id=node_id, limit=limit, before=before)
        live = {c.command_id: c for c in self.queue.open_commands(node_id)}
        commands = [live.get(c.command_id, c) for c in stored]
        return commands, commands[-1].command_id if len(commands) == limit else ""

    async def node_page(
        self, which: NodeFilter, query: str, order: NodeOrder, size: int, token: str
    ) -> NodePage:
        """A page of the nodes `which` and `query` match, in `order` (see `node_pages`)."""
        await trio.lowlevel.checkpoint()
        return self.node_pages.page(which, query, order, size, token, self.readings()[0])

    async def fleet_summary(self, history_after: datetime | None) -> FleetSummary:
        """The fleet now, and its history after `history_after` (all of it for None)."""
        return await fleet_summary(self.store, self.history, self.remediation, history_after)

    async def list_remediations(self, *, pool: str, node_id: str, limit: int) -> list[Remediation]:
        """Remediation episodes newest first."""
        return await self.store.list_remediations(pool=pool, node_id=node_id, limit=limit)

    # What the pool manager sees of the control plane (`navarch.pools.fleet.FleetView`).

    def all_nodes(self) -> Iterable[Node]:
        return self.book.nodes()

    def node(self, node_id: str) -> Node | None:
        return self.book.get(node_id)

    def node_status(self, node_id: str) -> NodeStatus | None:
        return self.book.status(node_id)

    async def pool_nodes(self, pool: str) -> list[Node]:
        return await self.nodes.list(NodeFilter(pool=pool))

    def event(self, kind: str, node_id: str, actor: str, reason: str = "", **details: str) -> Event:
        return self.book.event(kind, node_id, actor, reason, details=details)

    async def record(self, change: Change) -> None:
        await self.book.commit(change)

    async def mark_terminated(self, node_id: str, reason: str, actor: str) -> None:
        await self.nodes.mark_terminated(node_id, reason, actor)

    async def drain(self, node_id: str, reason: str, actor: str) -> None:
        await self.commands.drain(node_id, reason, actor)

    async def run_diagnostic(self, node_id: str, level: int, reason: str, actor: str) -> str:
        kind = CommandType.RUN_DIAGNOSTIC
        command, _ = await self.commands.issue(node_id, kind, reason, {"level": str(level)}, actor)
        return command.command_id

    async def command_finished(self, command_id: str) -> Command:
        return await self.commands.finished(command_id)

    async def uncordon(self, node_id: str, reason: str, actor: str) -> None:
        await self.commands.issue(node_id, CommandType.UNCORDON, reason, {}, actor)

    def judged_for_replacement(self) -> set[str]:
        return self.verdicts.judged_for_replacement()

    def open_episodes(self) -> Iterable[Remediation]:
        return self.remediation.open_episodes()

    async def preempted(self, node_id: str, detail: str, actor: str) -> bool:
        return await self.preemptions.taken(node_id, detail, actor) is not Taken.UNHANDLED

    async def prune_forever(self) -> None:
        """Prunes terminated nodes past `server.terminated_retention`, at start and hourly."""
        retention = self.server.terminated_retention
        while True:
            try:
                await self.prune(self.clock.now() - retention)
            except StoreError as exc:  # a store that refuses now may not refuse in an hour
                log.warning("%s", exc)
            await trio.sleep(min(retention.total_seconds(), PRUNE_INTERVAL))

    async def prune(self, cutoff: datetime) -> list[str]:
        """Forgets the terminated nodes last heard from before `cutoff`, and the events older
        than it of nodes that are gone; returns the pruned node ids."""
        book = self.book
        gone = []
        for node in list(book.nodes()):
            if node.status is not lifecycle.TERMINATED:
                continue
            last = book.full(node).last_heartbeat_at or node.registered_at
            if last is None or last < cutoff:
                gone.append(node.node_id)
        await self.store.prune_nodes(gone, cutoff)
        for node_id in gone:
            book.drop(node_id)
            self.auth.forget_node(node_id)
        if gone:
            log.info("pruned %d terminated nodes last heard from before %s", len(gone), cutoff)
        return gone

    def heartbeat_ages(self) -> list[float]:
        """Seconds since each watched node was last heard from."""
        return self.book.monitor.ages()

    def readings(self) -> tuple[Mapping[str, datetime], Mapping[str, tuple[float, ...]]]:
        """Each node's last heartbeat time, and its latest metrics packed as the book keeps them:
        cpu, memory, then `GPU_FIELDS` numbers of each GPU, laid out as `navarch.controlplane.book`
        says.

        For `/metrics`, which reads 80,000 GPUs' readings a scrape: unpacking them into objects
        would take longer than the rest of the scrape.
        """
        return self.book.readings()
