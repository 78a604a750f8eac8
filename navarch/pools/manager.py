"""The pool manager: one scaling loop per pool, and the record of every instance the pools made.

Each round of a pool's loop, every `scale_interval` (or at once after ScalePool):

1. Reconcile the pool's instance records with what its providers list: an instance whose daemon
   registered becomes running; one that never registers within `registration_timeout` is
   terminated; one the provider no longer lists is marked failed and its node terminated; one the
   provider lists with the pool's name that navarch has no record of is adopted (it was made by a
   control plane that stopped before it could record it) and must register like any other.
2. Gather the pool's state: its nodes, instances in flight, mean GPU utilization, queue depth.
3. Ask the autoscaler, raise its answer to the ScalePool floor, and apply the scaling behavior.
4. Provision the difference through `provision_with_failover`, or choose victims, drain them and
   terminate them.

Every change of size, or of the reason for the size, is recorded as a `pool.scaled` or
`pool.decision` event. The manager's nursery holds the loops, the provisioning and draining tasks
and, for the fake provider, the simulated nodes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
import trio

from navarch.api import wire as m
from navarch.api.codec import ApiError
from navarch.clock import WallClock, utc_now
from navarch.config import Config, PoolConfig
from navarch.controlplane.auth import Caller
from navarch.controlplane.remediation import HEARTBEAT_LOST_RULE
from navarch.durations import format_duration
from navarch.plugins import (
    AttachableProvider,
    Candidate,
    InstanceNotFound,
    ProvisionRequest,
    Recommendation,
    ask,
)
from navarch.pools.behavior import Decision, ScalingBehavior
from navarch.pools.candidates import candidates_for, fetch_catalogs
from navarch.pools.context import MachineRunner, ProviderContextImpl
from navarch.pools.failover import BlockList, ProvisioningFailed, provision_with_failover
from navarch.pools.instances import IN_FLIGHT, LIVE, InstanceRecord, InstanceStatus
from navarch.pools.nodes import counts_toward_size, is_healthy, scaling_state
from navarch.pools.victims import choose_victims
from navarch.store import Change

log = logging.getLogger("navarch.pools")

# The label every instance a pool provisions carries, naming the pool.
POOL_LABEL = "navarch.io/pool"
ACTOR = "pool-manager"
# Utilization samples kept for autoscalers that look back (one per round).
_HISTORY = 120
# How often a draining victim is checked for DRAINED.
_DRAIN_POLL = 1.0
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")
# How long a metrics source may take to answer one round.
METRICS_TIMEOUT = 5.0

_TERMINATED = m.NodeStatus.NODE_STATUS_TERMINATED
_DRAINED = m.NodeStatus.NODE_STATUS_DRAINED
_UNHEALTHY = m.NodeStatus.NODE_STATUS_UNHEALTHY
_DRAINING = m.NodeStatus.NODE_STATUS_DRAINING
_ACTIVE = m.NodeStatus.NODE_STATUS_ACTIVE
_CORDONED = m.NodeStatus.NODE_STATUS_CORDONED
_HELD = m.RemediationStep.REMEDIATION_STEP_HELD


class _Pool:
    """One pool's memory between rounds; only the manager changes it."""

    def __init__(self, name: str, config: PoolConfig) -> None:
        self.name = name
        self.config = config
        self.autoscaler = config.autoscaler.create() if config.autoscaler is not None else None
        self.selector = config.selector.create()
        self.metrics = config.metrics.create() if config.metrics is not None else None
        # Why the last reading of the metrics source failed; empty once it answers again.
        self.metrics_error = ""
        self.behavior = ScalingBehavior(config.scaling)
        # Provision calls under way that have no instance id yet.
        self.pending = 0
        self.history: list[float] = []
        self.queue_depth: int | None = None
        self.queue_depth_at: datetime | None = None
        self.manual_target: int | None = None
        self.target = config.min_nodes
        self.decision: Decision | None = None
        self.decision_at: datetime | None = None
        self.last_reason = ""
        # (reason shape, previous, target) of the last pool.scaled event.
        self.last_scaled: tuple[str, int, int] | None = None
        self.last_failure = ""
        self.state: Any = None
        self.wake = trio.Event()


class _PreferProvider:
    """A selector that puts one provider's candidates first, or offers only those."""

    def __init__(self, inner: Any, provider: str, only: bool) -> None:
        self._inner = inner
        self._provider = provider
        self._only = only

    def order(self, candidates: Sequence[Candidate], request: Any = None) -> list[Candidate]:
        ordered = self._inner.order(candidates, request)
        same = [c for c in ordered if c.provider == self._provider]
        return same if self._only else same + [c for c in ordered if c.provider != self._provider]


