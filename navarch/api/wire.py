"""Wire models of the control-plane API: what travels, not what the core keeps (`navarch.model`).

Every request and response is a frozen attrs class. On the wire they are proto3-style JSON:
lowerCamelCase field names, enums by their full names (`NODE_STATUS_ACTIVE`), timestamps as
RFC 3339 strings, durations as strings with a unit (`"30s"`). `navarch.api.codec` owns the
conversion; this module only says what exists.

This module holds nodes, commands, health events, lifecycle events and the fleet summary; pools
live in `navarch.api.wire_pools` and remediation in `navarch.api.wire_remediation`. This module
re-exports them, so `from navarch.api import wire` reaches every model of the API.
"""

from __future__ import annotations

import enum
from datetime import datetime

from attrs import field, frozen

from navarch.api.wire_pools import (
    BootstrapState,
    GetBootstrapIdentityRequest,
    GetBootstrapIdentityResponse,
    GetPoolRequest,
    GetPoolResponse,
    InstanceBootstrap,
    InstancePreflight,
    ListPoolsRequest,
    ListPoolsResponse,
    Pool,
    PoolInstance,
    PoolPoint,
    PreflightState,
    ProviderBlock,
    ReportBootstrapRequest,
    ReportBootstrapResponse,
    ReportQueueDepthRequest,
    ReportQueueDepthResponse,
    ScalePoolRequest,
    ScalePoolResponse,
    ScalingDecision,
)
from navarch.api.wire_remediation import (
    CancelRemediationRequest,
    CancelRemediationResponse,
    ListRemediationsRequest,
    ListRemediationsResponse,
    PauseRemediationRequest,
    Remediation,
    RemediationAction,
    RemediationControls,
    RemediationControlsResponse,
    RemediationStep,
    ResetBreakerRequest,
    ResumeRemediationRequest,
)

# The models re-exported from the modules above; strict mypy exports an imported name only when
# `__all__` names it. The models defined below are as public.
__all__ = [
    "BootstrapState",
    "CancelRemediationRequest",
    "CancelRemediationResponse",
    "GetBootstrapIdentityRequest",
    "GetBootstrapIdentityResponse",
    "GetPoolRequest",
    "GetPoolResponse",
    "InstanceBootstrap",
    "InstancePreflight",
    "ListPoolsRequest",
    "ListPoolsResponse",
    "ListRemediationsRequest",
    "ListRemediationsResponse",
    "PauseRemediationRequest",
    "Pool",
    "PoolInstance",
    "PoolPoint",
    "PreflightState",
    "ProviderBlock",
    "Remediation",
    "RemediationAction",
    "RemediationControls",
    "RemediationControlsResponse",
    "RemediationStep",
    "ReportBootstrapRequest",
    "ReportBootstrapResponse",
    "ReportQueueDepthRequest",
    "ReportQueueDepthResponse",
    "ResetBreakerRequest",
    "ResumeRemediationRequest",
    "ScalePoolRequest",
    "ScalePoolResponse",
    "ScalingDecision",
]


class NodeStatus(enum.Enum):
    """What the control plane does with a node."""

    NODE_STATUS_ACTIVE = "NODE_STATUS_ACTIVE"
    NODE_STATUS_CORDONED = "NODE_STATUS_CORDONED"
    NODE_STATUS_DRAINING = "NODE_STATUS_DRAINING"
    NODE_STATUS_DRAINED = "NODE_STATUS_DRAINED"
    NODE_STATUS_UNHEALTHY = "NODE_STATUS_UNHEALTHY"
    NODE_STATUS_TERMINATED = "NODE_STATUS_TERMINATED"


class HealthStatus(enum.Enum):
    """What the hardware says about a node."""

    HEALTH_STATUS_UNKNOWN = "HEALTH_STATUS_UNKNOWN"
    HEALTH_STATUS_HEALTHY = "HEALTH_STATUS_HEALTHY"
    HEALTH_STATUS_DEGRADED = "HEALTH_STATUS_DEGRADED"
    HEALTH_STATUS_UNHEALTHY = "HEALTH_STATUS_UNHEALTHY"


