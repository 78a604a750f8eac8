"""The control-plane service: nodes, their lifecycle, their commands and their health reports.

`ControlPlane` has one async method per API method; each takes the request model and the `Caller`
and returns the response model, so the HTTP app, the fake provider and the simulator all call the
same code. Failures are `ApiError`s with Connect codes, raised before anything changes.

The service keeps every node and every open command in memory, loaded from the store at start; a
heartbeat therefore touches no database. A call that changes durable state updates memory first
(trio runs one task at a time, so no other call sees a half-made change) and then waits until the
store has committed the change, so an answer never reports a change that a crash could undo.
Heartbeat times are soft state: they reach the store in batches about once a second.
"""

from __future__ import annotations

import collections
import functools
import logging
import string
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import attrs
import trio

from navarch.api import wire as m
from navarch.api.codec import ApiError, decode, encode
from navarch.api.mapping import HEALTH_STATUS, health_events_from_wire
from navarch.clock import WallClock, utc_now
from navarch.config import Config, HealthConfig, PoolHealthConfig, ServerConfig
from navarch.controlplane import lifecycle
from navarch.controlplane.auth import Authenticator, Caller, new_node_token, token_hash
from navarch.controlplane.commands import CommandQueue
from navarch.controlplane.heartbeat import HeartbeatMonitor
from navarch.controlplane.ids import new_id
from navarch.controlplane.notifiers import Notifier, build_notifiers
from navarch.controlplane.remediation import HEARTBEAT_LOST_RULE, Remediator, Replacer
from navarch.durations import format_duration, parse_duration
from navarch.health import Action, HealthJudge, Result, Verdict, load_policy
from navarch.pools.context import MachineRunner
from navarch.store import Change, HealthReport, NodeToken, Store

log = logging.getLogger("navarch.controlplane")

HEARTBEAT_LOST = "heartbeat lost"
MAX_EVENTS_PAGE = 1000
_MAX_ID_LENGTH = 253
_ID_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.:")

_FINISHED = (
    m.CommandStatus.COMMAND_STATUS_SUCCEEDED,
    m.CommandStatus.COMMAND_STATUS_FAILED,
    m.CommandStatus.COMMAND_STATUS_CANCELLED,
)
_HEALTH_RANK = {
    m.HealthStatus.HEALTH_STATUS_UNKNOWN: 0,
    m.HealthStatus.HEALTH_STATUS_HEALTHY: 1,
    m.HealthStatus.HEALTH_STATUS_DEGRADED: 2,
    m.HealthStatus.HEALTH_STATUS_UNHEALTHY: 3,
}
_BAD_HEALTH = (m.HealthStatus.HEALTH_STATUS_DEGRADED, m.HealthStatus.HEALTH_STATUS_UNHEALTHY)
_QUEUED_ACTION = {
    m.CommandType.COMMAND_TYPE_DRAIN: "drain",
    m.CommandType.COMMAND_TYPE_TERMINATE: "terminate",
    m.CommandType.COMMAND_TYPE_RUN_DIAGNOSTIC: "run_diagnostic",
}


def _check_id(field: str, value: str) -> None:
    if not value:
        raise ApiError("invalid_argument", f"{field}: must not be empty")
    if len(value) > _MAX_ID_LENGTH or not _ID_CHARACTERS.issuperset(value):
        raise ApiError(
            "invalid_argument",
            f"{field}: expected at most {_MAX_ID_LENGTH} letters, digits and '-_.:', "
            f"got {value[:40]!r}",
        )


def _node_actor(caller: Caller, node_id: str) -> str:
    """How events name the caller of a node method: the node itself, unless an admin acts."""
    return caller.actor if caller.role == "admin" else f"node:{node_id}"


def _flag(request: m.IssueCommandRequest, name: str) -> bool:
    value = request.parameters.get(name, "false")
    if value not in ("true", "false"):
        raise ApiError(
            "invalid_argument", f'parameters.{name}: expected "true" or "false", got {value!r}'
        )
    return value == "true"


