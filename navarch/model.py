"""The domain: nodes, their GPUs and health, commands, events and remediation episodes.

These are navarch's own words for its state. The control plane, the pools, the health policy and
the store work with them; the API maps them to and from its wire models (`navarch.api.wire`), so
that a name on the wire (`NODE_STATUS_ACTIVE`) never reaches the core and a change of the core
never changes the wire by accident. Every value is a frozen attrs class; the object that owns a
piece of state replaces it with `attrs.evolve` rather than changing it.
"""

from __future__ import annotations

import enum
from datetime import datetime

from attrs import field, frozen


class NodeStatus(enum.Enum):
    """What the control plane does with a node."""

    ACTIVE = "active"
    CORDONED = "cordoned"
    DRAINING = "draining"
    DRAINED = "drained"
    UNHEALTHY = "unhealthy"
    TERMINATED = "terminated"


class HealthStatus(enum.Enum):
    """What the hardware says about a node."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    @property
    def rank(self) -> int:
        """How bad the status is: UNKNOWN 0 up to UNHEALTHY 3."""
        return _HEALTH_RANK[self]


_HEALTH_RANK = {
    HealthStatus.UNKNOWN: 0,
    HealthStatus.HEALTHY: 1,
    HealthStatus.DEGRADED: 2,
    HealthStatus.UNHEALTHY: 3,
}


class CommandType(enum.Enum):
    CORDON = "cordon"
    UNCORDON = "uncordon"
    DRAIN = "drain"
    TERMINATE = "terminate"
    RUN_DIAGNOSTIC = "run_diagnostic"
    # Resets one GPU (parameters["gpu"], its index) of a drained node, then runs the health checks.
    RESET_GPU = "reset_gpu"
    # Runs the daemon's configured reboot command (where the provider cannot reboot the machine).
    REBOOT = "reboot"


class CommandStatus(enum.Enum):
    # PENDING: queued for the node; DELIVERED: handed to the node at least once, not yet acked.
    PENDING = "pending"
    DELIVERED = "delivered"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (CommandStatus.SUCCEEDED, CommandStatus.FAILED, CommandStatus.CANCELLED)


class CommandResult(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class HealthEventType(enum.Enum):
    """The kind of hardware signal; the health policy's `event.type` is the value."""

    XID = "xid"
    THERMAL = "thermal"
    ECC = "ecc"
    REMAPPED_ROWS = "remapped_rows"
    RETIRED_PAGES = "retired_pages"
    NVLINK = "nvlink"
    PCIE = "pcie"
    POWER = "power"
    CLOCKS = "clocks"
    GPU_LOST = "gpu_lost"
    BOOT = "boot"
    CHECK_FAILED = "check_failed"
    INFINIBAND = "infiniband"
    NVSWITCH = "nvswitch"
    FABRIC_MANAGER = "fabric_manager"
    # The result of one test of an on-demand diagnostic (DCGM, NCCL) on one GPU or the machine.
    DIAGNOSTIC = "diagnostic"


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
class Command:
    """Something asked of one node; the control plane carries out cordon and uncordon itself."""

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
class Inventory:
    """What a node says about itself when it registers."""

    provider: str = ""
    region: str = ""
    zone: str = ""
    instance_type: str = ""
    pool: str = ""
    hostname: str = ""
    labels: dict[str, str] = field(factory=dict)
    gpus: tuple[GpuInfo, ...] = ()


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
    """A lifecycle or command event: every status transition and command is one.

    `details` values are plain strings; a status or type among them is written as its domain
    value (`"unhealthy"`, `"drain"`).
    """

    event_id: str
    time: datetime
    kind: str  # e.g. "node.registered", "node.status_changed", "command.issued", "command.acked"
    node_id: str = ""
    actor: str = ""  # "admin", "node:<id>", "heartbeat-monitor", "remediation", ...
    reason: str = ""
    from_status: NodeStatus | None = None
    to_status: NodeStatus | None = None
    details: dict[str, str] = field(factory=dict)


class RemediationStep(enum.Enum):
    """Where a remediation episode is. Steps only move forward; DONE, HELD and CANCELLED end it."""

    PENDING = "pending"
    CORDON = "cordon"
    DRAIN = "drain"
    # A reset_gpu episode: the GPU is being reset through the daemon.
    RESET_GPU = "reset_gpu"
    # A reboot episode: the machine is being rebooted, by its provider or its daemon.
    REBOOT = "reboot"
    # After a reset or reboot: waiting for the node to come back with healthy checks.
    RECOVER = "recover"
    TERMINATE = "terminate"
    DONE = "done"
    # Stopped for an operator: the node stays out of service until the operator cancels it.
    HELD = "held"
    CANCELLED = "cancelled"


class RemediationAction(enum.Enum):
    """What an episode sets out to do; a reset or reboot that fails escalates to replacement."""

    REPLACE = "replace"
    RESET_GPU = "reset_gpu"
    REBOOT = "reboot"