class CommandType(enum.Enum):
    COMMAND_TYPE_CORDON = "COMMAND_TYPE_CORDON"
    COMMAND_TYPE_UNCORDON = "COMMAND_TYPE_UNCORDON"
    COMMAND_TYPE_DRAIN = "COMMAND_TYPE_DRAIN"
    COMMAND_TYPE_TERMINATE = "COMMAND_TYPE_TERMINATE"
    COMMAND_TYPE_RUN_DIAGNOSTIC = "COMMAND_TYPE_RUN_DIAGNOSTIC"
    COMMAND_TYPE_RESET_GPU = "COMMAND_TYPE_RESET_GPU"
    COMMAND_TYPE_REBOOT = "COMMAND_TYPE_REBOOT"


class CommandStatus(enum.Enum):
    # PENDING: queued for the node; DELIVERED: handed to the node at least once, not yet acked.
    COMMAND_STATUS_PENDING = "COMMAND_STATUS_PENDING"
    COMMAND_STATUS_DELIVERED = "COMMAND_STATUS_DELIVERED"
    COMMAND_STATUS_SUCCEEDED = "COMMAND_STATUS_SUCCEEDED"
    COMMAND_STATUS_FAILED = "COMMAND_STATUS_FAILED"
    COMMAND_STATUS_CANCELLED = "COMMAND_STATUS_CANCELLED"


class CommandResult(enum.Enum):
    COMMAND_RESULT_SUCCEEDED = "COMMAND_RESULT_SUCCEEDED"
    COMMAND_RESULT_FAILED = "COMMAND_RESULT_FAILED"


class HealthEventType(enum.Enum):
    HEALTH_EVENT_TYPE_XID = "HEALTH_EVENT_TYPE_XID"
    HEALTH_EVENT_TYPE_THERMAL = "HEALTH_EVENT_TYPE_THERMAL"
    HEALTH_EVENT_TYPE_ECC = "HEALTH_EVENT_TYPE_ECC"
    HEALTH_EVENT_TYPE_REMAPPED_ROWS = "HEALTH_EVENT_TYPE_REMAPPED_ROWS"
    HEALTH_EVENT_TYPE_RETIRED_PAGES = "HEALTH_EVENT_TYPE_RETIRED_PAGES"
    HEALTH_EVENT_TYPE_NVLINK = "HEALTH_EVENT_TYPE_NVLINK"
    HEALTH_EVENT_TYPE_PCIE = "HEALTH_EVENT_TYPE_PCIE"
    HEALTH_EVENT_TYPE_POWER = "HEALTH_EVENT_TYPE_POWER"
    HEALTH_EVENT_TYPE_CLOCKS = "HEALTH_EVENT_TYPE_CLOCKS"
    HEALTH_EVENT_TYPE_GPU_LOST = "HEALTH_EVENT_TYPE_GPU_LOST"
    HEALTH_EVENT_TYPE_BOOT = "HEALTH_EVENT_TYPE_BOOT"
    HEALTH_EVENT_TYPE_CHECK_FAILED = "HEALTH_EVENT_TYPE_CHECK_FAILED"
    HEALTH_EVENT_TYPE_INFINIBAND = "HEALTH_EVENT_TYPE_INFINIBAND"
    HEALTH_EVENT_TYPE_NVSWITCH = "HEALTH_EVENT_TYPE_NVSWITCH"
    HEALTH_EVENT_TYPE_FABRIC_MANAGER = "HEALTH_EVENT_TYPE_FABRIC_MANAGER"
    HEALTH_EVENT_TYPE_DIAGNOSTIC = "HEALTH_EVENT_TYPE_DIAGNOSTIC"


@frozen(kw_only=True)
class GpuInfo:
    index: int
    uuid: str
    name: str = ""
    pci_bus_id: str = ""
    memory_total_bytes: int = 0


@frozen(kw_only=True)
class GpuMetrics:
    index: int
    utilization_percent: float = 0.0
    memory_used_bytes: int = 0
    temperature_c: float = 0.0
    power_watts: float = 0.0
    # ECC errors since the driver last loaded, over all the GPU's memories (NVML's volatile
    # totals): corrected (single-bit) and uncorrected (double-bit) ones.
    ecc_corrected: int = 0
    ecc_uncorrected: int = 0


@frozen(kw_only=True)
class NodeMetrics:
    cpu_percent: float = 0.0
    memory_percent: float = 0.0
    gpus: tuple[GpuMetrics, ...] = ()


@frozen(kw_only=True)
class HealthEvent:
    """One hardware signal from a node. `gpu_index` is -1 for a node-level event."""

    type: HealthEventType
    time: datetime
    gpu_index: int = -1
    gpu_uuid: str = ""
    xid: int = 0
    message: str = ""
    # Numeric readings behind the event (temperature, counter values, deltas).
    metrics: dict[str, float] = field(factory=dict)
    # Textual details (pci bus id, pid, process name, recovery action).
    details: dict[str, str] = field(factory=dict)


