"""Clients of the control-plane API: one interface, over HTTP or in process.

`HttpClient` speaks Connect unary JSON over httpx (the CLI, daemons on real machines, soak tests).
`navarch.api.inprocess.InProcessClient` calls the service through the API's method table
directly, with no sockets and no serialization (the fake provider and the simulator, which run
hundreds of daemons in one process). Both raise `ApiError` for an error the control plane
returned, and `HttpClient` raises `Unreachable` when there is no control plane to answer. Their
typed methods are written once, over `_call`, and a test checks them against the method table
(`navarch.api.methods`).
"""

from __future__ import annotations

import errno
import random
import socket
import ssl
from collections.abc import Sequence
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
import trio

from navarch.api import wire as m
from navarch.api.codec import ApiError, decode, encode
from navarch.durations import parse_duration
from navarch.errors import NavarchError

__all__ = [
    "ApiError",
    "ControlPlaneClient",
    "HttpClient",
    "Unreachable",
    "split_urls",
]

R = TypeVar("R")

DEFAULT_TIMEOUT = 10.0
MAX_CONNECTIONS = 10  # httpx's pool slows down sharply beyond about 10 connections per client
# The header in which a follower names the leader when it refuses a call.
LEADER_HEADER = "navarch-leader"
# Waits between two control planes tried for one call, in seconds: the first, and the most.
_HOP_WAIT = 0.1
_HOP_WAIT_CAP = 1.0


def split_urls(value: str | Sequence[str]) -> tuple[str, ...]:
    """The control-plane URLs of a comma-separated string or a list, without trailing slashes."""
    parts = value.split(",") if isinstance(value, str) else value
    return tuple(url.strip().rstrip("/") for url in parts if url.strip())


class Unreachable(NavarchError):
    """No answer from the control plane: refused, unresolvable, reset or timed out."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the control plane at {url}: {reason}")
        self.url = url
        self.reason = reason


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
    """Connect unary JSON over one httpx client with at most ten connections.

    `url` is one control plane's URL, or several (a list, or comma-separated) of control planes
    that share a store. A call follows the leader: when a control plane refuses it as a follower
    (`unavailable`, naming the leader in the `navarch-leader` header) it goes to the leader, and
    when a control plane cannot be reached before the request is sent, or answers `unavailable`
    without naming a leader, it goes to the next URL after a short jittered wait. Each call tries
    every URL at most once, plus the leader it was sent to; `url` is the one that answered last.

    Use it as an async context manager, or call `aclose()`. `transport` replaces the network (an
    `httpx.ASGITransport` serves the app in process).
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
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
            ),
            headers={"Connect-Protocol-Version": "1"},
            transport=transport,
        )

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
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        content = encode(request)
        # Every URL once, and the leader a follower names.
        tries = len(self.urls) + 1
        wait = _HOP_WAIT
        while True:
            url = self.url
            tries -= 1
            try:
                response = await self._http.post(
                    url + m.SERVICE_PATH + method,
                    content=content,
                    headers=headers,
                    timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
                )
            except httpx.TransportError as exc:
                self._next(url)
                # Only a request that never left may go to another control plane: one that left
                # may have been carried out.
                unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if not unsent or tries <= 0 or len(self.urls) == 1:
                    raise Unreachable(url, _reason(exc, timeout or self.timeout)) from exc
            else:
                if response.status_code == 200:
                    break
                error = ApiError.from_json(response.content, response.status_code)
                if error.code != "unavailable":
                    raise error
                leader = response.headers.get(LEADER_HEADER, "").rstrip("/")
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
            return decode(response_cls, response.content, ignore_unknown_fields=True)
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


def _reason(exc: httpx.TransportError, timeout: float) -> str:
    """A few words on why a request found no control plane."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.TimeoutException):
        return f"no reply within {timeout:g}s"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection closed before a reply"
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return "cannot resolve the host name"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _untrusted(cause)
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed ({(cause.reason or str(cause)).lower()})"
        if isinstance(cause, OSError) and cause.errno is not None:
            if cause.errno == errno.ECONNREFUSED:
                return "connection refused"
            if cause.errno == errno.ECONNRESET:
                return "connection reset"
            return (cause.strerror or str(cause)).lower()
    text = str(exc).strip()
    if text.startswith("[Errno"):
        text = text.partition("] ")[2]
    return text.lower() or type(exc).__name__


def _untrusted(exc: ssl.SSLCertVerificationError) -> str:
    if exc.verify_code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
        return f"its TLS certificate is not for this address ({exc.verify_message})"
    # httpx trusts the CA certificates of SSL_CERT_FILE instead of its own bundle.
    return (
        f"its TLS certificate is not trusted ({exc.verify_message}); set SSL_CERT_FILE to a file "
        "that holds the certificate of the CA that signed it"
    )


# OpenSSL's X509_V_ERR codes for a certificate issued to another name.
_HOSTNAME_MISMATCH = 62
_IP_ADDRESS_MISMATCH = 64


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, its causes and, for groups (trio tries every address), their members."""
    seen: list[BaseException] = []
    stack = [exc]
    while stack:
        current = stack.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            stack.extend(reversed(current.exceptions))
        for linked in (current.__context__, current.__cause__):
            if linked is not None:
                stack.append(linked)
    return seen