class ControlPlane:
    """The service. Use `async with ControlPlane.open(store, server) as control_plane:`."""

    def __init__(
        self,
        store: Store,
        server: ServerConfig,
        *,
        admin_token: str = "",
        join_token: str = "",
        wall_clock: WallClock = utc_now,
        health: HealthConfig | None = None,
        pool_health: Mapping[str, PoolHealthConfig] | None = None,
        replacer: Replacer | None = None,
        notifiers: Sequence[Notifier] = (),
    ) -> None:
        health = health or HealthConfig()
        self.store = store
        self.server = server
        self.auth = Authenticator(admin_token, join_token)
        self._now = wall_clock
        # Nodes as of their last change; heartbeat times and metrics are kept apart, in `_beats`.
        self._nodes: dict[str, m.Node] = {}
        # node id -> (time of the last heartbeat, its metrics as JSON). Heartbeats replace these
        # often, and neither datetimes nor bytes are tracked by the garbage collector, so a
        # heartbeat leaves no long-lived objects that would make full collections come sooner.
        self._beats: dict[str, tuple[datetime, bytes | None]] = {}
        interval = server.heartbeat_interval.total_seconds()
        self._commands = CommandQueue(redeliver_after=interval)
        self._monitor = HeartbeatMonitor(server.effective_heartbeat_timeout.total_seconds())
        # Nodes marked unhealthy for silence that have not been heard from since.
        self._silent: set[str] = set()
        self.event_counts: collections.Counter[str] = collections.Counter()
        # The pool manager, when the configuration has pools (navarch.pools.manager).
        self.pools: Any = None
        # A bad policy file stops the service here, with the ConfigError that lists its problems.
        self.judge = HealthJudge(load_policy(health.policy), health.window)
        # node id -> the most disruptive action taken for its current verdict, so a repeated
        # report does not act again; forgotten when the verdict asks for nothing.
        self._acted: dict[str, Action] = {}
        # Nodes whose latest verdict asks for replacement.
        self._replace_verdicts: set[str] = set()
        # node id -> (health, trio time): after a restart the judge has forgotten the events, so
        # a node keeps its stored bad health for one window unless new events judge it worse.
        self._health_floor: dict[str, tuple[m.HealthStatus, float]] = {}
        self.remediation = Remediator(self, pool_health or {}, replacer, wall_clock)
        self.notifiers = list(notifiers)
        self._node_config = m.NodeConfig(
            heartbeat_interval=format_duration(server.heartbeat_interval),
            health_check_interval=format_duration(server.health_check_interval),
            command_poll_wait=format_duration(server.command_poll_wait),
        )
        self._handlers: dict[str, Callable[[Any, Caller], Awaitable[Any]]] = {
            "RegisterNode": self.register_node,
            "SendHeartbeat": self.send_heartbeat,
            "GetNodeCommands": self.get_node_commands,
            "AckCommand": self.ack_command,
            "ReportHealth": self.report_health,
            "ListNodes": self.list_nodes,
            "GetNode": self.get_node,
            "IssueCommand": self.issue_command,
            "GetCommand": self.get_command,
            "ListEvents": self.list_events,
            "ListPools": self.list_pools,
            "GetPool": self.get_pool,
            "ScalePool": self.scale_pool,
            "ReportQueueDepth": self.report_queue_depth,
            "ListRemediations": self.list_remediations,
            "PauseRemediation": self.pause_remediation,
            "ResumeRemediation": self.resume_remediation,
            "CancelRemediation": self.cancel_remediation,
            "ResetBreaker": self.reset_breaker,
        }

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        store: Store,
        server: ServerConfig | None = None,
        *,
        admin_token: str = "",
        join_token: str = "",
        wall_clock: WallClock = utc_now,
        config: Config | None = None,
        replacer: Replacer | None = None,
        notifiers: Sequence[Notifier] | None = None,
        pool_health: Mapping[str, PoolHealthConfig] | None = None,
        providers: Mapping[str, Any] | None = None,
        machines: Callable[[ControlPlane, trio.Nursery], MachineRunner] | None = None,
    ) -> AsyncIterator[ControlPlane]:
        """Loads the state from `store` and runs the heartbeat monitor until the block ends.

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
            wall_clock=wall_clock,
            health=config.health if config is not None else None,
            pool_health=pool_health
            if pool_health is not None or config is None
            else {name: pool.health for name, pool in config.pools.items()},
            replacer=replacer,
            notifiers=notifiers,
        )
        await service._load()
        async with trio.open_nursery() as nursery:
            for notifier in service.notifiers:
                nursery.start_soon(notifier.run)
            nursery.start_soon(service._monitor.run, service._heartbeats_lost)
            nursery.start_soon(service._recheck_health_forever)
            if config is not None and config.pools:
                from navarch.pools.manager import PoolManager

                service.pools = PoolManager(
                    service,
                    config,
                    wall_clock=wall_clock,
                    providers=providers,
                    machines=machines(service, nursery) if machines is not None else None,
                )
                await nursery.start(service.pools.run)
                if service.remediation.replacer is None:
                    service.remediation.replacer = service.pools
            await nursery.start(service.remediation.run)
            try:
                yield service
            finally:
                service.stop_long_polls()
                nursery.cancel_scope.cancel()

    async def _load(self) -> None:
        state = await self.store.load()
        for node in state.nodes:
            self._nodes[node.node_id] = node
            if node.status is lifecycle.TERMINATED or node.status is lifecycle.UNHEALTHY:
                if node.status_reason == HEARTBEAT_LOST:
                    self._silent.add(node.node_id)
            else:
                self._monitor.seen(node.node_id)
        for command in state.open_commands:
            self._commands.put(command)
        for node_id, hashed in state.node_tokens.items():
            self.auth.set_node_token(node_id, hashed)
        until = trio.current_time() + self.judge.window
        for node in state.nodes:
            if node.health in _BAD_HEALTH and node.status is not lifecycle.TERMINATED:
                self._health_floor[node.node_id] = (node.health, until)
        self.remediation.load(state)

    def judged_for_replacement(self) -> set[str]:
        """Nodes whose health verdict asks for replacement by remediation."""
        return {
            node_id
            for node_id in self._replace_verdicts
            if self.remediation.settings(self._nodes[node_id].pool).auto_replace
        }

    def now(self) -> datetime:
        """The service's wall clock: real time, or the simulator's virtual time."""
        return self._now()

    async def record(self, change: Change) -> None:
        """Commits a change made outside the API methods (the pool manager's instances, events)."""
        await self._commit(change)

    def event(
        self, kind: str, node_id: str, actor: str, reason: str = "", **details: str
    ) -> m.Event:
        """An event stamped with the service's wall clock, for `record`."""
        return self._event(kind, node_id, actor, reason, **details)

    async def mark_terminated(self, node_id: str, reason: str, actor: str) -> None:
        """Records that a node's machine is gone: its instance was terminated or lost."""
        node = self._nodes.get(node_id)
        if node is None or node.status is lifecycle.TERMINATED:
            return
        after = attrs.evolve(node, status=lifecycle.TERMINATED, status_reason=reason)
        cancelled = self._cancel_open(node_id, "node terminated")
        self._monitor.forget(node_id)
        self._silent.discard(node_id)
        self._set_node(after)
        await self._commit(
            Change(
                nodes=(after,),
                commands=tuple(cancelled),
                events=(self._status_event(node, after, actor),),
            )
        )

    def _pool_manager(self) -> Any:
        if self.pools is None:
            raise ApiError("not_found", "no pools are configured")
        return self.pools

    async def list_pools(self, request: m.ListPoolsRequest, caller: Caller) -> m.ListPoolsResponse:
        self._authorize(caller, "ListPools")
        await trio.lowlevel.checkpoint()
        pools = () if self.pools is None else tuple(self.pools.describe_all())
        return m.ListPoolsResponse(pools=pools)

    async def get_pool(self, request: m.GetPoolRequest, caller: Caller) -> m.GetPoolResponse:
        self._authorize(caller, "GetPool")
        await trio.lowlevel.checkpoint()
        return m.GetPoolResponse(pool=self._pool_manager().describe(request.name, detail=True))

    async def scale_pool(self, request: m.ScalePoolRequest, caller: Caller) -> m.ScalePoolResponse:
        self._authorize(caller, "ScalePool")
        pool = await self._pool_manager().scale(
            request.name, request.target, request.reason, caller.actor
        )
        return m.ScalePoolResponse(pool=pool)

    async def report_queue_depth(
        self, request: m.ReportQueueDepthRequest, caller: Caller
    ) -> m.ReportQueueDepthResponse:
        self._authorize(caller, "ReportQueueDepth")
        await trio.lowlevel.checkpoint()
        pool = self._pool_manager().report_queue_depth(request.pool, request.depth)
        return m.ReportQueueDepthResponse(pool=pool)

    def stop_long_polls(self) -> None:
        """Answers every command poll now, for a prompt shutdown."""
        self._commands.close()

    @property
    def stopping(self) -> bool:
        return self._commands.closing

    @property
    def methods(self) -> frozenset[str]:
        """The names of the API methods this service answers."""
        return frozenset(self._handlers)

    async def call(self, method: str, request: Any, caller: Caller) -> Any:
        """Runs the API method named `method` (one of `methods`)."""
        handler = self._handlers.get(method)
        if handler is None:
            raise ApiError("unimplemented", f"{method} is not served by this control plane")
        return await handler(request, caller)

    def nodes(self) -> Iterable[m.Node]:
        """Every node, less its latest heartbeat time and metrics."""
        return self._nodes.values()

    def heartbeat_ages(self) -> list[float]:
        """Seconds since each watched node was last heard from."""
        return self._monitor.ages()

    def _authorize(self, caller: Caller, method: str, node_id: str = "") -> None:
        self.auth.authorize(caller, m.METHODS[method][2], method, node_id)

    def _node(self, node_id: str) -> m.Node:
        _check_id("nodeId", node_id)
        node = self._nodes.get(node_id)
        if node is None:
            raise ApiError("not_found", f"node {node_id} is not registered")
        return node

    def _event(
        self,
        kind: str,
        node_id: str,
        actor: str,
        reason: str = "",
        *,
        from_status: m.NodeStatus | None = None,
        to_status: m.NodeStatus | None = None,
        **details: str,
    ) -> m.Event:
        return m.Event(
            event_id=new_id(),
            time=self._now(),
            kind=kind,
            node_id=node_id,
            actor=actor,
            reason=reason,
            from_status=from_status,
            to_status=to_status,
            details=details,
        )

    def _status_event(self, before: m.Node, after: m.Node, actor: str, **details: str) -> m.Event:
        return self._event(
            "node.status_changed",
            after.node_id,
            actor,
            after.status_reason,
            from_status=before.status,
            to_status=after.status,
            **details,
        )

    async def _commit(self, change: Change) -> None:
        if change.nodes:
            change = attrs.evolve(change, nodes=tuple(self._full(n) for n in change.nodes))
        await self.store.commit(change)
        for event in change.events:
            self.event_counts[event.kind] += 1
            log.info(
                "event=%s node=%s actor=%s reason=%r%s",
                event.kind,
                event.node_id,
                event.actor,
                event.reason,
                f" status={event.to_status.value}" if event.to_status else "",
            )
            for notifier in self.notifiers:
                notifier.notify(event)

    def _set_node(self, node: m.Node) -> None:
        self._nodes[node.node_id] = node

    def _full(self, node: m.Node) -> m.Node:
        """The node with its latest heartbeat time and metrics."""
        beat = self._beats.get(node.node_id)
        if beat is None:
            return node
        at, metrics = beat
        return attrs.evolve(
            node,
            last_heartbeat_at=at,
            metrics=node.metrics if metrics is None else _decoded_metrics(metrics),
        )

    async def register_node(
        self, request: m.RegisterNodeRequest, caller: Caller
    ) -> m.RegisterNodeResponse:
        self._authorize(caller, "RegisterNode", request.node_id)
        _check_id("nodeId", request.node_id)
        existing = self._nodes.get(request.node_id)
        if existing is not None and existing.status is lifecycle.TERMINATED:
            raise ApiError(
                "failed_precondition",
                f"node {request.node_id} is terminated; a terminated node id cannot register again",
            )
        inventory = {
            "provider": request.provider,
            "region": request.region,
            "zone": request.zone,
            "instance_type": request.instance_type,
            "pool": request.pool,
            "hostname": request.hostname,
            "labels": request.labels,
            "gpus": request.gpus,
        }
        actor = _node_actor(caller, request.node_id)
        details = {"agentVersion": request.agent_version} if request.agent_version else {}
        if existing is None:
            node = m.Node(
                node_id=request.node_id,
                status=lifecycle.ACTIVE,
                health=m.HealthStatus.HEALTH_STATUS_UNKNOWN,
                registered_at=self._now(),
                **inventory,
            )
            event = self._event(
                "node.registered", node.node_id, actor, to_status=node.status, **details
            )
        else:
            # A restarted daemon keeps the status its node had: a restart must not revive a
            # cordoned or unhealthy node.
            node = attrs.evolve(existing, **inventory)
            event = self._event("node.reregistered", node.node_id, actor, **details)
        change = Change(nodes=(node,), events=(event,))
        token = ""
        if self.auth.enabled and caller.role in ("join", "admin"):
            token = new_node_token()
            hashed = token_hash(token)
            self.auth.set_node_token(node.node_id, hashed)
            change = attrs.evolve(
                change,
                node_tokens=(
                    NodeToken(node_id=node.node_id, token_hash=hashed, issued_at=self._now()),
                ),
            )
        self._set_node(node)
        self._monitor.seen(node.node_id)
        await self._commit(change)
        return m.RegisterNodeResponse(
            node=self._full(node), config=self._node_config, node_token=token
        )

    async def send_heartbeat(
        self, request: m.SendHeartbeatRequest, caller: Caller
    ) -> m.SendHeartbeatResponse:
        self._authorize(caller, "SendHeartbeat", request.node_id)
        node = self._node(request.node_id)
        if node.status is lifecycle.TERMINATED:
            return m.SendHeartbeatResponse(status=node.status)
        now = self._now()
        metrics = None if request.metrics is None else encode(request.metrics)
        if metrics is None and node.node_id in self._beats:
            metrics = self._beats[node.node_id][1]
        self._beats[node.node_id] = (now, metrics)
        self._monitor.seen(node.node_id)
        self.store.note_heartbeat(node.node_id, now, metrics)
        if node.node_id in self._silent:
            await self._heartbeat_resumed(node)
        commands, delivered = self._commands.take_due(node.node_id)
        if delivered:
            self.store.commit_soon(Change(commands=tuple(delivered)))
        return m.SendHeartbeatResponse(status=node.status, commands=tuple(commands))

    async def _heartbeat_resumed(self, node: m.Node) -> None:
        self._silent.discard(node.node_id)
        # The node stays unhealthy; only the reason says that it is back.
        resumed = attrs.evolve(node, status_reason=f"{HEARTBEAT_LOST}; heartbeats resumed")
        self._set_node(resumed)
        event = self._event("node.heartbeat_resumed", node.node_id, f"node:{node.node_id}")
        await self._commit(Change(nodes=(resumed,), events=(event,)))

    async def get_node_commands(
        self, request: m.GetNodeCommandsRequest, caller: Caller
    ) -> m.GetNodeCommandsResponse:
        self._authorize(caller, "GetNodeCommands", request.node_id)
        self._node(request.node_id)
        try:
            wait = parse_duration(request.wait)
        except ValueError as exc:
            raise ApiError("invalid_argument", f"wait: {exc}") from None
        wait = min(wait, self.server.command_poll_wait)
        deadline = trio.current_time() + wait.total_seconds()
        while True:
            commands, delivered = self._commands.take_due(request.node_id)
            if commands or trio.current_time() >= deadline or self._commands.closing:
                break
            await self._commands.wait(request.node_id, deadline)
        if delivered:
            self.store.commit_soon(Change(commands=tuple(delivered)))
        return m.GetNodeCommandsResponse(commands=tuple(commands))

    async def ack_command(
        self, request: m.AckCommandRequest, caller: Caller
    ) -> m.AckCommandResponse:
        self._authorize(caller, "AckCommand", request.node_id)
        node = self._node(request.node_id)
        _check_id("commandId", request.command_id)
        command = self._commands.find(request.command_id)
        if command is None:
            command = await self.store.get_command(request.command_id)
        if command is None or command.node_id != request.node_id:
            raise ApiError(
                "not_found", f"command {request.command_id} not found for node {request.node_id}"
            )
        if command.status in _FINISHED:
            # A repeated acknowledgement changes nothing; it still waits until the first one is
            # durable, so both answers mean the same thing.
            await self.store.commit(Change())
            return m.AckCommandResponse(command=command)
        succeeded = request.result is m.CommandResult.COMMAND_RESULT_SUCCEEDED
        finished = attrs.evolve(
            command,
            status=m.CommandStatus.COMMAND_STATUS_SUCCEEDED
            if succeeded
            else m.CommandStatus.COMMAND_STATUS_FAILED,
            completed_at=self._now(),
            result_message=request.message,
        )
        self._commands.remove(command)
        actor = _node_actor(caller, node.node_id)
        commands = [finished]
        events = [
            self._event(
                "command.acked",
                node.node_id,
                actor,
                request.message,
                commandId=command.command_id,
                type=command.type.value,
                result=request.result.value,
            )
        ]
        after = self._apply_ack(node, finished, succeeded)
        if after is not node:
            if after.status is not node.status:
                events.append(self._status_event(node, after, actor, commandId=command.command_id))
            if after.status is lifecycle.TERMINATED:
                commands += self._cancel_open(after.node_id, "node terminated")
                self._monitor.forget(after.node_id)
                self._silent.discard(after.node_id)
            self._set_node(after)
        change = Change(
            nodes=(after,) if after is not node else (),
            commands=tuple(commands),
            events=tuple(events),
        )
        await self._commit(change)
        return m.AckCommandResponse(command=finished)

    def _apply_ack(self, node: m.Node, command: m.NodeCommand, succeeded: bool) -> m.Node:
        """The node after an acknowledged command; `node` itself when nothing changes."""
        kind = command.type
        if kind is m.CommandType.COMMAND_TYPE_DRAIN and node.status is lifecycle.DRAINING:
            if succeeded:
                status = lifecycle.next_status("drain_succeeded", node.node_id, node.status)
                return attrs.evolve(node, status=status, status_reason=command.reason or "drained")
            return attrs.evolve(node, status_reason=f"drain failed: {command.result_message}")
        if kind is m.CommandType.COMMAND_TYPE_TERMINATE and node.status is not lifecycle.TERMINATED:
            if succeeded:
                status = lifecycle.next_status("terminate_succeeded", node.node_id, node.status)
                return attrs.evolve(
                    node, status=status, status_reason=command.reason or "terminated"
                )
            return attrs.evolve(node, status_reason=f"terminate failed: {command.result_message}")
        return node

    def _cancel_open(
        self, node_id: str, why: str, only: m.CommandType | None = None
    ) -> list[m.NodeCommand]:
        cancelled = []
        for command in self._commands.open_commands(node_id):
            if only is not None and command.type is not only:
                continue
            self._commands.remove(command)
            cancelled.append(
                attrs.evolve(
                    command,
                    status=m.CommandStatus.COMMAND_STATUS_CANCELLED,
                    completed_at=self._now(),
                    result_message=why,
                )
            )
        return cancelled

    async def report_health(
        self, request: m.ReportHealthRequest, caller: Caller
    ) -> m.ReportHealthResponse:
        """Judges the events with the health policy; the node's health is the verdict's.

        An unhealthy verdict takes an active or cordoned node out of service (status UNHEALTHY,
        the rule as the reason), and the verdict's action is taken once per verdict: a repeated
        report of the same fault does not act again.
        """
        self._authorize(caller, "ReportHealth", request.node_id)
        node = self._node(request.node_id)
        if node.status is lifecycle.TERMINATED:
            return m.ReportHealthResponse(status=node.status, health=node.health)
        verdict = self.judge.evaluate(
            node.node_id, health_events_from_wire(request.events), trio.current_time()
        )
        for error in verdict.errors:
            log.warning("node=%s rule=%r skipped: %s", node.node_id, error.rule, error.message)
        health = self._judged_health(node.node_id, HEALTH_STATUS[verdict.health_status])
        after = attrs.evolve(node, health=health, last_health_events=request.events)
        actor = _node_actor(caller, node.node_id)
        events = []
        reports: tuple[HealthReport, ...] = ()
        if request.events:
            reports = (
                HealthReport(report_id=new_id(), node_id=node.node_id, events=request.events),
            )
            types = sorted({event.type.value for event in request.events})
            events.append(
                self._event(
                    "health.reported",
                    node.node_id,
                    actor,
                    count=str(len(request.events)),
                    types=",".join(types),
                )
            )
        if health is not node.health:
            events.append(self._health_event(node, health, actor, verdict))
        if verdict.health is Result.UNHEALTHY and node.status in (
            lifecycle.ACTIVE,
            lifecycle.CORDONED,
        ):
            after = attrs.evolve(
                after,
                status=lifecycle.next_status("health_failed", node.node_id, node.status),
                status_reason=f"health rule {verdict.rule}",
            )
            events.append(self._status_event(node, after, "health-policy", rule=verdict.rule))
        # Known before the commit yields, so that a pool's round in between already counts the
        # node as leaving and its successor as coming.
        if verdict.action is Action.REPLACE:
            self._replace_verdicts.add(node.node_id)
        else:
            self._replace_verdicts.discard(node.node_id)
        self._set_node(after)
        await self._commit(Change(nodes=(after,), events=tuple(events), health_reports=reports))
        await self._take_action(after.node_id, verdict)
        current = self._nodes[node.node_id]
        return m.ReportHealthResponse(status=current.status, health=current.health)

    def _judged_health(self, node_id: str, health: m.HealthStatus) -> m.HealthStatus:
        floor = self._health_floor.get(node_id)
        if floor is None:
            return health
        if trio.current_time() >= floor[1]:
            del self._health_floor[node_id]
            return health
        return floor[0] if _HEALTH_RANK[floor[0]] > _HEALTH_RANK[health] else health

    def _health_event(
        self, node: m.Node, health: m.HealthStatus, actor: str, verdict: Verdict
    ) -> m.Event:
        details = {"from": node.health.value, "to": health.value}
        if verdict.rule:
            details["rule"] = verdict.rule
        return self._event("node.health_changed", node.node_id, actor, **details)

    async def _take_action(self, node_id: str, verdict: Verdict) -> None:
        """Takes the verdict's action unless one as disruptive was taken for this verdict."""
        action = verdict.action
        if action is Action.NONE:
            self._acted.pop(node_id, None)
            return
        taken = self._acted.get(node_id, Action.NONE)
        if action.rank <= taken.rank:
            return
        self._acted[node_id] = action
        node = self._nodes[node_id]
        rule = verdict.rule
        reason = f"health rule {rule}"
        details = {"rule": rule, "action": action.value}
        try:
            if action is Action.ALERT:
                await self._commit(
                    Change(
                        events=(
                            self._event(
                                "health.alert", node_id, "health-policy", reason, **details
                            ),
                        )
                    )
                )
                return
            if action is Action.REPLACE and self.remediation.settings(node.pool).auto_replace:
                await self.remediation.start(node, rule)
                return
            await self.remediation_cordon(node_id, reason)
            if action is Action.CORDON:
                return
            await self.remediation_drain(node_id, reason)
            if action in (Action.RESET_GPU, Action.REBOOT, Action.REPLACE):
                # The daemon has no reset or reboot command, and this pool replaces nothing on
                # its own: the node waits, drained, for an operator to act and uncordon it.
                need = {
                    Action.RESET_GPU: "a GPU reset",
                    Action.REBOOT: "a reboot",
                    Action.REPLACE: "replacement (auto_replace is off for its pool)",
                }[action]
                event = self._event(
                    "health.action_required",
                    node_id,
                    "health-policy",
                    f"the node needs {need} ({reason}); it is drained and held for an operator",
                    **details,
                )
                await self._commit(Change(events=(event,)))
        except ApiError as exc:
            # The node changed under the action (an operator terminated it): nothing to do.
            log.info("node=%s action=%s not taken: %s", node_id, action.value, exc.message)

    async def _recheck_health_forever(self) -> None:
        interval = min(60.0, max(1.0, self.judge.window / 10))
        while True:
            await trio.sleep(interval)
            await self.recheck_health()

    async def recheck_health(self) -> None:
        """Lets a node's health recover once its bad events leave the window; the status stays."""
        now = trio.current_time()
        nodes, events = [], []
        for node in list(self._nodes.values()):
            if node.status is lifecycle.TERMINATED or node.health not in _BAD_HEALTH:
                continue
            verdict = self.judge.verdict(node.node_id, now)
            if verdict.action is Action.NONE:
                self._acted.pop(node.node_id, None)
            health = self._judged_health(node.node_id, HEALTH_STATUS[verdict.health_status])
            if health is node.health:
                continue
            after = attrs.evolve(node, health=health)
            self._set_node(after)
            nodes.append(after)
            events.append(self._health_event(node, health, "health-policy", verdict))
        if nodes:
            await self._commit(Change(nodes=tuple(nodes), events=tuple(events)))

    def node_status(self, node_id: str) -> m.NodeStatus | None:
        node = self._nodes.get(node_id)
        return None if node is None else node.status

    async def remediation_cordon(self, node_id: str, reason: str) -> None:
        """Takes the node out of service for the health policy or a remediation."""
        node = self._nodes[node_id]
        if node.status is lifecycle.ACTIVE:
            request = m.IssueCommandRequest(
                node_id=node_id, type=m.CommandType.COMMAND_TYPE_CORDON, reason=reason
            )
            await self._cordon(node, request, Caller.admin())

    async def remediation_drain(self, node_id: str, reason: str) -> None:
        """Asks the node to drain; a drain under way or done is left as it is."""
        node = self._nodes[node_id]
        if node.status in (lifecycle.DRAINED, lifecycle.TERMINATED):
            return
        request = m.IssueCommandRequest(
            node_id=node_id, type=m.CommandType.COMMAND_TYPE_DRAIN, reason=reason
        )
        await self._queue(node, request, Caller.admin())

    def _known_pool(self, pool: str) -> None:
        _check_id("pool", pool)
        if pool in self.remediation.pool_names() or any(
            n.pool == pool for n in self._nodes.values()
        ):
            return
        raise ApiError("not_found", f"pool {pool!r} is not configured and has no nodes")

    async def list_remediations(
        self, request: m.ListRemediationsRequest, caller: Caller
    ) -> m.ListRemediationsResponse:
        self._authorize(caller, "ListRemediations")
        if not 1 <= request.limit <= MAX_EVENTS_PAGE:
            raise ApiError(
                "invalid_argument", f"limit: expected 1 to {MAX_EVENTS_PAGE}, got {request.limit}"
            )
        episodes = await self.store.list_remediations(
            pool=request.pool, node_id=request.node_id, limit=request.limit
        )
        return m.ListRemediationsResponse(
            remediations=tuple(episodes), controls=self.remediation.controls()
        )

    async def pause_remediation(
        self, request: m.PauseRemediationRequest, caller: Caller
    ) -> m.RemediationControlsResponse:
        self._authorize(caller, "PauseRemediation")
        if request.pool:
            self._known_pool(request.pool)
        controls = await self.remediation.pause(request.pool, request.reason, caller.actor)
        return m.RemediationControlsResponse(controls=controls)

    async def resume_remediation(
        self, request: m.ResumeRemediationRequest, caller: Caller
    ) -> m.RemediationControlsResponse:
        self._authorize(caller, "ResumeRemediation")
        if request.pool:
            self._known_pool(request.pool)
        controls = await self.remediation.resume(request.pool, caller.actor)
        return m.RemediationControlsResponse(controls=controls)

    async def cancel_remediation(
        self, request: m.CancelRemediationRequest, caller: Caller
    ) -> m.CancelRemediationResponse:
        self._authorize(caller, "CancelRemediation")
        _check_id("episodeId", request.episode_id)
        episode = await self.remediation.cancel(request.episode_id, request.reason, caller.actor)
        return m.CancelRemediationResponse(remediation=episode)

    async def reset_breaker(
        self, request: m.ResetBreakerRequest, caller: Caller
    ) -> m.RemediationControlsResponse:
        self._authorize(caller, "ResetBreaker")
        _check_id("pool", request.pool)
        controls = await self.remediation.reset_breaker(request.pool, caller.actor)
        return m.RemediationControlsResponse(controls=controls)

    async def _heartbeats_lost(self, node_ids: list[str]) -> None:
        nodes, events = [], []
        for node_id in node_ids:
            node = self._nodes.get(node_id)
            if node is None or node.status not in lifecycle.TRANSITIONS["heartbeat_lost"]:
                continue
            status = lifecycle.next_status("heartbeat_lost", node_id, node.status)
            # Nobody knows what the hardware says while the node is silent.
            after = attrs.evolve(
                node,
                status=status,
                status_reason=HEARTBEAT_LOST,
                health=m.HealthStatus.HEALTH_STATUS_UNKNOWN,
            )
            self._set_node(after)
            self._silent.add(node_id)
            nodes.append(after)
            events.append(self._status_event(node, after, "heartbeat-monitor"))
            if node.health is not after.health:
                events.append(
                    self._event(
                        "node.health_changed",
                        node_id,
                        "heartbeat-monitor",
                        HEARTBEAT_LOST,
                        **{"from": node.health.value, "to": after.health.value},
                    )
                )
        if nodes:
            await self._commit(Change(nodes=tuple(nodes), events=tuple(events)))
        remediation = self.remediation
        for node in nodes:
            # A silent node of a pool that replaces nodes is replaced; the episode skips the
            # drain and asks for no successor (see navarch.controlplane.remediation).
            if (
                remediation.replacer is not None
                and node.pool in remediation.pool_names()
                and remediation.settings(node.pool).auto_replace
            ):
                await remediation.start(node, HEARTBEAT_LOST_RULE)

    async def list_nodes(self, request: m.ListNodesRequest, caller: Caller) -> m.ListNodesResponse:
        self._authorize(caller, "ListNodes")
        statuses = set(request.statuses)
        healths = set(request.healths)
        labels = request.labels.items()
        nodes = tuple(
            self._full(node)
            for _, node in sorted(self._nodes.items())
            if (not statuses or node.status in statuses)
            and (not healths or node.health in healths)
            and (not request.pool or node.pool == request.pool)
            and (not request.provider or node.provider == request.provider)
            and (not request.region or node.region == request.region)
            and labels <= node.labels.items()
        )
        await trio.lowlevel.checkpoint()
        return m.ListNodesResponse(nodes=nodes)

    async def get_node(self, request: m.GetNodeRequest, caller: Caller) -> m.GetNodeResponse:
        self._authorize(caller, "GetNode")
        node = self._node(request.node_id)
        await trio.lowlevel.checkpoint()
        return m.GetNodeResponse(
            node=self._full(node), open_commands=tuple(self._commands.open_commands(node.node_id))
        )

    async def get_command(
        self, request: m.GetCommandRequest, caller: Caller
    ) -> m.GetCommandResponse:
        self._authorize(caller, "GetCommand")
        _check_id("commandId", request.command_id)
        command = self._commands.find(request.command_id)
        if command is None:
            command = await self.store.get_command(request.command_id)
        if command is None:
            raise ApiError("not_found", f"command {request.command_id} not found")
        return m.GetCommandResponse(command=command)

    async def list_events(
        self, request: m.ListEventsRequest, caller: Caller
    ) -> m.ListEventsResponse:
        self._authorize(caller, "ListEvents")
        if not 1 <= request.limit <= MAX_EVENTS_PAGE:
            raise ApiError(
                "invalid_argument",
                f"limit: expected 1 to {MAX_EVENTS_PAGE}, got {request.limit}",
            )
        events = await self.store.list_events(
            node_id=request.node_id,
            kinds=request.kinds,
            limit=request.limit,
            before=request.before,
        )
        next_before = events[-1].event_id if len(events) == request.limit else ""
        return m.ListEventsResponse(events=tuple(events), next_before=next_before)

    async def issue_command(
        self, request: m.IssueCommandRequest, caller: Caller
    ) -> m.IssueCommandResponse:
        self._authorize(caller, "IssueCommand")
        node = self._node(request.node_id)
        kind = request.type
        if kind is m.CommandType.COMMAND_TYPE_CORDON:
            return await self._cordon(node, request, caller)
        if kind is m.CommandType.COMMAND_TYPE_UNCORDON:
            return await self._uncordon(node, request, caller)
        return await self._queue(node, request, caller)

    def _new_command(
        self, request: m.IssueCommandRequest, caller: Caller, *, done: str | None
    ) -> m.NodeCommand:
        """A command record; `done` is the result message of one applied here and now."""
        now = self._now()
        return m.NodeCommand(
            command_id=new_id(),
            node_id=request.node_id,
            type=request.type,
            status=m.CommandStatus.COMMAND_STATUS_PENDING
            if done is None
            else m.CommandStatus.COMMAND_STATUS_SUCCEEDED,
            reason=request.reason,
            parameters=request.parameters,
            issued_at=now,
            issued_by=caller.actor,
            completed_at=None if done is None else now,
            result_message=done or "",
        )

    async def _apply_directly(
        self,
        node: m.Node,
        after: m.Node,
        request: m.IssueCommandRequest,
        caller: Caller,
        extra_commands: list[m.NodeCommand],
    ) -> m.IssueCommandResponse:
        """Records a command the control plane carries out itself, and its effect."""
        verb = "cordoned" if request.type is m.CommandType.COMMAND_TYPE_CORDON else "uncordoned"
        done = (
            verb if after.status is not node.status else f"no change: node is {node.status.value}"
        )
        command = self._new_command(request, caller, done=done)
        events = [self._issued_event(command)]
        if after.status is not node.status:
            events.append(
                self._status_event(node, after, caller.actor, commandId=command.command_id)
            )
            self._set_node(after)
        change = Change(
            nodes=(after,) if after is not node else (),
            commands=(command, *extra_commands),
            events=tuple(events),
        )
        await self._commit(change)
        return m.IssueCommandResponse(command=command, node=self._full(after))

    def _issued_event(self, command: m.NodeCommand) -> m.Event:
        return self._event(
            "command.issued",
            command.node_id,
            command.issued_by,
            command.reason,
            commandId=command.command_id,
            type=command.type.value,
        )

    async def _cordon(
        self, node: m.Node, request: m.IssueCommandRequest, caller: Caller
    ) -> m.IssueCommandResponse:
        status = lifecycle.next_status("cordon", node.node_id, node.status)
        after = node
        if status is not node.status:
            after = attrs.evolve(node, status=status, status_reason=request.reason or "cordoned")
        return await self._apply_directly(node, after, request, caller, [])

    async def _uncordon(
        self, node: m.Node, request: m.IssueCommandRequest, caller: Caller
    ) -> m.IssueCommandResponse:
        force = _flag(request, "force")
        action = "force_uncordon" if force else "uncordon"
        status = lifecycle.next_status(action, node.node_id, node.status)
        after, cancelled = node, []
        if status is not node.status:
            after = attrs.evolve(node, status=status, status_reason="")
            cancelled = self._cancel_open(
                node.node_id, "cancelled by uncordon", m.CommandType.COMMAND_TYPE_DRAIN
            )
            if node.status is lifecycle.UNHEALTHY:
                # Back in service by the operator's word: watch it afresh, with a full timeout.
                self._silent.discard(node.node_id)
                self._monitor.seen(node.node_id)
        return await self._apply_directly(node, after, request, caller, cancelled)

    async def _queue(
        self, node: m.Node, request: m.IssueCommandRequest, caller: Caller
    ) -> m.IssueCommandResponse:
        action = _QUEUED_ACTION[request.type]
        status = lifecycle.next_status(action, node.node_id, node.status)
        if action == "drain" and node.status is lifecycle.DRAINED:
            command = self._new_command(request, caller, done="no change: node is drained")
            await self._commit(Change(commands=(command,), events=(self._issued_event(command),)))
            return m.IssueCommandResponse(command=command, node=self._full(node))
        # Asking again for a drain or termination already under way reuses that command.
        command = next(
            (
                c
                for c in self._commands.open_commands(node.node_id)
                if c.type is request.type and action != "run_diagnostic"
            ),
            None,
        )
        new = command is None
        if command is None:
            command = self._new_command(request, caller, done=None)
        events = [self._issued_event(command)] if new else []
        after = node
        if status is not node.status:
            after = attrs.evolve(node, status=status, status_reason=request.reason or "draining")
            events.append(
                self._status_event(node, after, caller.actor, commandId=command.command_id)
            )
            self._set_node(after)
            self._silent.discard(node.node_id)
        if new:
            self._commands.put(command)
        await self._commit(
            Change(
                nodes=(after,) if after is not node else (),
                commands=(command,) if new else (),
                events=tuple(events),
            )
        )
        return m.IssueCommandResponse(command=command, node=self._full(after))


@functools.lru_cache(maxsize=1024)
def _decoded_metrics(data: bytes) -> m.NodeMetrics:
    """Heartbeat metrics as stored, decoded. Nodes under the same load send the same readings."""
    return decode(m.NodeMetrics, data)
