"""The mapping between the domain (`navarch.model`) and the wire models (`navarch.api.wire`).

Both sides have the same fields; they differ in their enum names (`NodeStatus.ACTIVE` is
`NODE_STATUS_ACTIVE` on the wire) and in what each side may add later without the other noticing.
Every function here is total: a value the domain can hold has a wire form, and the codec has
already refused any wire value that has no domain form.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

import attrs

from navarch import model
from navarch.api import wire
from navarch.plugins.notifier import wire_details

if TYPE_CHECKING:
    # Annotations only: the daemon maps its GPUs and health events through this module, and
    # must not load the control plane to do it.
    from navarch.controlplane.history import FleetCounts, PoolPoint
    from navarch.controlplane.summary import FleetSummary
    from navarch.pools.manager import DecisionRecord
    from navarch.pools.view import PoolView

D = TypeVar("D", bound=enum.Enum)
W = TypeVar("W", bound=enum.Enum)


def _enum_pair(domain: type[D], wire_enum: type[W], prefix: str) -> tuple[dict[D, W], dict[W, D]]:
    to_wire = {member: wire_enum[prefix + member.name] for member in domain}
    return to_wire, {w: d for d, w in to_wire.items()}


NODE_STATUS, NODE_STATUS_IN = _enum_pair(model.NodeStatus, wire.NodeStatus, "NODE_STATUS_")
HEALTH_STATUS, HEALTH_STATUS_IN = _enum_pair(
    model.HealthStatus, wire.HealthStatus, "HEALTH_STATUS_"
)
COMMAND_TYPE, COMMAND_TYPE_IN = _enum_pair(model.CommandType, wire.CommandType, "COMMAND_TYPE_")
COMMAND_STATUS = _enum_pair(model.CommandStatus, wire.CommandStatus, "COMMAND_STATUS_")[0]
COMMAND_RESULT, COMMAND_RESULT_IN = _enum_pair(
    model.CommandResult, wire.CommandResult, "COMMAND_RESULT_"
)
EVENT_TYPE, EVENT_TYPE_IN = _enum_pair(
    model.HealthEventType, wire.HealthEventType, "HEALTH_EVENT_TYPE_"
)
STEP = _enum_pair(model.RemediationStep, wire.RemediationStep, "REMEDIATION_STEP_")[0]
BOOTSTRAP_STATE, BOOTSTRAP_STATE_IN = _enum_pair(
    model.BootstrapState, wire.BootstrapState, "BOOTSTRAP_STATE_"
)
PREFLIGHT_STATE = _enum_pair(model.PreflightState, wire.PreflightState, "PREFLIGHT_STATE_")[0]
REMEDIATION_ACTION = _enum_pair(
    model.RemediationAction, wire.RemediationAction, "REMEDIATION_ACTION_"
)[0]


def gpu_info_to_wire(gpu: model.GpuInfo) -> wire.GpuInfo:
    return wire.GpuInfo(
        index=gpu.index,
        uuid=gpu.uuid,
        name=gpu.name,
        pci_bus_id=gpu.pci_bus_id,
        memory_total_bytes=gpu.memory_total_bytes,
    )


def gpu_info_from_wire(gpu: wire.GpuInfo) -> model.GpuInfo:
    return model.GpuInfo(
        index=gpu.index,
        uuid=gpu.uuid,
        name=gpu.name,
        pci_bus_id=gpu.pci_bus_id,
        memory_total_bytes=gpu.memory_total_bytes,
    )


def metrics_to_wire(metrics: model.NodeMetrics) -> wire.NodeMetrics:
    return wire.NodeMetrics(
        cpu_percent=metrics.cpu_percent,
        memory_percent=metrics.memory_percent,
        gpus=tuple(
            wire.GpuMetrics(
                index=g.index,
                utilization_percent=g.utilization_percent,
                memory_used_bytes=g.memory_used_bytes,
                temperature_c=g.temperature_c,
                power_watts=g.power_watts,
                ecc_corrected=g.ecc_corrected,
                ecc_uncorrected=g.ecc_uncorrected,
            )
            for g in metrics.gpus
        ),
    )


def metrics_from_wire(metrics: wire.NodeMetrics) -> model.NodeMetrics:
    return model.NodeMetrics(
        cpu_percent=metrics.cpu_percent,
        memory_percent=metrics.memory_percent,
        gpus=tuple(
            model.GpuMetrics(
                index=g.index,
                utilization_percent=g.utilization_percent,
                memory_used_bytes=g.memory_used_bytes,
                temperature_c=g.temperature_c,
                power_watts=g.power_watts,
                ecc_corrected=g.ecc_corrected,
                ecc_uncorrected=g.ecc_uncorrected,
            )
            for g in metrics.gpus
        ),
    )


def health_event_to_wire(event: model.HealthEvent) -> wire.HealthEvent:
    return wire.HealthEvent(
        type=EVENT_TYPE[event.type],
        time=event.time,
        gpu_index=event.gpu_index,
        gpu_uuid=event.gpu_uuid,
        xid=event.xid,
        message=event.message,
        metrics=event.metrics,
        details=event.details,
    )


def health_event_from_wire(event: wire.HealthEvent) -> model.HealthEvent:
    return model.HealthEvent(
        type=EVENT_TYPE_IN[event.type],
        time=event.time,
        gpu_index=event.gpu_index,
        gpu_uuid=event.gpu_uuid,
        xid=event.xid,
        message=event.message,
        metrics=event.metrics,
        details=event.details,
    )


def health_events_to_wire(events: Iterable[model.HealthEvent]) -> tuple[wire.HealthEvent, ...]:
    return tuple(health_event_to_wire(e) for e in events)


def health_events_from_wire(events: Iterable[wire.HealthEvent]) -> tuple[model.HealthEvent, ...]:
    return tuple(health_event_from_wire(e) for e in events)


def event_to_wire(event: model.Event) -> wire.Event:
    return wire.Event(
        event_id=event.event_id,
        time=event.time,
        kind=event.kind,
        node_id=event.node_id,
        actor=event.actor,
        reason=event.reason,
        from_status=None if event.from_status is None else NODE_STATUS[event.from_status],
        to_status=None if event.to_status is None else NODE_STATUS[event.to_status],
        details=wire_details(event.kind, event.details),
    )


def node_to_wire(node: model.Node) -> wire.Node:
    return wire.Node(
        node_id=node.node_id,
        status=NODE_STATUS[node.status],
        health=HEALTH_STATUS[node.health],
        provider=node.provider,
        region=node.region,
        zone=node.zone,
        instance_type=node.instance_type,
        pool=node.pool,
        hostname=node.hostname,
        labels=node.labels,
        gpus=tuple(gpu_info_to_wire(g) for g in node.gpus),
        status_reason=node.status_reason,
        registered_at=node.registered_at,
        last_heartbeat_at=node.last_heartbeat_at,
        metrics=None if node.metrics is None else metrics_to_wire(node.metrics),
        last_health_events=health_events_to_wire(node.last_health_events),
    )


def command_to_wire(command: model.Command) -> wire.NodeCommand:
    return wire.NodeCommand(
        command_id=command.command_id,
        node_id=command.node_id,
        type=COMMAND_TYPE[command.type],
        status=COMMAND_STATUS[command.status],
        reason=command.reason,
        parameters=command.parameters,
        issued_at=command.issued_at,
        issued_by=command.issued_by,
        completed_at=command.completed_at,
        result_message=command.result_message,
    )


def commands_to_wire(commands: Iterable[model.Command]) -> tuple[wire.NodeCommand, ...]:
    return tuple(command_to_wire(c) for c in commands)


def remediation_to_wire(episode: model.Remediation) -> wire.Remediation:
    return wire.Remediation(
        episode_id=episode.episode_id,
        node_id=episode.node_id,
        pool=episode.pool,
        step=STEP[episode.step],
        rule=episode.rule,
        action=REMEDIATION_ACTION[episode.action],
        gpu_index=episode.gpu_index,
        detail=episode.detail,
        started_at=episode.started_at,
        updated_at=episode.updated_at,
    )


def controls_to_wire(controls: model.RemediationControls) -> wire.RemediationControls:
    return wire.RemediationControls(
        paused=controls.paused,
        paused_pools=controls.paused_pools,
        open_breakers=controls.open_breakers,
    )


def bootstrap_to_wire(boot: model.Bootstrap) -> wire.InstanceBootstrap:
    return wire.InstanceBootstrap(
        method=boot.method,
        state=BOOTSTRAP_STATE[boot.state],
        detail=boot.detail,
        log_tail=boot.log_tail,
        started_at=boot.started_at,
        updated_at=boot.updated_at,
    )


def preflight_to_wire(preflight: model.Preflight) -> wire.InstancePreflight:
    return wire.InstancePreflight(
        state=PREFLIGHT_STATE[preflight.state],
        level=preflight.level,
        command_id=preflight.command_id,
        detail=preflight.detail,
        started_at=preflight.started_at,
        updated_at=preflight.updated_at,
    )


def pool_to_wire(pool: PoolView) -> wire.Pool:
    return wire.Pool(
        name=pool.name,
        instance_type=pool.instance_type,
        min_nodes=pool.min_nodes,
        max_nodes=pool.max_nodes,
        size=pool.size,
        target=pool.target,
        in_flight=pool.in_flight,
        healthy=pool.healthy,
        utilization=pool.utilization,
        queue_depth=pool.queue_depth,
        queue_depth_at=pool.queue_depth_at,
        manual_target=pool.manual_target,
        autoscaler=pool.autoscaler,
        last_decision_at=pool.last_decision_at,
        last_decision=pool.last_decision,
        blocked=tuple(
            wire.ProviderBlock(
                provider=b.provider,
                kind=b.kind,
                reason=b.reason,
                region=b.region,
                zone=b.zone,
                instance_type=b.instance_type,
                until=b.until,
                spot=b.spot,
            )
            for b in pool.blocked
        ),
        instances=tuple(
            wire.PoolInstance(
                instance_id=i.instance_id,
                provider=i.provider,
                status=i.status,
                region=i.region,
                zone=i.zone,
                instance_type=i.instance_type,
                reason=i.reason,
                created_at=i.created_at,
                address=i.address,
                bootstrap=None if i.bootstrap is None else bootstrap_to_wire(i.bootstrap),
                preflight=None if i.preflight is None else preflight_to_wire(i.preflight),
            )
            for i in pool.instances
        ),
    )


def pool_detail_to_wire(
    pool: PoolView, points: Iterable[PoolPoint], decisions: Iterable[DecisionRecord]
) -> wire.Pool:
    """GetPool's pool: the pool with its history and its last scaling decisions."""
    return attrs.evolve(
        pool_to_wire(pool),
        history=tuple(
            wire.PoolPoint(
                time=p.time,
                size=p.size,
                target=p.target,
                min_nodes=p.min_nodes,
                max_nodes=p.max_nodes,
                in_flight=p.in_flight,
            )
            for p in points
        ),
        decisions=tuple(
            wire.ScalingDecision(
                time=d.time,
                previous=d.previous,
                target=d.target,
                recommended=d.recommended,
                reason=d.reason,
                autoscaler=d.autoscaler,
            )
            for d in decisions
        ),
    )


