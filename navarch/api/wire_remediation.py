"""Wire models of remediation: episodes, and the operator's pauses and circuit breakers.

Part of the wire API that `navarch.api.wire` gathers; read its docstring for the conventions.
"""

from __future__ import annotations

import enum
from datetime import datetime

from attrs import frozen


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