class PoolManager:
    """Runs the pools of `config` against `service`; start it with `nursery.start(manager.run)`."""

    def __init__(
        self,
        service: Any,
        config: Config,
        *,
        wall_clock: WallClock = utc_now,
        providers: Mapping[str, Any] | None = None,
        machines: MachineRunner | None = None,
    ) -> None:
        self.service = service
        self._now = wall_clock
        self._machines = machines
        # `providers` stands in for the objects the configuration would create (the simulator's).
        made = providers or {}
        self.providers = {
            name: made[name] if name in made else table.create()
            for name, table in config.providers.items()
        }
        self.provider_types = {name: table.type for name, table in config.providers.items()}
        self.pools = {name: _Pool(name, pool) for name, pool in config.pools.items()}
        # Shared by every pool: an account's quota and credentials are shared too.
        self.blocks = BlockList()
        self.instances: dict[tuple[str, str], InstanceRecord] = {}
        # trio time each record entered its status, for the registration timeout.
        self._since: dict[tuple[str, str], float] = {}
        self._nursery: trio.Nursery | None = None
        # Nodes whose successor was asked for, so a repeated request asks once.
        self._replaced: set[str] = set()
        # Scale-down victims whose drain a task is watching.
        self._draining: set[str] = set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        state = await self.service.store.load()
        now = trio.current_time()
        for record in state.instances:
            self.instances[record.key] = record
            # A restart gives instances still registering a full timeout from now.
            self._since[record.key] = now
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for name, provider in self.providers.items():
                if isinstance(provider, AttachableProvider):
                    provider.attach(ProviderContextImpl(name, nursery, self._now, self._machines))
            for pool in self.pools.values():
                nursery.start_soon(self._loop, pool)
            task_status.started()

    # The scaling loop.

    async def _loop(self, pool: _Pool) -> None:
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
        await self._reconcile(pool)
        await self._read_metrics(pool)
        # A node judged for replacement is remediation's: the pool neither counts it nor picks it
        # for scale-down (a zone held by the circuit breaker would otherwise be terminated by the
        # next scale-down). Its episode will ask for a successor, which counts as in flight until
        # it does, or the pool would add one more for the same node.
        episodes = self._open_episodes()
        judged = self.service.judged_for_replacement()
        taken = episodes.keys() | judged
        members = await self._nodes(pool)
        nodes = [n for n in members if n.node_id not in taken]
        promised = sum(
            1
            for n in members
            if n.status is not _TERMINATED
            and n.node_id not in self._replaced
            and (
                (n.node_id in episodes and self._asks_for_successor(episodes[n.node_id]))
                or (n.node_id not in episodes and n.node_id in judged)
            )
        )
        state = scaling_state(
            pool.name,
            nodes,
            min_nodes=pool.config.min_nodes,
            max_nodes=pool.config.max_nodes,
            in_flight=self._in_flight(pool, nodes) + promised,
            queue_depth=pool.queue_depth,
            history=pool.history,
            now=self._now(),
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
        pool.decision, pool.decision_at, pool.target = decision, self._now(), decision.target
        await self._record_decision(pool, decision)
        if decision.change > 0:
            for _ in range(decision.change):
                self._start_provisioning(pool, "scale up", None)
        elif decision.change < 0:
            await self._scale_down(pool, nodes, -decision.change)
        return decision

    async def _read_metrics(self, pool: _Pool) -> None:
        """Reads the pool's queue depth from its metrics source, if it has one.

        A reading replaces the last known depth, so the newest of a reading and a
        ReportQueueDepth push wins. No data (None), a failure or a timeout keeps the last known
        depth; a failure is named in the round's decision reason.
        """
        if pool.metrics is None:
            return
        source = pool.config.metrics.type if pool.config.metrics is not None else "metrics"
        depth: Any = None
        error = f"metrics source {source} timed out after {METRICS_TIMEOUT:g}s"
        try:
            with trio.move_on_after(METRICS_TIMEOUT):
                depth = await pool.metrics.queue_depth(pool.name)
                error = ""
        except Exception as exc:
            error = f"metrics source {source} failed: {type(exc).__name__}: {exc}"
        if not error and depth is not None:
            if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
                error = f"metrics source {source} answered {depth!r}, not a depth of 0 or more"
            else:
                pool.queue_depth, pool.queue_depth_at = depth, self._now()
        if error:
            kept = "none" if pool.queue_depth is None else str(pool.queue_depth)
            error = f"{error}; keeping the last queue depth, {kept}"
            if error != pool.metrics_error:
                log.warning("pool %s: %s", pool.name, error)
        pool.metrics_error = error

    def _recommend(self, pool: _Pool, state: Any) -> Recommendation:
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

    async def _record_decision(self, pool: _Pool, decision: Decision) -> None:
        # Readings and countdowns change every round; only a new kind of reason is news.
        shape = _NUMBERS.sub("#", decision.reason)
        if decision.change == 0 and shape == pool.last_reason:
            return
        # A pool that cannot reach its target asks again every round; one event says so.
        repeat = (shape, decision.previous, decision.target)
        if decision.change and repeat == pool.last_scaled:
            return
        pool.last_reason = shape
        pool.last_scaled = repeat if decision.change else None
        kind = "pool.scaled" if decision.change else "pool.decision"
        event = self.service.event(
            kind,
            "",
            ACTOR,
            decision.reason,
            pool=pool.name,
            previous=str(decision.previous),
            target=str(decision.target),
        )
        await self.service.record(Change(events=(event,)))

    async def _nodes(self, pool: _Pool) -> list[m.Node]:
        response = await self.service.list_nodes(m.ListNodesRequest(pool=pool.name), Caller.admin())
        return list(response.nodes)

    def _in_flight(self, pool: _Pool, nodes: Iterable[m.Node]) -> int:
        # A record still registering whose node is among `nodes` has registered since the last
        # reconcile and is counted as a node already.
        registered = {n.node_id for n in nodes if n.pool == pool.name}
        return pool.pending + sum(
            1
            for r in self.instances.values()
            if r.pool == pool.name and r.status in IN_FLIGHT and r.node_id not in registered
        )

    # Instance records.

    async def _save(self, record: InstanceRecord, event: m.Event | None = None) -> None:
        self.instances[record.key] = record
        self._since[record.key] = trio.current_time()
        await self.service.record(
            Change(instances=(record,), events=(event,) if event is not None else ())
        )

    async def _move(self, record: InstanceRecord, status: InstanceStatus, reason: str) -> None:
        after = attrs.evolve(record, status=status, reason=reason, updated_at=self._now())
        event = self.service.event(
            f"instance.{status.value}",
            record.node_id,
            ACTOR,
            reason,
            pool=record.pool,
            provider=record.provider,
            instanceId=record.instance_id,
        )
        await self._save(after, event)

    def records(self, pool: str) -> list[InstanceRecord]:
        """The pool's instances that exist or may exist, oldest first."""
        found = [r for r in self.instances.values() if r.pool == pool and r.status in LIVE]
        return sorted(
            found, key=lambda r: (r.created_at.timestamp() if r.created_at else 0.0, r.instance_id)
        )

    async def _reconcile(self, pool: _Pool) -> None:
        nodes = {n.node_id: n for n in self.service.nodes() if n.pool == pool.name}
        timeout = pool.config.registration_timeout
        for provider_name in dict.fromkeys(e.provider for e in pool.config.providers):
            provider = self.providers.get(provider_name)
            if provider is None:
                continue
            try:
                listed = {i.instance_id: i for i in await provider.list()}
            except Exception as exc:
                log.warning("pool %s: cannot list %s: %s", pool.name, provider_name, exc)
                continue
            for record in [r for r in self.records(pool.name) if r.provider == provider_name]:
                node = nodes.get(record.node_id)
                status = node.status if node is not None else None
                if record.instance_id not in listed:
                    if record.status is InstanceStatus.TERMINATING:
                        await self._move(record, InstanceStatus.TERMINATED, record.reason)
                    else:
                        await self._lost(record)
                        self._start_provisioning(
                            pool, f"replacing lost instance {record.instance_id}", provider_name
                        )
                elif record.status is InstanceStatus.TERMINATING:
                    await self._terminate(record, record.reason)
                elif status is _TERMINATED:
                    # Terminated through the API (the daemon acknowledged it): end the machine.
                    await self._terminate(record, "its node was terminated")
                elif (
                    status in (_DRAINING, _DRAINED)
                    and node is not None
                    and node.status_reason == self._scale_down_reason(pool)
                    and record.node_id not in self._draining
                ):
                    # A scale-down that a restart interrupted: watch its drain again.
                    self._watch_drain(pool, record.node_id, node.status_reason)
                elif record.status is InstanceStatus.REGISTERING:
                    if status is not None:
                        await self._move(record, InstanceStatus.RUNNING, "registered")
                    elif trio.current_time() - self._since[record.key] >= timeout.total_seconds():
                        why = f"never registered within {format_duration(timeout)}"
                        await self._terminate(record, why, InstanceStatus.FAILED)
                        self._start_provisioning(
                            pool, f"replacing {record.instance_id}: {why}", provider_name
                        )
            if pool.pending:
                # An instance listed while a provision call is still under way may be the one
                # that call returns; adopting it too would count it twice.
                continue
            known = {r.instance_id for r in self.instances.values() if r.provider == provider_name}
            for instance in listed.values():
                if instance.instance_id in known or instance.pool != pool.name:
                    continue
                await self._save(
                    InstanceRecord(
                        instance_id=instance.instance_id,
                        provider=provider_name,
                        pool=pool.name,
                        status=InstanceStatus.REGISTERING,
                        region=instance.region,
                        zone=instance.zone,
                        instance_type=instance.instance_type,
                        reason="adopted: listed by the provider with no record",
                        node_id=instance.instance_id,
                        created_at=instance.created_at or self._now(),
                        updated_at=self._now(),
                    ),
                    self.service.event(
                        "instance.adopted",
                        instance.instance_id,
                        ACTOR,
                        "listed by the provider with no record",
                        pool=pool.name,
                        provider=provider_name,
                        instanceId=instance.instance_id,
                    ),
                )

    async def _lost(self, record: InstanceRecord) -> None:
        why = "lost: the provider no longer lists it"
        await self._move(record, InstanceStatus.FAILED, why)
        await self.service.mark_terminated(record.node_id, f"instance {why}", ACTOR)

    async def _terminate(
        self,
        record: InstanceRecord,
        reason: str,
        final: InstanceStatus = InstanceStatus.TERMINATED,
    ) -> None:
        """Ends the instance at its provider, then its record and its node."""
        if record.status is not InstanceStatus.TERMINATING:
            await self._move(record, InstanceStatus.TERMINATING, reason)
            record = self.instances[record.key]
        provider = self.providers.get(record.provider)
        if provider is None:
            log.warning(
                "instance %s: provider %s is not loaded", record.instance_id, record.provider
            )
            return
        try:
            await provider.terminate(record.instance_id)
        except InstanceNotFound:
            pass
        except Exception as exc:
            # The record stays TERMINATING; the next round tries again.
            log.warning("instance %s: terminate failed: %s", record.instance_id, exc)
            return
        await self._move(record, final, reason)
        await self.service.mark_terminated(record.node_id, reason, ACTOR)

    # Provisioning.

    def _start_provisioning(
        self, pool: _Pool, reason: str, prefer: str | None, strategy: str = "prefer_same"
    ) -> None:
        """Provisions one instance in the background; `prefer` names the provider to try first
        ("prefer_same") or only ("same")."""
        assert self._nursery is not None
        pool.pending += 1
        self._nursery.start_soon(self._provision, pool, reason, prefer, strategy)

    async def _provision(self, pool: _Pool, reason: str, prefer: str | None, strategy: str) -> None:
        try:
            entries = {e.provider for e in pool.config.providers}
            providers = {n: p for n, p in self.providers.items() if n in entries}
            catalogs = await fetch_catalogs(providers)
            candidates = candidates_for(pool.config, self.provider_types, catalogs)
            selector = pool.selector
            if prefer and strategy != "any":
                selector = _PreferProvider(selector, prefer, only=strategy == "same")
            request = ProvisionRequest(
                name=pool.name,
                instance_type=pool.config.instance_type,
                pool=pool.name,
                labels={**pool.config.labels, POOL_LABEL: pool.name},
            )
            result = await provision_with_failover(
                candidates, selector, providers, request, self.blocks
            )
        except ProvisioningFailed as exc:
            pool.pending -= 1
            await self._provisioning_failed(pool, str(exc))
            return
        except Exception as exc:
            pool.pending -= 1
            await self._provisioning_failed(pool, f"{type(exc).__name__}: {exc}")
            return
        pool.pending -= 1
        pool.last_failure = ""
        instance = result.instance
        now = self._now()
        record = InstanceRecord(
            instance_id=instance.instance_id,
            provider=result.candidate.provider,
            pool=pool.name,
            status=InstanceStatus.REGISTERING,
            region=instance.region,
            zone=instance.zone,
            instance_type=instance.instance_type,
            reason=reason,
            node_id=instance.instance_id,
            created_at=instance.created_at or now,
            updated_at=now,
        )
        event = self.service.event(
            "instance.provisioned",
            record.node_id,
            ACTOR,
            reason,
            pool=pool.name,
            provider=record.provider,
            instanceId=record.instance_id,
            attempts=str(len(result.attempts)),
        )
        await self._save(record, event)

    async def _provisioning_failed(self, pool: _Pool, why: str) -> None:
        log.warning("pool %s: provisioning failed: %s", pool.name, why)
        if why == pool.last_failure:
            return
        pool.last_failure = why
        event = self.service.event("pool.provision_failed", "", ACTOR, why, pool=pool.name)
        await self.service.record(Change(events=(event,)))

    # Scale-down.

    async def _scale_down(self, pool: _Pool, nodes: Sequence[m.Node], count: int) -> None:
        assert self._nursery is not None
        drain = pool.config.scaling.scale_down.drain
        plan = choose_victims(nodes, count, min_nodes=pool.config.min_nodes, drain=drain)
        if plan.shortfall:
            log.info("pool %s: %s", pool.name, plan.shortfall)
        reason = self._scale_down_reason(pool)
        for node in plan.victims:
            # A silent node cannot drain; waiting for it only delays its end.
            if plan.drain and node.status is not _UNHEALTHY:
                try:
                    await self.service.issue_command(
                        m.IssueCommandRequest(
                            node_id=node.node_id,
                            type=m.CommandType.COMMAND_TYPE_DRAIN,
                            reason=reason,
                        ),
                        Caller.admin(),
                    )
                except ApiError as exc:
                    log.warning("pool %s: cannot drain %s: %s", pool.name, node.node_id, exc)
                    continue
                self._watch_drain(pool, node.node_id, reason)
            else:
                await self._terminate_node(node.node_id, reason)

    @staticmethod
    def _scale_down_reason(pool: _Pool) -> str:
        return f"pool {pool.name} scale down"

    def _watch_drain(self, pool: _Pool, node_id: str, reason: str) -> None:
        assert self._nursery is not None
        self._draining.add(node_id)
        self._nursery.start_soon(self._drain_then_terminate, pool, node_id, reason)

    async def _drain_then_terminate(self, pool: _Pool, node_id: str, reason: str) -> None:
        """Terminates the node once it is drained, or when the pool's drain timeout ends."""
        try:
            with trio.move_on_after(pool.config.health.drain_timeout.total_seconds()):
                while self._node_status(node_id) is _DRAINING:
                    await trio.sleep(_DRAIN_POLL)
            if self._node_status(node_id) in (_ACTIVE, _CORDONED):
                # An operator uncordoned it during the drain: it stays, and the pool's next
                # round counts it again.
                log.info("pool %s: %s returned to service during its drain", pool.name, node_id)
                return
            await self._terminate_node(node_id, reason)
        finally:
            self._draining.discard(node_id)

    @staticmethod
    def _asks_for_successor(episode: m.Remediation) -> bool:
        # An episode for a silent node asks for none: the pool provisions past the node.
        return episode.step is not _HELD and episode.rule != HEARTBEAT_LOST_RULE

    def members(self, name: str) -> list[m.Node]:
        """The nodes that make up the pool's size: not leaving, and not remediation's."""
        taken = self._open_episodes().keys() | self.service.judged_for_replacement()
        return [
            n
            for n in self.service.nodes()
            if n.pool == name and counts_toward_size(n) and n.node_id not in taken
        ]

    def _open_episodes(self) -> dict[str, m.Remediation]:
        remediation = getattr(self.service, "remediation", None)
        if remediation is None:
            return {}
        return {e.node_id: e for e in remediation.open_episodes()}

    def _node_status(self, node_id: str) -> m.NodeStatus | None:
        for node in self.service.nodes():
            if node.node_id == node_id:
                return node.status
        return None

    def _record_of(self, node_id: str) -> InstanceRecord | None:
        for record in self.instances.values():
            if record.node_id == node_id and record.status in LIVE:
                return record
        return None

    async def _terminate_node(self, node_id: str, reason: str) -> None:
        record = self._record_of(node_id)
        if record is None:
            # Not an instance navarch made: only the node's record can end.
            await self.service.mark_terminated(node_id, reason, ACTOR)
            return
        await self._terminate(record, reason)

    # What remediation and the API call.

    async def replace(self, node_id: str, reason: str, strategy: str = "prefer_same") -> None:
        """Asks the node's pool for a successor, then terminates the node's instance.

        `strategy` says where the successor comes from: "same" (the node's provider only),
        "prefer_same" (that provider first, then the selector's order) or "any" (the selector's
        order). Asking first keeps the successor in flight while the node leaves, so the pool's
        next round does not add another. Raises ApiError `not_found` for a node of no pool.
        """
        await self.request_replacement(node_id, strategy, reason)
        await self.terminate(node_id, reason)

    async def terminate(self, node_id: str, reason: str = "remediation") -> None:
        """Terminates the node's instance through its provider; again for the same node is a
        no-op."""
        self._pool_of(node_id)
        if self._node_status(node_id) is _TERMINATED and self._record_of(node_id) is None:
            return
        await self._terminate_node(node_id, f"replaced: {reason}")

    async def request_replacement(
        self, node_id: str, strategy: str, reason: str = "remediation"
    ) -> None:
        """Provisions one successor for the node in its pool, once per node."""
        pool = self._pool_of(node_id)
        marker = f"replacing {node_id}:"
        if node_id in self._replaced or any(
            r.reason.startswith(marker) for r in self.instances.values()
        ):
            return
        self._replaced.add(node_id)
        record = self._record_of(node_id) or next(
            (r for r in self.instances.values() if r.node_id == node_id), None
        )
        node = next(n for n in self.service.nodes() if n.node_id == node_id)
        provider = record.provider if record is not None else node.provider
        self._start_provisioning(pool, f"{marker} {reason}", provider, strategy)

    def _pool_of(self, node_id: str) -> _Pool:
        node = next((n for n in self.service.nodes() if n.node_id == node_id), None)
        if node is None or node.pool not in self.pools:
            raise ApiError("not_found", f"node {node_id} belongs to no configured pool")
        return self.pools[node.pool]

    def _pool(self, name: str) -> _Pool:
        pool = self.pools.get(name)
        if pool is None:
            listed = ", ".join(sorted(self.pools)) or "none"
            raise ApiError("not_found", f"pool {name!r} is not configured (configured: {listed})")
        return pool

    async def scale(self, name: str, target: int, reason: str, actor: str) -> m.Pool:
        """Sets the pool's floor: it holds at least `target` nodes whatever its autoscaler says."""
        pool = self._pool(name)
        low, high = pool.config.min_nodes, pool.config.max_nodes
        if not low <= target <= high:
            raise ApiError(
                "invalid_argument",
                f"target: expected {low} to {high} (the pool's min_nodes and max_nodes), "
                f"got {target}",
            )
        pool.manual_target = target
        event = self.service.event(
            "pool.manual_target", "", actor, reason, pool=name, target=str(target)
        )
        await self.service.record(Change(events=(event,)))
        pool.wake.set()
        return self.describe(name)

    def report_queue_depth(self, name: str, depth: int) -> m.Pool:
        pool = self._pool(name)
        if depth < 0:
            raise ApiError("invalid_argument", f"depth: expected 0 or more, got {depth}")
        pool.queue_depth, pool.queue_depth_at = depth, self._now()
        return self.describe(name)

    def describe_all(self) -> Iterable[m.Pool]:
        return [self.describe(name) for name in sorted(self.pools)]

    def describe(self, name: str, *, detail: bool = False) -> m.Pool:
        pool = self._pool(name)
        members = self.members(name)
        now, wall = trio.current_time(), self._now()
        entries = {e.provider for e in pool.config.providers}
        blocked = tuple(
            m.ProviderBlock(
                provider=b.provider,
                kind=b.kind.value,
                reason=b.reason,
                region=b.region or "",
                zone=b.zone or "",
                instance_type=b.instance_type or "",
                until=b.until_wall(now, wall),
            )
            for b in self.blocks.active(now)
            if b.provider in entries
        )
        instances = ()
        if detail:
            instances = tuple(
                m.PoolInstance(
                    instance_id=r.instance_id,
                    provider=r.provider,
                    status=r.status.value,
                    region=r.region,
                    zone=r.zone,
                    instance_type=r.instance_type,
                    reason=r.reason,
                    created_at=r.created_at,
                )
                for r in self.records(name)
            )
        return m.Pool(
            name=name,
            instance_type=pool.config.instance_type,
            min_nodes=pool.config.min_nodes,
            max_nodes=pool.config.max_nodes,
            size=len(members),
            target=pool.target,
            in_flight=self._in_flight(pool, self.service.nodes()),
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