def _status_counts(counts: Mapping[model.NodeStatus, int]) -> wire.StatusCounts:
    return wire.StatusCounts(**{status.value: counts.get(status, 0) for status in model.NodeStatus})


def _health_counts(counts: Mapping[model.HealthStatus, int]) -> wire.HealthCounts:
    return wire.HealthCounts(**{h.value: counts.get(h, 0) for h in model.HealthStatus})


def fleet_point_to_wire(counts: FleetCounts) -> wire.FleetPoint:
    return wire.FleetPoint(
        time=counts.time,
        statuses=_status_counts(counts.statuses),
        healths=_health_counts(counts.healths),
        gpus_total=counts.gpus_total,
        gpus_unhealthy=counts.gpus_unhealthy,
        open_remediations=counts.open_remediations,
    )


def fleet_summary_to_wire(summary: FleetSummary) -> wire.GetFleetSummaryResponse:
    now = summary.now
    return wire.GetFleetSummaryResponse(
        time=now.time,
        nodes=sum(now.statuses.values()),
        statuses=_status_counts(now.statuses),
        healths=_health_counts(now.healths),
        gpus_total=now.gpus_total,
        gpus_unhealthy=now.gpus_unhealthy,
        open_remediations=now.open_remediations,
        remediation_steps=tuple(
            wire.StepCount(step=STEP[step], count=count) for step, count in summary.steps.items()
        ),
        paused=summary.paused,
        breakers=tuple(
            wire.Breaker(pool=b.pool, open=b.open, reason=b.reason, since=b.since, paused=b.paused)
            for b in summary.breakers
        ),
        pools=tuple(
            wire.PoolBrief(
                name=name,
                size=p.size,
                min_nodes=p.min_nodes,
                max_nodes=p.max_nodes,
                target=p.target,
                in_flight=p.in_flight,
            )
            for name, p in summary.pools.items()
        ),
        recent_events=tuple(event_to_wire(e) for e in summary.recent_events),
        history=tuple(fleet_point_to_wire(p) for p in summary.history),
    )
