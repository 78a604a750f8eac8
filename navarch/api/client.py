"""Clients of the control-plane API: one interface, over HTTP or in process.

`HttpClient` speaks Connect unary JSON over HTTP/1.1 (the CLI, daemons on real machines, soak
tests), on `navarch.api.connections`: h11 on trio sockets, small enough that a daemon stays light.
`navarch.api.inprocess.InProcessClient` calls the service through the API's method table
directly, with no sockets and no serialization (the fake provider and the simulator, which run
hundreds of daemons in one process). Both raise `ApiError` for an error the control plane
returned, `Overloaded` when it shed the call with a retry hint, and `HttpClient` raises
`Unreachable` when there is no control plane to answer. Their typed methods are written once, over
`_call`, and a test checks them against the method table (`navarch.api.methods`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import urlsplit

import trio

from navarch.api import wire as m
from navarch.api.codec import ApiError, decode, encode
from navarch.api.connections import Connections, Exchange, SendFailed
from navarch.durations import parse_duration
from navarch.errors import NavarchError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ApiError",
    "ControlPlaneClient",
    "HttpClient",
    "Overloaded",
    "Unreachable",
    "retry_after",
    "split_urls",
]

R = TypeVar("R")

DEFAULT_TIMEOUT = 10.0
MAX_CONNECTIONS = 10
# The header in which a follower names the leader when it refuses a call.
LEADER_HEADER = "navarch-leader"
# The header in which a control plane that sheds load says how many seconds to wait.
RETRY_AFTER_HEADER = "retry-after"
# The bounds put on a retry hint, in seconds: a hint of 0 would make a refused fleet retry at
# once, and a hostile or broken one must not silence a node for long.
MIN_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 60.0
# Waits between two control planes tried for one call, in seconds: the first, and the most.
_HOP_WAIT = 0.1
_HOP_WAIT_CAP = 1.0


def split_urls(value: str | Sequence[str]) -> tuple[str, ...]:
    """The control-plane URLs of a comma-separated string or a list, without trailing slashes."""
    parts = value.split(",") if isinstance(value, str) else value
    return tuple(url.strip().rstrip("/") for url in parts if url.strip())


def retry_after(value: str | None) -> float | None:
    """The seconds a `Retry-After` header asks for, within `MIN_RETRY_AFTER` and
    `MAX_RETRY_AFTER`; None when there is no header or it is not a number of seconds.

    Only delta-seconds count (what navarch's control plane sends); a date, a negative number or
    anything else is no hint.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or not (text.isascii() and text.isdigit()):
        return None
    # Past a few digits the number is over the bound anyway; int() of a huge string is slow.
    seconds = float(text) if len(text) <= 6 else MAX_RETRY_AFTER
    return min(max(seconds, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


class Unreachable(NavarchError):
    """No answer from the control plane: refused, unresolvable, reset or timed out."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the control plane at {url}: {reason}")
        self.url = url
        self.reason = reason


class Overloaded(ApiError):
    """The control plane shed the call under load (`unavailable`) and said when to come back.

    `retry_after` is its hint in seconds, within `MIN_RETRY_AFTER` and `MAX_RETRY_AFTER`. The
    node is not forgotten: wait at least that long, with jitter, and call again.
    """

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__("unavailable", message)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"Overloaded({self.message!r}, retry_after={self.retry_after!r})"


class ControlPlaneClient(Protocol):
    """One async method per API method; each takes and returns a wire model."""

    def set_token(self, token: str) -> None:
        """Speaks with `token` from now on (a daemon switches to its node token)."""
        ...

    async def register_node(self, request: m.RegisterNodeRequest) -> m.RegisterNodeResponse: ...

    async def send_heartbeat(self, request: m.SendHeartbeatRequest) -> m.SendHeartbeatResponse: ...

    async def get_node_commands(
        self, request: m.GetNodeCommandsRequest
    ) -> m.GetNodeCommandsResponse: ...

    async def ack_command(self, request: m.AckCommandRequest) -> m.AckCommandResponse: ...

    async def report_health(self, request: m.ReportHealthRequest) -> m.ReportHealthResponse: ...

    async def report_preemption(
        self, request: m.ReportPreemptionRequest
    ) -> m.ReportPreemptionResponse: ...

    async def get_bootstrap_identity(
        self, request: m.GetBootstrapIdentityRequest
    ) -> m.GetBootstrapIdentityResponse: ...

    async def report_bootstrap(
        self, request: m.ReportBootstrapRequest
    ) -> m.ReportBootstrapResponse: ...

    async def list_nodes(self, request: m.ListNodesRequest) -> m.ListNodesResponse: ...

    async def get_node(self, request: m.GetNodeRequest) -> m.GetNodeResponse: ...

    async def issue_command(self, request: m.IssueCommandRequest) -> m.IssueCommandResponse: ...

    async def get_command(self, request: m.GetCommandRequest) -> m.GetCommandResponse: ...

    async def list_events(self, request: m.ListEventsRequest) -> m.ListEventsResponse: ...

    async def list_commands(self, request: m.ListCommandsRequest) -> m.ListCommandsResponse: ...

    async def get_fleet_summary(
        self, request: m.GetFleetSummaryRequest
    ) -> m.GetFleetSummaryResponse: ...

    async def list_pools(self, request: m.ListPoolsRequest) -> m.ListPoolsResponse: ...

    async def get_pool(self, request: m.GetPoolRequest) -> m.GetPoolResponse: ...

    async def scale_pool(self, request: m.ScalePoolRequest) -> m.ScalePoolResponse: ...

    async def report_queue_depth(
        self, request: m.ReportQueueDepthRequest
    ) -> m.ReportQueueDepthResponse: ...

    async def list_remediations(
        self, request: m.ListRemediationsRequest
    ) -> m.ListRemediationsResponse: ...

    async def pause_remediation(
        self, request: m.PauseRemediationRequest
    ) -> m.RemediationControlsResponse: ...

    async def resume_remediation(
        self, request: m.ResumeRemediationRequest
    ) -> m.RemediationControlsResponse: ...

    async def cancel_remediation(
        self, request: m.CancelRemediationRequest
    ) -> m.CancelRemediationResponse: ...

    async def reset_breaker(
        self, request: m.ResetBreakerRequest
    ) -> m.RemediationControlsResponse: ...


class Methods:
    """The typed methods of `ControlPlaneClient`, written once over `_call`."""

    async def _call(self, method: str, request: object, response_cls: type[R]) -> R:
        raise NotImplementedError

    async def register_node(self, request: m.RegisterNodeRequest) -> m.RegisterNodeResponse:
        return await self._call("RegisterNode", request, m.RegisterNodeResponse)

    async def send_heartbeat(self, request: m.SendHeartbeatRequest) -> m.SendHeartbeatResponse:
        return await self._call("SendHeartbeat", request, m.SendHeartbeatResponse)

    async def get_node_commands(
        self, request: m.GetNodeCommandsRequest
    ) -> m.GetNodeCommandsResponse:
        return await self._call("GetNodeCommands", request, m.GetNodeCommandsResponse)

    async def ack_command(self, request: m.AckCommandRequest) -> m.AckCommandResponse:
        return await self._call("AckCommand", request, m.AckCommandResponse)

    async def report_health(self, request: m.ReportHealthRequest) -> m.ReportHealthResponse:
        return await self._call("ReportHealth", request, m.ReportHealthResponse)

    async def report_preemption(
        self, request: m.ReportPreemptionRequest
    ) -> m.ReportPreemptionResponse:
        return await self._call("ReportPreemption", request, m.ReportPreemptionResponse)

    async def get_bootstrap_identity(
        self, request: m.GetBootstrapIdentityRequest
    ) -> m.GetBootstrapIdentityResponse:
        return await self._call("GetBootstrapIdentity", request, m.GetBootstrapIdentityResponse)

    async def report_bootstrap(
        self, request: m.ReportBootstrapRequest
    ) -> m.ReportBootstrapResponse:
        return await self._call("ReportBootstrap", request, m.ReportBootstrapResponse)

    async def list_nodes(self, request: m.ListNodesRequest) -> m.ListNodesResponse:
        return await self._call("ListNodes", request, m.ListNodesResponse)

    async def get_node(self, request: m.GetNodeRequest) -> m.GetNodeResponse:
        return await self._call("GetNode", request, m.GetNodeResponse)

    async def issue_command(self, request: m.IssueCommandRequest) -> m.IssueCommandResponse:
        return await self._call("IssueCommand", request, m.IssueCommandResponse)

    async def get_command(self, request: m.GetCommandRequest) -> m.GetCommandResponse:
        return await self._call("GetCommand", request, m.GetCommandResponse)

    async def list_events(self, request: m.ListEventsRequest) -> m.ListEventsResponse:
        return await self._call("ListEvents", request, m.ListEventsResponse)

    async def list_commands(self, request: m.ListCommandsRequest) -> m.ListCommandsResponse:
        return await self._call("ListCommands", request, m.ListCommandsResponse)

    async def get_fleet_summary(
        self, request: m.GetFleetSummaryRequest
    ) -> m.GetFleetSummaryResponse:
        return await self._call("GetFleetSummary", request, m.GetFleetSummaryResponse)

    async def list_pools(self, request: m.ListPoolsRequest) -> m.ListPoolsResponse:
        return await self._call("ListPools", request, m.ListPoolsResponse)

    async def get_pool(self, request: m.GetPoolRequest) -> m.GetPoolResponse:
        return await self._call("GetPool", request, m.GetPoolResponse)

    async def scale_pool(self, request: m.ScalePoolRequest) -> m.ScalePoolResponse:
        return await self._call("ScalePool", request, m.ScalePoolResponse)

    async def report_queue_depth(
        self, request: m.ReportQueueDepthRequest
    ) -> m.ReportQueueDepthResponse:
        return await self._call("ReportQueueDepth", request, m.ReportQueueDepthResponse)

    async def list_remediations(
        self, request: m.ListRemediationsRequest
    ) -> m.ListRemediationsResponse:
        return await self._call("ListRemediations", request, m.ListRemediationsResponse)

    async def pause_remediation(
        self, request: m.PauseRemediationRequest
    ) -> m.RemediationControlsResponse:
        return await self._call("PauseRemediation", request, m.RemediationControlsResponse)

    async def resume_remediation(
        self, request: m.ResumeRemediationRequest
    ) -> m.RemediationControlsResponse:
        return await self._call("ResumeRemediation", request, m.RemediationControlsResponse)

    async def cancel_remediation(
        self, request: m.CancelRemediationRequest
    ) -> m.CancelRemediationResponse:
        return await self._call("CancelRemediation", request, m.CancelRemediationResponse)

    async def reset_breaker(self, request: m.ResetBreakerRequest) -> m.RemediationControlsResponse:
        return await self._call("ResetBreaker", request, m.RemediationControlsResponse)


class HttpClient(Methods):
    """Connect unary JSON over HTTP/1.1, with at most ten keep-alive connections per control plane.

    `url` is one control plane's URL, or several (a list, or comma-separated) of control planes
    that share a store. A call follows the leader: when a control plane refuses it as a follower
    (`unavailable`, naming the leader in the `navarch-leader` header) it goes to the leader, and
    when a control plane cannot be reached before the request is sent, or answers `unavailable`
    without naming a leader, it goes to the next URL after a short jittered wait. Each call tries
    every URL at most once, plus the leader it was sent to; `url` is the one that answered last.
    A refusal with a `Retry-After` hint that no other control plane took raises `Overloaded`.

    Use it as an async context manager, or call `aclose()`. `transport` replaces the network with
    an httpx transport (an `httpx.ASGITransport` serves the app in process); httpx is imported
    only then. TLS is set up on the first https connection, never for http.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        token: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.urls = split_urls(url) or ("",)
        self.url = self.urls[0]
        self.timeout = timeout
        self._token = token
        self._http: Exchange
        if transport is None:
            self._http = Connections(max_per_origin=MAX_CONNECTIONS)
        else:
            from navarch.api.client_httpx import HttpxExchange

            self._http = HttpxExchange(transport, max_connections=MAX_CONNECTIONS)

    def set_token(self, token: str) -> None:
        self._token = token

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def get_node_commands(
        self, request: m.GetNodeCommandsRequest
    ) -> m.GetNodeCommandsResponse:
        # A long poll holds the request open for `wait`; the read timeout must outlast it.
        wait = parse_duration(request.wait).total_seconds()
        return await self._call(
            "GetNodeCommands", request, m.GetNodeCommandsResponse, timeout=self.timeout + wait
        )

    async def _call(
        self, method: str, request: object, response_cls: type[R], *, timeout: float | None = None
    ) -> R:
        headers = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        content = encode(request)
        limit = self.timeout if timeout is None else timeout
        # Every URL once, and the leader a follower names.
        tries = len(self.urls) + 1
        wait = _HOP_WAIT
        while True:
            url = self.url
            tries -= 1
            try:
                reply = await self._http.post(
                    url + m.SERVICE_PATH + method, content, headers, limit
                )
            except SendFailed as exc:
                self._next(url)
                # Only a request that never left may go to another control plane: one that left
                # may have been carried out.
                if not exc.unsent or tries <= 0 or len(self.urls) == 1:
                    raise Unreachable(url, exc.reason) from exc
            else:
                if reply.status == 200:
                    break
                error = _error(reply.body, reply.status, reply.headers)
                if error.code != "unavailable":
                    raise error
                leader = reply.headers.get(LEADER_HEADER, "").rstrip("/")
                # The token goes wherever the header points: never from https to http.
                if urlsplit(leader).scheme != urlsplit(url).scheme:
                    leader = ""
                if leader and leader != url and tries > 0:
                    self.url = leader
                    continue
                if tries <= 0 or len(self.urls) == 1:
                    raise error
                self._next(url)
            await trio.sleep(wait * random.uniform(0.5, 1.5))
            wait = min(2 * wait, _HOP_WAIT_CAP)
        try:
            return decode(response_cls, reply.body, ignore_unknown_fields=True)
        except ApiError as exc:
            raise ApiError(
                "internal", f"{method}: the control plane sent an unreadable reply: {exc.message}"
            ) from None

    def _next(self, failed: str) -> None:
        """Moves to the URL after `failed`, unless another call already moved on."""
        if self.url != failed:
            return
        urls = self.urls
        self.url = urls[(urls.index(failed) + 1) % len(urls)] if failed in urls else urls[0]


def _error(body: bytes, status: int, headers: Mapping[str, str]) -> ApiError:
    """The error of a reply other than 200: `Overloaded` when it is `unavailable` with a hint."""
    error = ApiError.from_json(body, status)
    if error.code == "unavailable" and LEADER_HEADER not in headers:
        hint = retry_after(headers.get(RETRY_AFTER_HEADER))
        if hint is not None:
            return Overloaded(error.message, hint)
    return error
