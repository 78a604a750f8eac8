"""The mapping between the domain (`navarch.model`) and the wire models (`navarch.api.wire`).

Both sides have the same fields; they differ in their enum names (`NodeStatus.ACTIVE` is
`NODE_STATUS_ACTIVE` on the wire) and in what each side may add later without the other noticing.
Every function here is total: a value the domain can hold has a wire form, and the codec has
already refused any wire value that has no domain form.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TypeVar

from navarch import model
from navarch.api import wire
from navarch.plugins.notifier import wire_details

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
COMMAND_STATUS, _ = _enum_pair(model.CommandStatus, wire.CommandStatus, "COMMAND_STATUS_")
COMMAND_RESULT, COMMAND_RESULT_IN = _enum_pair(
    model.CommandResult, wire.CommandResult, "COMMAND_RESULT_"
)
EVENT_TYPE, EVENT_TYPE_IN = _enum_pair(
    model.HealthEventType, wire.HealthEventType, "HEALTH_EVENT_TYPE_"
)
STEP, _ = _enum_pair(model.RemediationStep, wire.RemediationStep, "REMEDIATION_STEP_")


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
