"""Wire models of the control-plane API: what travels, not what the core keeps (`navarch.model`).

Every request and response is a frozen attrs class. On the wire they are proto3-style JSON:
lowerCamelCase field names, enums by their full names (`NODE_STATUS_ACTIVE`), timestamps as
RFC 3339 strings, durations as strings with a unit (`"30s"`). `navarch.api.codec` owns the
conversion; this module only says what exists.
"""

from __future__ import annotations

import enum
from datetime import datetime

from attrs import field, frozen


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


@frozen(kw_only=True)
class ListNodesResponse:
    nodes: tuple[Node, ...] = ()


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


class RemediationStep(enum.Enum):
    """Where a remediation episode is. Steps only move forward; DONE, HELD and CANCELLED end it."""

    REMEDIATION_STEP_PENDING = "REMEDIATION_STEP_PENDING"
    REMEDIATION_STEP_CORDON = "REMEDIATION_STEP_CORDON"
    REMEDIATION_STEP_DRAIN = "REMEDIATION_STEP_DRAIN"
    REMEDIATION_STEP_RESET_GPU = "REMEDIATION_STEP_RESET_GPU"
    REMEDIATION_STEP_REBOOT = "REMEDIATION_STEP_REBOOT"
    REMEDIATION_STEP_RECOVER = "REMEDIATION_STEP_RECOVER"
    REMEDIATION_STEP_TERMINATE = "REMEDIATION_STEP_TERMINATE"
    REMEDIATION_STEP_DONE = "REMEDIATION_STEP_DONE"
    # Stopped for an operator: the node stays out of service until the operator cancels it.
    REMEDIATION_STEP_HELD = "REMEDIATION_STEP_HELD"
    REMEDIATION_STEP_CANCELLED = "REMEDIATION_STEP_CANCELLED"


class RemediationAction(enum.Enum):
    """What an episode sets out to do; a reset or reboot that fails escalates to replacement."""

    REMEDIATION_ACTION_REPLACE = "REMEDIATION_ACTION_REPLACE"
    REMEDIATION_ACTION_RESET_GPU = "REMEDIATION_ACTION_RESET_GPU"
    REMEDIATION_ACTION_REBOOT = "REMEDIATION_ACTION_REBOOT"


@frozen(kw_only=True)
class Remediation:
    """One remediation episode: a node judged for replacement, a GPU reset or a reboot."""

    episode_id: str
    node_id: str
    pool: str = ""
    step: RemediationStep
    rule: str = ""  # the health rule that asked for the episode
    action: RemediationAction = RemediationAction.REMEDIATION_ACTION_REPLACE
    # The GPU a reset_gpu episode resets; -1 when the episode is about the whole node.
    gpu_index: int = -1
    # Why the episode is at its step: the last thing done, or why it is held.
    detail: str = ""
    started_at: datetime | None = None
    updated_at: datetime | None = None


@frozen(kw_only=True)
class RemediationControls:
    """The operator's switches: pauses and open circuit breakers."""

    paused: bool = False
    paused_pools: tuple[str, ...] = ()
    open_breakers: tuple[str, ...] = ()


@frozen(kw_only=True)
class ListRemediationsRequest:
    pool: str = ""
    node_id: str = ""
    limit: int = 100


@frozen(kw_only=True)
class ListRemediationsResponse:
    remediations: tuple[Remediation, ...] = ()  # newest first
    controls: RemediationControls = RemediationControls()


@frozen(kw_only=True)
class PauseRemediationRequest:
    pool: str = ""  # empty pauses every pool
    reason: str = ""


@frozen(kw_only=True)
class ResumeRemediationRequest:
    pool: str = ""  # empty lifts the global pause; a pool's own pause stays


@frozen(kw_only=True)
class ResetBreakerRequest:
    pool: str


@frozen(kw_only=True)
class RemediationControlsResponse:
    controls: RemediationControls


@frozen(kw_only=True)
class CancelRemediationRequest:
    episode_id: str
    reason: str = ""


@frozen(kw_only=True)
class CancelRemediationResponse:
    remediation: Remediation


@frozen(kw_only=True)
class ProviderBlock:
    """A part of a provider that a pool does not try until `until`, after it failed."""

    provider: str
    # "capacity", "quota", "auth" or "error".
    kind: str
    reason: str
    # Empty means every region (zone, instance type) of the provider.
    region: str = ""
    zone: str = ""
    instance_type: str = ""
    until: datetime | None = None
    # Only spot machines are blocked (a spot capacity error); on-demand ones are still tried.
    spot: bool = False