@frozen(kw_only=True)
class Remediation:
    """One remediation episode: a node judged for replacement, a GPU reset or a reboot, carried
    out step by step."""

    episode_id: str
    node_id: str
    pool: str = ""
    step: RemediationStep
    rule: str = ""  # the health rule that asked for the episode
    action: RemediationAction = RemediationAction.REPLACE
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


# The rule of the remediation episodes that the heartbeat monitor opens for silent nodes.
HEARTBEAT_LOST_RULE = "heartbeat-lost"
# The rules of the episodes for machines the cloud takes back: one it already took (the provider
# lists it as preempted), and one whose daemon heard the cloud's notice that it will.
PREEMPTED_RULE = "preempted"
PREEMPTION_NOTICE_RULE = "preemption-notice"
PREEMPTION_RULES = (PREEMPTED_RULE, PREEMPTION_NOTICE_RULE)
# A node's status reason while it is silent.
HEARTBEAT_LOST = "heartbeat lost"


class InstanceStatus(enum.Enum):
    """Where an instance that a pool asked for is, from the request to its end.

    ```
     PROVISIONING ──▶ REGISTERING ──▶ RUNNING ──▶ TERMINATING ──▶ TERMINATED
          │                │             │
          └────────────────┴─────────────┴──────▶ FAILED  (provider error, lost, never registered)
    ```
    """

    # Asked of the provider, not yet answered with an instance id.
    PROVISIONING = "provisioning"
    # The provider made it; its daemon has not registered as a node yet.
    REGISTERING = "registering"
    # Its daemon registered; the node id is the instance id.
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    # Never came up, or the provider lost it.
    FAILED = "failed"


# Counted as the pool's instances in flight: asked for, but not yet a node.
IN_FLIGHT = frozenset({InstanceStatus.PROVISIONING, InstanceStatus.REGISTERING})
# The instance exists, or may exist, at the provider.
LIVE = frozenset(
    {
        InstanceStatus.PROVISIONING,
        InstanceStatus.REGISTERING,
        InstanceStatus.RUNNING,
        InstanceStatus.TERMINATING,
    }
)


class BootstrapState(enum.Enum):
    """How far the installation of navarch's daemon on a new instance got."""

    # The instance was asked for with a bootstrap; nothing has run yet.
    PENDING = "pending"
    # The instance reported that its bootstrap started, or its setup commands are running.
    RUNNING = "running"
    # Its daemon registered with the instance's one-time join token.
    SUCCEEDED = "succeeded"
    # A setup step failed or the bootstrap timed out; the pool replaces the instance.
    FAILED = "failed"


@frozen(kw_only=True)
class Bootstrap:
    """The bootstrap of one instance: how it installs the daemon and how far it got."""

    # "cloud-init" (the provider hands the rendered document to the cloud) or "ssh" (the control
    # plane runs the setup over SSH).
    method: str
    state: BootstrapState = BootstrapState.PENDING
    # SHA-256 of the instance's one-time join token; the token itself is never stored.
    token_hash: str = ""
    # The token registered a node once; a second use is refused.
    token_used: bool = False
    # Why the bootstrap has its state, one line.
    detail: str = ""
    # The last lines of the bootstrap's output (a failing setup's log).
    log_tail: str = ""
    # The machine's SSH host keys, recorded on first use ("ssh-ed25519 AAAA..." lines).
    host_keys: tuple[str, ...] = ()
    started_at: datetime | None = None
    updated_at: datetime | None = None


class PreflightState(enum.Enum):
    """How far a new node's preflight diagnostics got (`[pools.NAME.preflight]`)."""

    # The node registered cordoned; its diagnostics are not asked for yet.
    PENDING = "pending"
    # The run_diagnostic command is out; the node waits for its answer.
    RUNNING = "running"
    # The diagnostics passed and the node was uncordoned.
    PASSED = "passed"
    # The diagnostics failed or timed out; the pool replaces the instance.
    FAILED = "failed"


@frozen(kw_only=True)
class Preflight:
    """The preflight of one instance's node: the diagnostics it runs before it takes work."""

    state: PreflightState = PreflightState.PENDING
    level: int = 1
    # The run_diagnostic command that carries the diagnostics; a restarted control plane waits
    # for this one rather than asking again.
    command_id: str = ""
    # Why the preflight has its state, one line.
    detail: str = ""
    started_at: datetime | None = None
    updated_at: datetime | None = None


@frozen(kw_only=True)
class InstanceRecord:
    """An instance a pool asked a provider for. The records live in the store, so a restarted
    control plane still knows every instance it made and reconciles them with the providers."""

    instance_id: str
    # The `[providers.NAME]` table that made it.
    provider: str
    pool: str
    status: InstanceStatus
    region: str = ""
    zone: str = ""
    instance_type: str = ""
    # Why it has its status ("scale up", "never registered within 10m", ...).
    reason: str = ""
    node_id: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Where the machine can be reached (an IP address or host name), as its provider reported.
    address: str = ""
    bootstrap: Bootstrap | None = None
    # The diagnostics its node runs before it takes work; None in a pool without preflight.
    preflight: Preflight | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.instance_id)
