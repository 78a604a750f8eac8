"""The pool manager: one scaling loop per pool, and what remediation and the API ask of pools.

Each round of a pool's loop, every `scale_interval` (or at once after ScalePool):

1. Reconcile the pool's instance records with what its providers list (`reconcile`).
2. Gather the pool's state: its nodes, instances in flight, mean GPU utilization, queue depth.
3. Ask the autoscaler, raise its answer to the ScalePool floor, and apply the scaling behavior;
   the pool's last node waits for the idle timeout (`scale_to_zero`).
4. Provision the difference (`provisioning`), or choose victims, drain them and terminate them
   (`scale_down`).

Every change of size, or of the reason for the size, is recorded as a `pool.scaled` or
`pool.decision` event. What the next rounds decide by (the ScalePool floor, the scaling windows,
the idle time) is stored each round, with that event when there is one (`memory`), and taken back
at start. The manager's nursery holds the loops, the provisioning and draining tasks
and the tasks the providers start through their context.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Mapping
from datetime import datetime

import trio
from attrs import frozen

from navarch.config import Config
from navarch.durations import format_duration
from navarch.errors import InvalidArgument, NavarchError, NotFound
from navarch.model import HEARTBEAT_LOST_RULE, Node, NodeStatus, Remediation, RemediationStep
from navarch.plugins import (
    AttachableProvider,
    Provider,
    RebootingProvider,
    Recommendation,
    ScalingState,
    ask,
)
from navarch.pools import memory
from navarch.pools.behavior import Decision
from navarch.pools.bootstrap import Bootstraps
from navarch.pools.context import MachineRunner, ProviderContextImpl
from navarch.pools.counters import PoolCounters
from navarch.pools.failover import BlockList
from navarch.pools.fleet import FleetView
from navarch.pools.instances import ACTOR, Instances
from navarch.pools.nodes import counts_toward_size, is_healthy, scaling_state
from navarch.pools.pool import PoolState
from navarch.pools.preflight import Preflights, in_preflight
from navarch.pools.providers import build_providers, provider_problems
from navarch.pools.provisioning import Provisioner
from navarch.pools.reconcile import reconcile
from navarch.pools.scale_down import ScaleDown
from navarch.pools.scale_to_zero import hold_last_node
from navarch.pools.view import InstanceView, PoolView, ProviderBlockView
from navarch.store import Change, DecisionState, decisions

log = logging.getLogger("navarch.pools")

# Utilization samples kept for autoscalers that look back (one per round).
_HISTORY = 120
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")
# How long a metrics source may take to answer one round.
METRICS_TIMEOUT = 5.0
# Scaling decisions each pool keeps for the dashboard.
DECISIONS_KEPT = 50


@frozen(kw_only=True)
class DecisionRecord:
    """A round that changed the pool's target, or the kind of reason for it (the rounds that
    record a `pool.scaled` or `pool.decision` event)."""

    time: datetime
    previous: int
    target: int
    # What the autoscaler asked for before the core's rules; None for a pool without one.
    recommended: int | None
    reason: str
    # The autoscaler's type; empty for a pool without one.
    autoscaler: str


class PoolManager:
    """Runs the pools of `config`; start it with `nursery.start(manager.run)`."""

    def __init__(
        self,
        fleet: FleetView,
        config: Config,
        *,
        providers: Mapping[str, Provider] | None = None,
        machines: MachineRunner | None = None,
    ) -> None:
        self.fleet = fleet
        self._machines = machines
        # `providers` stands in for the objects the configuration would create (the simulator's).
        self.providers: dict[str, Provider] = build_providers(config, providers)
        for problem in provider_problems(self.providers):
            log.warning("%s", problem)
        provider_types = {name: table.type for name, table in config.providers.items()}
        self.pools = {name: PoolState(name, pool) for name, pool in config.pools.items()}
        # Shared by every pool: an account's quota and credentials are shared too.
        self.blocks = BlockList()
        self.instances = Instances(fleet, self.providers)
        self.bootstraps = Bootstraps(fleet, config, self.instances, self.providers, self.pools)
        # What `/metrics` shows of the pools' decisions and provider calls.
        self.counters = PoolCounters()
        self._provisioner = Provisioner(
            fleet,
            self.providers,
            provider_types,
            self.instances,
            self.blocks,
            self.bootstraps,
            self.counters,
        )
        self.bootstraps.provision = self._provisioner.start
        self._scale_down = ScaleDown(fleet, self.instances)
        self.preflights = Preflights(fleet, self.instances, self.pools)
        self.preflights.replace = self.replace
        # Nodes whose successor was asked for, so a repeated request asks once.
        self._replaced: set[str] = set()
        self._decisions = {
            name: deque[DecisionRecord](maxlen=DECISIONS_KEPT) for name in self.pools
        }

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        state = await self.fleet.store.load()
        self.instances.load(state.instances)
        store = self.fleet.store
        for name, kept in decisions.decode(
            state.decisions, memory.SCALING, memory.ScalingMemory, store.location
        ):
            if name in self.pools:
                memory.restore(self.pools[name], kept, self.fleet.clock)
        async with trio.open_nursery() as nursery:
            self._provisioner.nursery = self._scale_down.nursery = nursery
            self.bootstraps.nursery = nursery
            self.preflights.nursery = nursery
            now = self.fleet.clock.now
            for name, provider in self.providers.items():
                if isinstance(provider, AttachableProvider):
                    provider.attach(ProviderContextImpl(name, nursery, now, self._machines))
            for pool in self.pools.values():
                nursery.start_soon(self._loop, pool)
            task_status.started()

    async def _loop(self, pool: PoolState) -> None:
        interval = pool.config.scale_interval.total_seconds()
        while True:
            try:
                await self.run_round(pool.name)
            except Exception:
                # A failing round must not stop the pool, nor the control plane.
                log.exception("pool %s: scaling round failed", pool.name)
            with trio.move_on_after(interval):
                await pool.wake.wait()
            pool.wake = trio.Event()

    async def run_round(self, name: str) -> Decision:
        """One scaling round of the pool `name`: reconcile, decide, act."""
        pool = self.pools[name]
        await reconcile(
            pool,
            fleet=self.fleet,
            providers=self.providers,
            instances=self.instances,
            provisioner=self._provisioner,
            scale_down=self._scale_down,
        )
        await self._read_metrics(pool)
        # A node judged for replacement is remediation's: the pool neither counts it nor picks it
        # for scale-down (a zone held by the circuit breaker would otherwise be terminated by the
        # next scale-down). Its episode will ask for a successor, which counts as in flight until
        # it does, or the pool would add one more for the same node. A node whose episode resets
        # a GPU or reboots it counts as in flight too: it is coming back, and only an episode that
        # escalates to replacement asks for a successor.
        episodes = self._open_episodes()
        judged = self.fleet.judged_for_replacement()
        taken = episodes.keys() | judged
        members = await self.fleet.pool_nodes(pool.name)
        # A node running its preflight diagnostics counts as in flight, like an instance still
        # registering: the pool provisions nothing for it and never chooses it for scale-down.
        preflight = self.preflights.start(pool, members)
        nodes = [n for n in members if n.node_id not in taken and n.node_id not in preflight]
        promised = sum(
            1
            for n in members
            if n.status is not NodeStatus.TERMINATED
            and n.node_id not in self._replaced
            and (
                (n.node_id in episodes and _comes_back(episodes[n.node_id]))
                or (n.node_id not in episodes and n.node_id in judged)
            )
        )
        now = self.fleet.clock.now()
        state = scaling_state(
            pool.name,
            nodes,
            min_nodes=pool.config.min_nodes,
            max_nodes=pool.config.max_nodes,
            in_flight=self.instances.in_flight(pool, nodes) + promised + len(preflight),
            queue_depth=pool.queue_depth,
            history=pool.history,
            now=now,
        )
        pool.state = state
        pool.history = list(state.history[-_HISTORY:])
        recommendation = self._recommend(pool, state)
        if pool.metrics_error:
            recommendation = Recommendation(
                target=recommendation.target,
                reason=f"{recommendation.reason} ({pool.metrics_error})",
            )
        decision = pool.behavior.decide(state, recommendation, trio.current_time())
        decision = hold_last_node(pool, decision, nodes, trio.current_time())
        pool.decision, pool.decision_at, pool.target = decision, now, decision.target
        self.counters.decided(decision)
        await self._record_decision(pool, decision, memory.remember(pool, self.fleet.clock))
        if decision.change > 0:
            for _ in range(decision.change):
                self._provisioner.start(pool, "scale up", None)
        elif decision.change < 0:
            await self._scale_down.remove(pool, nodes, -decision.change)
        return decision

    async def _read_metrics(self, pool: PoolState) -> None:
        """Reads the pool's queue depth from its metrics source, if it has one.

        A reading replaces the last known depth, so the newest of a reading and a
        ReportQueueDepth push wins. No data (None), a failure or a timeout keeps the last known
        depth until it is older than the pool's metrics_max_age; then it is dropped, and an
        autoscaler that scales on the queue holds the pool instead of scaling on stale data. A
        failure or a dropped depth is named in the round's decision reason.
        """
        if pool.metrics is None or pool.config.metrics is None:
            return
        source = pool.config.metrics.type
        depth: object = None
        error = f"metrics source {source} timed out after {METRICS_TIMEOUT:g}s"
        try:
            with trio.move_on_after(METRICS_TIMEOUT):
                depth = await pool.metrics.queue_depth(pool.name)
                error = ""
        except Exception as exc:
            # A NavarchError's message is written for people; any other needs its type.
            detail = str(exc) if isinstance(exc, NavarchError) else f"{type(exc).__name__}: {exc}"
            error = f"metrics source {source} failed: {detail}"
        now = trio.current_time()
        if not error and depth is not None:
            if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
                error = f"metrics source {source} answered {depth!r}, not a depth of 0 or more"
            else:
                pool.queue_depth, pool.queue_depth_at = depth, self.fleet.clock.now()
                pool.queue_depth_time = now
        max_age = pool.config.metrics_max_age
        # The depth's time stays after it is dropped, so that later rounds still say why.
        stale = (
            pool.queue_depth_time is not None
            and now - pool.queue_depth_time > max_age.total_seconds()
        )
        if stale:
            pool.queue_depth = None
            error = error or f"metrics source {source} has no data"
            error = (
                f"{error}; the last queue depth is older than metrics_max_age "
                f"{format_duration(max_age)}, dropped"
            )
        elif error:
            kept = "none" if pool.queue_depth is None else str(pool.queue_depth)
            error = f"{error}; keeping the last queue depth, {kept}"
        if error and error != pool.metrics_error:
            log.warning("pool %s: %s", pool.name, error)
        pool.metrics_error = error

    def _recommend(self, pool: PoolState, state: ScalingState) -> Recommendation:
        floor = pool.manual_target
        if pool.autoscaler is None:
            target = max(pool.config.min_nodes, floor or 0)
            why = f"manual target {floor}" if floor else f"no autoscaler; min_nodes {target}"
            return Recommendation(target=target, reason=why)
        recommendation = ask(pool.autoscaler, state)
        if floor is not None and recommendation.target < floor:
            return Recommendation(
                target=floor, reason=f"{recommendation.reason}; raised to manual target {floor}"
            )
        return recommendation

    async def _record_decision(
        self, pool: PoolState, decision: Decision, kept: DecisionState
    ) -> None:
        """Records the round's event when it is news, with the pool's memory; the memory alone
        otherwise, without waiting for it."""
        # Readings and countdowns change every round; only a new kind of reason is news.
        shape = _NUMBERS.sub("#", decision.reason)
        # A pool that cannot reach its target asks again every round; one event says so.
        repeat = (shape, decision.previous, decision.target)
        if (decision.change == 0 and shape == pool.last_reason) or (
            decision.change and repeat == pool.last_scaled
        ):
            self.fleet.store.commit_soon(Change(decisions=(kept,)))
            return
        pool.last_reason = shape
        pool.last_scaled = repeat if decision.change else None
        autoscaler = pool.config.autoscaler
        self._decisions[pool.name].append(
            DecisionRecord(
                time=pool.decision_at or self.fleet.clock.now(),
                previous=decision.previous,
                target=decision.target,
                recommended=decision.recommended,
                reason=decision.reason,
                autoscaler=autoscaler.type if autoscaler else "",
            )
        )
        kind = "pool.scaled" if decision.change else "pool.decision"
        event = self.fleet.event(
            kind,
            "",
            ACTOR,
            decision.reason,
            pool=pool.name,
            previous=str(decision.previous),
            target=str(decision.target),
        )
        await self.fleet.record(Change(events=(event,), decisions=(kept,)))

    def members(self, name: str) -> list[Node]:
        """The nodes that make up the pool's size: not leaving, and not remediation's."""
        taken = self._open_episodes().keys() | self.fleet.judged_for_replacement()
        return [
            n
            for n in self.fleet.all_nodes()
            if n.pool == name
            and counts_toward_size(n)
            and n.node_id not in taken
            and not in_preflight(n)
        ]

    def _open_episodes(self) -> dict[str, Remediation]:
        return {e.node_id: e for e in self.fleet.open_episodes()}

    # What remediation asks of the pools (`navarch.controlplane.remediation.Replacer`).

    async def replace(self, node_id: str, reason: str, strategy: str = "prefer_same") -> None:
        """Asks the node's pool for a successor, then terminates the node's instance.

        `strategy` says where the successor comes from: "same" (the node's provider only),
        "prefer_same" (that provider first, then the selector's order) or "any" (the selector's
        order). Asking first keeps the successor in flight while the node leaves, so the pool's
        next round does not add another. Raises NotFound for a node of no pool.
        """
        await self.request_replacement(node_id, strategy, reason)
        await self.terminate(node_id, reason)

    async def terminate(self, node_id: str, reason: str = "remediation") -> None:
        """Terminates the node's instance through its provider; again for the same node is a
        no-op."""
        self._pool_of(node_id)
        if (
            self.fleet.node_status(node_id) is NodeStatus.TERMINATED
            and self.instances.of_node(node_id) is None
        ):
            return
        await self.instances.terminate_node(node_id, f"replaced: {reason}")

    async def reboot(self, node_id: str, reason: str) -> bool:
        """Asks the provider of the node's instance to reboot the machine; False when the
        provider cannot (it implements no `RebootingProvider`) or navarch did not make the
        instance."""
        record = self.instances.of_node(node_id)
        provider = self.providers.get(record.provider) if record is not None else None
        if record is None or provider is None or not isinstance(provider, RebootingProvider):
            return False
        await provider.reboot(record.instance_id)
        log.info("instance %s: reboot requested: %s", record.instance_id, reason)
        return True

    async def provision_successor(self, node_id: str, reason: str) -> None:
        """Asks the node's pool for a successor before the node leaves (a preemption notice)."""
        await self.request_replacement(node_id, "prefer_same", reason)

    async def request_replacement(
        self, node_id: str, strategy: str, reason: str = "remediation"
    ) -> None:
        """Provisions one successor for the node in its pool, once per node."""
        pool = self._pool_of(node_id)
        marker = f"replacing {node_id}:"
        if node_id in self._replaced or any(
            r.reason.startswith(marker) for r in self.instances.records.values()
        ):
            return
        self._replaced.add(node_id)
        record = self.instances.of_node(node_id) or next(
            (r for r in self.instances.records.values() if r.node_id == node_id), None
        )
        node = self.fleet.node(node_id)
        assert node is not None  # _pool_of found it
        provider = record.provider if record is not None else node.provider
        self._provisioner.start(pool, f"{marker} {reason}", provider, strategy)

    def _pool_of(self, node_id: str) -> PoolState:
        node = self.fleet.node(node_id)
        if node is None or node.pool not in self.pools:
            raise NotFound(f"node {node_id} belongs to no configured pool")
        return self.pools[node.pool]

    # What the API asks of the pools.

    def _pool(self, name: str) -> PoolState:
        pool = self.pools.get(name)
        if pool is None:
            listed = ", ".join(sorted(self.pools)) or "none"
            raise NotFound(f"pool {name!r} is not configured (configured: {listed})")
        return pool

    async def scale(self, name: str, target: int, reason: str, actor: str) -> PoolView:
        """Sets the pool's floor: it holds at least `target` nodes whatever its autoscaler says."""
        pool = self._pool(name)
        low, high = pool.config.min_nodes, pool.config.max_nodes
        if not low <= target <= high:
            raise InvalidArgument(
                f"target: expected {low} to {high} (the pool's min_nodes and max_nodes), "
                f"got {target}"
            )
        event = self.fleet.event(
            "pool.manual_target", "", actor, reason, pool=name, target=str(target)
        )
        before, pool.manual_target = pool.manual_target, target
        try:
            kept = memory.remember(pool, self.fleet.clock)
            await self.fleet.record(Change(events=(event,), decisions=(kept,)))
        except BaseException:
            pool.manual_target = before
            raise
        pool.wake.set()
        return self.describe(name)

    def report_queue_depth(self, name: str, depth: int) -> PoolView:
        pool = self._pool(name)
        if depth < 0:
            raise InvalidArgument(f"depth: expected 0 or more, got {depth}")
        pool.queue_depth, pool.queue_depth_at = depth, self.fleet.clock.now()
        pool.queue_depth_time = trio.current_time()
        return self.describe(name)

    def decisions(self, name: str) -> list[DecisionRecord]:
        """The pool's last scaling decisions, newest first."""
        return list(reversed(self._decisions[self._pool(name).name]))

    def describe_all(self) -> list[PoolView]:
        return [self.describe(name) for name in sorted(self.pools)]

    def describe(self, name: str, *, detail: bool = False) -> PoolView:
        pool = self._pool(name)
        members = self.members(name)
        now, wall = trio.current_time(), self.fleet.clock.now()
        entries = {e.provider for e in pool.config.providers}
        blocked = tuple(
            ProviderBlockView(
                provider=b.provider,
                kind=b.kind.value,
                reason=b.reason,
                region=b.region or "",
                zone=b.zone or "",
                instance_type=b.instance_type or "",
                until=b.until_wall(now, wall),
                spot=bool(b.spot),
            )
            for b in self.blocks.active(now)
            if b.provider in entries
        )
        instances: tuple[InstanceView, ...] = ()
        if detail:
            instances = tuple(
                InstanceView(
                    instance_id=r.instance_id,
                    provider=r.provider,
                    status=r.status.value,
                    region=r.region,
                    zone=r.zone,
                    instance_type=r.instance_type,
                    reason=r.reason,
                    created_at=r.created_at,
                    address=r.address,
                    bootstrap=r.bootstrap,
                    preflight=r.preflight,
                )
                for r in [
                    *self.instances.failed_bootstraps(name),
                    *self.instances.of_pool(name),
                ]
            )
        return PoolView(
            name=name,
            instance_type=pool.config.instance_type,
            min_nodes=pool.config.min_nodes,
            max_nodes=pool.config.max_nodes,
            size=len(members),
            target=pool.target,
            in_flight=self.instances.in_flight(pool, self.fleet.all_nodes())
            + sum(1 for n in self.fleet.all_nodes() if n.pool == name and in_preflight(n)),
            healthy=sum(1 for n in members if is_healthy(n)),
            utilization=pool.state.utilization if pool.state is not None else None,
            queue_depth=pool.queue_depth,
            queue_depth_at=pool.queue_depth_at,
            manual_target=pool.manual_target,
            autoscaler=pool.config.autoscaler.type if pool.config.autoscaler else "",
            last_decision_at=pool.decision_at,
            last_decision=pool.decision.reason if pool.decision is not None else "",
            blocked=blocked,
            instances=instances,
        )


def _comes_back(episode: Remediation) -> bool:
    """Whether the episode's node comes back, or a successor for it: it resets a GPU, reboots
    or replaces the node. An episode for a silent node asks for none (the pool provisions past
    the node), and a held one brings back nothing."""
    return episode.step is not RemediationStep.HELD and episode.rule != HEARTBEAT_LOST_RULE
