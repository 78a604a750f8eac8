"""The API's one method table, and the call path every request takes through it.

Each method has its wire request and reply, who may call it, and its handler. The HTTP app
dispatches by this table, the OpenAPI document and the Prometheus labels are generated from it,
the client's typed methods are checked against it (tests/api), and the in-process client calls
through `call` exactly as HTTP does, so a simulated node meets the same rules as a real one.

Access: "admin" methods take the admin token, and those marked `read_only` (the List* and Get*
methods) also a viewer token; "node" methods take a node token bound to the
request's `node_id` (or the admin token); "register" (RegisterNode) also takes the join token and
a machine's bootstrap token; "bootstrap" methods take only a machine's bootstrap token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, Literal, TypeVar

from attrs import frozen

from navarch.api import handlers as h
from navarch.api import limits
from navarch.api import wire as w
from navarch.api.codec import ApiError
from navarch.controlplane import Caller, ControlPlane
from navarch.errors import (
    Conflict,
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)

Access = Literal["admin", "node", "register", "bootstrap"]
Req = TypeVar("Req")
Resp = TypeVar("Resp")


@frozen
class Method(Generic[Req, Resp]):
    name: str
    request: type[Req]
    response: type[Resp]
    access: Access
    handler: Callable[[ControlPlane, Req, Caller], Awaitable[Resp]]
    # Changes nothing, so a viewer token may call it.
    read_only: bool = False

    @property
    def python_name(self) -> str:
        """The method's name on a client: `RegisterNode` is `register_node`."""
        return "".join("_" + c.lower() if c.isupper() else c for c in self.name).lstrip("_")


# Each method's request and reply types differ; `Method(...)` checks that its handler fits them.
METHODS: dict[str, Method[Any, Any]] = {
    method.name: method
    for method in (
        Method(
            "RegisterNode",
            w.RegisterNodeRequest,
            w.RegisterNodeResponse,
            "register",
            h.register_node,
        ),
        Method(
            "SendHeartbeat",
            w.SendHeartbeatRequest,
            w.SendHeartbeatResponse,
            "node",
            h.send_heartbeat,
        ),
        Method(
            "GetNodeCommands",
            w.GetNodeCommandsRequest,
            w.GetNodeCommandsResponse,
            "node",
            h.get_node_commands,
        ),
        Method(
            "GetBootstrapIdentity",
            w.GetBootstrapIdentityRequest,
            w.GetBootstrapIdentityResponse,
            "bootstrap",
            h.get_bootstrap_identity,
        ),
        Method(
            "ReportBootstrap",
            w.ReportBootstrapRequest,
            w.ReportBootstrapResponse,
            "bootstrap",
            h.report_bootstrap,
        ),
        Method("AckCommand", w.AckCommandRequest, w.AckCommandResponse, "node", h.ack_command),
        Method(
            "ReportHealth", w.ReportHealthRequest, w.ReportHealthResponse, "node", h.report_health
        ),
        Method(
            "ReportPreemption",
            w.ReportPreemptionRequest,
            w.ReportPreemptionResponse,
            "node",
            h.report_preemption,
        ),
        Method(
            "ListNodes",
            w.ListNodesRequest,
            w.ListNodesResponse,
            "admin",
            h.list_nodes,
            read_only=True,
        ),
        Method("GetNode", w.GetNodeRequest, w.GetNodeResponse, "admin", h.get_node, read_only=True),
        Method(
            "IssueCommand",
            w.IssueCommandRequest,
            w.IssueCommandResponse,
            "admin",
            h.issue_command,
        ),
        Method(
            "GetCommand",
            w.GetCommandRequest,
            w.GetCommandResponse,
            "admin",
            h.get_command,
            read_only=True,
        ),
        Method(
            "ListCommands",
            w.ListCommandsRequest,
            w.ListCommandsResponse,
            "admin",
            h.list_commands,
            read_only=True,
        ),
        Method(
            "ListEvents",
            w.ListEventsRequest,
            w.ListEventsResponse,
            "admin",
            h.list_events,
            read_only=True,
        ),
        Method(
            "GetFleetSummary",
            w.GetFleetSummaryRequest,
            w.GetFleetSummaryResponse,
            "admin",
            h.get_fleet_summary,
            read_only=True,
        ),
        Method(
            "ListPools",
            w.ListPoolsRequest,
            w.ListPoolsResponse,
            "admin",
            h.list_pools,
            read_only=True,
        ),
        Method("GetPool", w.GetPoolRequest, w.GetPoolResponse, "admin", h.get_pool, read_only=True),
        Method("ScalePool", w.ScalePoolRequest, w.ScalePoolResponse, "admin", h.scale_pool),
        Method(
            "ReportQueueDepth",
            w.ReportQueueDepthRequest,
            w.ReportQueueDepthResponse,
            "admin",
            h.report_queue_depth,
        ),
        Method(
            "ListRemediations",
            w.ListRemediationsRequest,
            w.ListRemediationsResponse,
            "admin",
            h.list_remediations,
            read_only=True,
        ),
        Method(
            "PauseRemediation",
            w.PauseRemediationRequest,
            w.RemediationControlsResponse,
            "admin",
            h.pause_remediation,
        ),
        Method(
            "ResumeRemediation",
            w.ResumeRemediationRequest,
            w.RemediationControlsResponse,
            "admin",
            h.resume_remediation,
        ),
        Method(
            "CancelRemediation",
            w.CancelRemediationRequest,
            w.CancelRemediationResponse,
            "admin",
            h.cancel_remediation,
        ),
        Method(
            "ResetBreaker",
            w.ResetBreakerRequest,
            w.RemediationControlsResponse,
            "admin",
            h.reset_breaker,
        ),
    )
}

# The Connect code of each kind of domain error.
_CODES: dict[type[DomainError], str] = {
    InvalidArgument: "invalid_argument",
    NotFound: "not_found",
    Conflict: "failed_precondition",
    Unauthenticated: "unauthenticated",
    PermissionDenied: "permission_denied",
}


def api_error(error: DomainError) -> ApiError:
    """The Connect error a domain error travels as."""
    for kind, code in _CODES.items():
        if isinstance(error, kind):
            return ApiError(code, str(error))
    return ApiError("internal", str(error))


def authenticate(cp: ControlPlane, authorization: str | None) -> Caller:
    """The caller behind an Authorization header; an ApiError when there is none."""
    try:
        return cp.auth.authenticate(authorization)
    except DomainError as exc:
        raise api_error(exc) from None


async def call(cp: ControlPlane, method: Method[Req, Resp], request: Req, caller: Caller) -> Resp:
    """Authorizes `caller` for the method, checks the request against its limits and runs it;
    domain errors become Connect errors."""
    try:
        cp.auth.authorize(
            caller,
            method.access,
            method.name,
            getattr(request, "node_id", ""),
            read_only=method.read_only,
        )
        limits.check(request)
        return await method.handler(cp, request, caller)
    except DomainError as exc:
        raise api_error(exc) from None