class BootstrapState(enum.Enum):
    BOOTSTRAP_STATE_PENDING = "BOOTSTRAP_STATE_PENDING"
    BOOTSTRAP_STATE_RUNNING = "BOOTSTRAP_STATE_RUNNING"
    BOOTSTRAP_STATE_SUCCEEDED = "BOOTSTRAP_STATE_SUCCEEDED"
    BOOTSTRAP_STATE_FAILED = "BOOTSTRAP_STATE_FAILED"


@frozen(kw_only=True)
class InstanceBootstrap:
    """How far installing navarch's daemon on an instance got."""

    # "cloud-init" or "ssh".
    method: str
    state: BootstrapState
    detail: str = ""
    # The last lines of the bootstrap's output.
    log_tail: str = ""
    started_at: datetime | None = None
    updated_at: datetime | None = None


class PreflightState(enum.Enum):
    PREFLIGHT_STATE_PENDING = "PREFLIGHT_STATE_PENDING"
    PREFLIGHT_STATE_RUNNING = "PREFLIGHT_STATE_RUNNING"
    PREFLIGHT_STATE_PASSED = "PREFLIGHT_STATE_PASSED"
    PREFLIGHT_STATE_FAILED = "PREFLIGHT_STATE_FAILED"


@frozen(kw_only=True)
class InstancePreflight:
    """How far the diagnostics that an instance's node runs before it takes work got."""

    state: PreflightState
    level: int = 1
    # The run_diagnostic command that carries the diagnostics.
    command_id: str = ""
    detail: str = ""
    started_at: datetime | None = None
    updated_at: datetime | None = None


@frozen(kw_only=True)
class GetBootstrapIdentityRequest:
    """Asked by a new machine with its one-time bootstrap token: which instance it is."""


@frozen(kw_only=True)
class GetBootstrapIdentityResponse:
    node_id: str
    pool: str = ""
    provider: str = ""
    region: str = ""
    zone: str = ""
    instance_type: str = ""


@frozen(kw_only=True)
class ReportBootstrapRequest:
    """A new machine's bootstrap script reports its progress (RUNNING) or its failure."""

    state: BootstrapState
    detail: str = ""
    log_tail: str = ""


@frozen(kw_only=True)
class ReportBootstrapResponse:
    pass


@frozen(kw_only=True)
class PoolInstance:
    """An instance the pool asked a provider for and that is not yet gone, or one of the last
    whose bootstrap failed."""

    instance_id: str
    provider: str
    # "provisioning", "registering", "running", "terminating" or "failed".
    status: str
    region: str = ""
    zone: str = ""
    instance_type: str = ""
    reason: str = ""
    created_at: datetime | None = None
    address: str = ""
    bootstrap: InstanceBootstrap | None = None
    preflight: InstancePreflight | None = None


@frozen(kw_only=True)
class Pool:
    name: str
    instance_type: str
    min_nodes: int
    max_nodes: int
    # Nodes that count toward the pool's size: registered, not draining or terminated.
    size: int = 0
    # What the last scaling round decided the pool should have, counting instances in flight.
    target: int = 0
    # Instances asked of a provider that have not registered as nodes yet.
    in_flight: int = 0
    healthy: int = 0
    utilization: float | None = None
    queue_depth: int | None = None
    queue_depth_at: datetime | None = None
    # The floor set by ScalePool; the autoscaler never takes the pool below it.
    manual_target: int | None = None
    autoscaler: str = ""
    last_decision_at: datetime | None = None
    last_decision: str = ""
    blocked: tuple[ProviderBlock, ...] = ()
    # Filled by GetPool only.
    instances: tuple[PoolInstance, ...] = ()


@frozen(kw_only=True)
class ListPoolsRequest:
    pass


@frozen(kw_only=True)
class ListPoolsResponse:
    pools: tuple[Pool, ...] = ()


@frozen(kw_only=True)
class GetPoolRequest:
    name: str


@frozen(kw_only=True)
class GetPoolResponse:
    pool: Pool


@frozen(kw_only=True)
class ScalePoolRequest:
    name: str
    # From min_nodes to max_nodes; the pool holds at least this many nodes from now on.
    target: int
    reason: str = ""


@frozen(kw_only=True)
class ScalePoolResponse:
    pool: Pool


@frozen(kw_only=True)
class ReportQueueDepthRequest:
    pool: str
    # Jobs waiting for or running on the pool, as the scheduler counts them.
    depth: int


@frozen(kw_only=True)
class ReportQueueDepthResponse:
    pool: Pool


SERVICE_PATH = "/navarch.v1.ControlPlaneService/"
