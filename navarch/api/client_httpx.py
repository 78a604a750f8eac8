"""`HttpClient` over an httpx transport: an app served in process (`httpx.ASGITransport`) or a
test's fake network (`httpx.MockTransport`). Imported only when a transport is given."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from navarch.api.connections import Reply, SendFailed, failure_reason


class HttpxExchange:
    """Sends `HttpClient`'s requests through an httpx client over `transport`."""

    def __init__(self, transport: httpx.AsyncBaseTransport, *, max_connections: int) -> None:
        self._http = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
        )

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Reply:
        try:
            response = await self._http.post(
                url, content=body, headers=dict(headers), timeout=timeout
            )
        except httpx.TransportError as exc:
            unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
            raise SendFailed(_reason(exc, timeout), unsent=unsent) from exc
        return Reply(
            response.status_code,
            {name.lower(): value for name, value in response.headers.items()},
            response.content,
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def _reason(exc: httpx.TransportError, timeout: float) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.TimeoutException):
        return f"no reply within {timeout:g}s"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection closed before a reply"
    return failure_reason(exc)