@frozen(kw_only=True)
class NodeCommand:
    command_id: str
    node_id: str
    type: CommandType
    status: CommandStatus
    reason: str = ""
    parameters: dict[str, str] = field(factory=dict)
    issued_at: datetime | None = None
    issued_by: str = ""
    completed_at: datetime | None = None
    result_message: str = ""


@frozen(kw_only=True)
class Node:
    node_id: str
    status: NodeStatus
    health: HealthStatus
    provider: str = ""
    region: str = ""
    zone: str = ""
    instance_type: str = ""
    pool: str = ""
    hostname: str = ""
    labels: dict[str, str] = field(factory=dict)
    gpus: tuple[GpuInfo, ...] = ()
    status_reason: str = ""
    registered_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    metrics: NodeMetrics | None = None
    # The events of the node's most recent health report.
    last_health_events: tuple[HealthEvent, ...] = ()


@frozen(kw_only=True)
class Event:
    """A lifecycle or command event: every status transition and command is one."""

    event_id: str
    time: datetime
    kind: str  # e.g. "node.registered", "node.status_changed", "command.issued", "command.acked"
    node_id: str = ""
    actor: str = ""  # "admin", "node:<id>", "heartbeat-monitor", "remediation", ...
    reason: str = ""
    from_status: NodeStatus | None = None
    to_status: NodeStatus | None = None
    details: dict[str, str] = field(factory=dict)


@frozen(kw_only=True)
class NodeConfig:
    """Settings the control plane hands a node at registration."""

    heartbeat_interval: str = "30s"
    health_check_interval: str = "60s"
    command_poll_wait: str = "20s"


@frozen(kw_only=True)
class RegisterNodeRequest:
    node_id: str
    provider: str = ""
    region: str = ""
    zone: str = ""
    instance_type: str = ""
    pool: str = ""
    hostname: str = ""
    labels: dict[str, str] = field(factory=dict)
    gpus: tuple[GpuInfo, ...] = ()
    agent_version: str = ""
    # Take the node id over from a daemon that still holds it (with the join or admin token).
    take_over: bool = False


@frozen(kw_only=True)
class RegisterNodeResponse:
    node: Node
    config: NodeConfig
    # Issued when the node registered with a join token; the node uses it from then on.
    node_token: str = ""


@frozen(kw_only=True)
class SendHeartbeatRequest:
    node_id: str
    metrics: NodeMetrics | None = None


@frozen(kw_only=True)
class SendHeartbeatResponse:
    status: NodeStatus
    # Pending commands ride on the heartbeat reply, so an idle node makes one request per interval.
    commands: tuple[NodeCommand, ...] = ()


@frozen(kw_only=True)
class GetNodeCommandsRequest:
    node_id: str
    # Long poll: hold the request up to this long (a duration string) while nothing is pending.
    wait: str = "0s"


@frozen(kw_only=True)
class GetNodeCommandsResponse:
    commands: tuple[NodeCommand, ...] = ()


@frozen(kw_only=True)
class AckCommandRequest:
    node_id: str
    command_id: str
    result: CommandResult
    message: str = ""


@frozen(kw_only=True)
class AckCommandResponse:
    command: NodeCommand


@frozen(kw_only=True)
class ReportHealthRequest:
    node_id: str
    events: tuple[HealthEvent, ...] = ()


@frozen(kw_only=True)
class ReportHealthResponse:
    status: NodeStatus
    health: HealthStatus


@frozen(kw_only=True)
class ReportPreemptionRequest:
    node_id: str
    # What the cloud will do: "spot" (a spot interruption), "preempted" (a preemptible machine)
    # or "maintenance" (a host event that stops the machine).
    kind: str
    # When the cloud says it will act, where it says.
    at: datetime | None = None
    detail: str = ""


@frozen(kw_only=True)
class ReportPreemptionResponse:
    # The node's remediation episode; empty when no pool replaces the node (it is drained).
    episode_id: str = ""


@frozen(kw_only=True)
class ListNodesRequest:
    statuses: tuple[NodeStatus, ...] = ()
    healths: tuple[HealthStatus, ...] = ()
    pool: str = ""
    provider: str = ""
    region: str = ""
    # Every label must match exactly.
    labels: dict[str, str] = field(factory=dict)
    # Case-insensitive substring of the node id, the hostname, or a label's key or value.
    query: str = ""
    # id, hostname, status, health, pool, provider, region, last_heartbeat or gpus; "-" before it
    # sorts descending. Ties break by node id.
    order_by: str = ""
    # 0 returns every match.
    page_size: int = 0
    # The previous page's next_page_token, with the same filters and order.
    page_token: str = ""


