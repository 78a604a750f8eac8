"""Calls to the Compute Engine REST API: authorized, retried while they fail in passing, and
operations followed to DONE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from navarch.plugins import ProviderError, TransientError
from navarch_gcp.errors import ALREADY_EXISTS, NOT_FOUND, Failure, http_failure, operation_failure
from navarch_gcp.settings import GcpSettings
from navarch_gcp.tokens import Tokens

if TYPE_CHECKING:
    import httpx

# Pauses before the second and third try of a call that failed in passing; the core retries
# what still fails, with longer pauses.
BACKOFF = (0.25, 1.0)
# operations/wait answers at DONE or after about two minutes; its reply may take that long.
WAIT_CALL_SECONDS = 150.0


class Missing(ProviderError):
    """The resource a call names does not exist (HTTP 404)."""


class AlreadyExists(ProviderError):
    """The resource an insert names exists already (HTTP 409)."""


class Compute:
    """One HTTP client for the calls of one provider method."""

    def __init__(self, http: httpx.AsyncClient, settings: GcpSettings, tokens: Tokens) -> None:
        self._http = http
        self._settings = settings
        self._tokens = tokens
        self._base = f"{settings.compute_url.rstrip('/')}/projects/{settings.project}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """The JSON object a call under the project answers; raises `Missing` on 404 and a
        `ProviderError` of the kind the reply says otherwise."""
        import trio  # here, so that loading the plugin keeps navarch fast

        for pause in BACKOFF:
            try:
                return await self._once(method, path, what, params, body, timeout)
            except TransientError:
                await trio.sleep(pause)
        return await self._once(method, path, what, params, body, timeout)

    async def wait(self, operation: dict[str, Any], *, what: str) -> Failure | None:
        """Follows an operation until DONE; its failure, or None when it succeeded."""
        import trio  # here, so that loading the plugin keeps navarch fast

        name = need(operation, "name", str, f"{what}: the operation")
        zone = last_segment(need(operation, "zone", str, f"{what}: operation {name}"))
        limit = self._settings.operation_timeout.total_seconds()
        with trio.move_on_after(limit):
            while operation.get("status") != "DONE":
                operation = await self.call(
                    "POST",
                    f"/zones/{zone}/operations/{name}/wait",
                    what=f"{what}: operation {name}",
                    timeout=WAIT_CALL_SECONDS,
                )
            return operation_failure(operation)
        raise TransientError(
            f"gcp: {what}: operation {name} is not done after {limit:g}s; asking again follows it"
        )

    async def _once(
        self,
        method: str,
        path: str,
        what: str,
        params: dict[str, str] | None,
        body: dict[str, Any] | None,
        timeout: float | None,
    ) -> dict[str, Any]:
        import httpx

        for fresh_token in (False, True):
            token = await self._tokens.token(self._http)
            try:
                response = await self._http.request(
                    method,
                    self._base + path,
                    params=params,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=max(timeout or 0, self._settings.request_timeout.total_seconds()),
                )
            except httpx.TransportError as exc:
                raise TransientError(f"gcp: {what}: {type(exc).__name__}: {exc}") from exc
            if response.status_code == 401 and not fresh_token:
                # Revoked or expired early: one more try with a token fetched now.
                self._tokens.forget()
                continue
            break
        if response.is_success:
            return json_object(response.content, what)
        failure = http_failure(response.status_code, response.content)
        if response.status_code == 404 or failure.has(NOT_FOUND):
            raise Missing(f"gcp: {what}: not found: {failure.message}")
        if failure.has(ALREADY_EXISTS):
            raise AlreadyExists(f"gcp: {what}: {failure.message}")
        raise failure.error(what)

    async def aggregated(self, collection: str, filter_: str, what: str) -> list[dict[str, Any]]:
        """The items of an aggregated list across every zone, all pages of it."""
        params = {"filter": filter_, "returnPartialSuccess": "true"}
        items: list[dict[str, Any]] = []
        while True:
            page = await self.call("GET", f"/aggregated/{collection}", what=what, params=params)
            scopes = page.get("items", {})
            if not isinstance(scopes, dict):
                raise ProviderError(f"gcp: {what}: the reply's 'items' is not an object")
            for scope in scopes.values():
                listed = scope.get(collection, []) if isinstance(scope, dict) else []
                if not isinstance(listed, list):
                    raise ProviderError(f"gcp: {what}: the reply's {collection!r} is not a list")
                items.extend(item for item in listed if isinstance(item, dict))
            token = page.get("nextPageToken")
            if not token:
                return items
            params = {**params, "pageToken": str(token)}


@asynccontextmanager
async def open_compute(settings: GcpSettings, tokens: Tokens) -> AsyncIterator[Compute]:
    import httpx  # here, so that loading the plugin keeps every navarch command fast

    async with httpx.AsyncClient(timeout=settings.request_timeout.total_seconds()) as http:
        yield Compute(http, settings, tokens)


def json_object(content: bytes, what: str) -> dict[str, Any]:
    import json

    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderError(f"gcp: {what}: the reply is not a JSON object")
    return body


def need(obj: dict[str, Any], name: str, kind: type[Any], what: str) -> Any:
    """`obj[name]`, which must be a `kind`; a reply without it is an error that names it."""
    value = obj.get(name)
    if not isinstance(value, kind) or (kind is str and not value):
        raise ProviderError(f"gcp: {what} has no {name!r} field")
    return value


def last_segment(url: str) -> str:
    """`us-central1-a` from `https://…/zones/us-central1-a` (or from `us-central1-a`)."""
    return url.rstrip("/").rsplit("/", 1)[-1]