@frozen(kw_only=True)
class ListNodesResponse:
    nodes: tuple[Node, ...] = ()
    # Empty on the last page.
    next_page_token: str = ""
    # The nodes that match, over all pages.
    total: int = 0


@frozen(kw_only=True)
class GetNodeRequest:
    node_id: str


@frozen(kw_only=True)
class GetNodeResponse:
    node: Node
    # Commands not yet finished, oldest first.
    open_commands: tuple[NodeCommand, ...] = ()


@frozen(kw_only=True)
class IssueCommandRequest:
    node_id: str
    type: CommandType
    reason: str = ""
    parameters: dict[str, str] = field(factory=dict)


@frozen(kw_only=True)
class IssueCommandResponse:
    command: NodeCommand
    node: Node


@frozen(kw_only=True)
class GetCommandRequest:
    command_id: str


@frozen(kw_only=True)
class GetCommandResponse:
    command: NodeCommand


@frozen(kw_only=True)
class ListCommandsRequest:
    node_id: str
    limit: int = 50
    # Pagination cursor: return commands older than this command id.
    before: str = ""


@frozen(kw_only=True)
class ListCommandsResponse:
    commands: tuple[NodeCommand, ...] = ()  # newest first
    next_before: str = ""


@frozen(kw_only=True)
class ListEventsRequest:
    node_id: str = ""
    kinds: tuple[str, ...] = ()
    limit: int = 100
    # Pagination cursor: return events older than this event id.
    before: str = ""


@frozen(kw_only=True)
class ListEventsResponse:
    events: tuple[Event, ...] = ()
    next_before: str = ""


@frozen(kw_only=True)
class StatusCounts:
    """Nodes by status."""

    active: int = 0
    cordoned: int = 0
    draining: int = 0
    drained: int = 0
    unhealthy: int = 0
    terminated: int = 0


@frozen(kw_only=True)
class HealthCounts:
    """Nodes by health, terminated ones left out."""

    unknown: int = 0
    healthy: int = 0
    degraded: int = 0
    unhealthy: int = 0


@frozen(kw_only=True)
class FleetPoint:
    """The fleet at one moment of its history."""

    time: datetime
    statuses: StatusCounts = StatusCounts()
    healths: HealthCounts = HealthCounts()
    gpus_total: int = 0
    gpus_unhealthy: int = 0
    open_remediations: int = 0


@frozen(kw_only=True)
class StepCount:
    step: RemediationStep
    count: int = 0


@frozen(kw_only=True)
class Breaker:
    """A pool's remediation circuit breaker, and whether remediation is paused for the pool."""

    pool: str
    open: bool = False
    # Why it opened, and when; empty while it is closed.
    reason: str = ""
    since: datetime | None = None
    paused: bool = False


@frozen(kw_only=True)
class PoolBrief:
    name: str
    size: int = 0
    min_nodes: int = 0
    max_nodes: int = 0
    target: int = 0
    in_flight: int = 0


@frozen(kw_only=True)
class GetFleetSummaryRequest:
    # Only the history points after this time; None for the whole history.
    history_after: datetime | None = None


@frozen(kw_only=True)
class GetFleetSummaryResponse:
    time: datetime
    # Every node the control plane knows, terminated ones too until they are pruned.
    nodes: int = 0
    statuses: StatusCounts = StatusCounts()
    healths: HealthCounts = HealthCounts()
    # GPUs of the nodes not terminated, and of those among them whose health is unhealthy.
    gpus_total: int = 0
    gpus_unhealthy: int = 0
    # Remediation episodes not done or cancelled (held ones count), and by step.
    open_remediations: int = 0
    remediation_steps: tuple[StepCount, ...] = ()
    # Remediation is paused for every pool.
    paused: bool = False
    breakers: tuple[Breaker, ...] = ()
    pools: tuple[PoolBrief, ...] = ()
    # The newest events, newest first.
    recent_events: tuple[Event, ...] = ()
    # A point every 15 s over the last 6 h, oldest first.
    history: tuple[FleetPoint, ...] = ()


SERVICE_PATH = "/navarch.v1.ControlPlaneService/"
