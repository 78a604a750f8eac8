"""The control plane's HTTP face: a plain ASGI app speaking Connect unary with the JSON codec.

Routes:

- `POST /navarch.v1.ControlPlaneService/<Method>` with `Content-Type: application/json`;
- `GET /healthz` (the process runs), `GET /readyz` (the store answers), `GET /metrics`
  (Prometheus), `GET /openapi.json` (the API description);
- `/ui` and everything under it: the dashboard (`navarch.api.ui`).

An API call authenticates with a bearer token, or from the dashboard with its session cookie and
CSRF header.

Every failure is a Connect error body `{"code": ..., "message": ...}` with the HTTP status the
Connect protocol gives its code, and every check happens before the service is called, so a bad
request changes nothing. The body is read in chunks and reading stops at the size cap. With
admission control, an API call past the control plane's limits is refused before its body is
read, with `unavailable` and a `Retry-After` header (`navarch.api.admission`); the pages above
are never refused.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from navarch.api.admission import Admission
from navarch.api.codec import ApiError, decode, encode
from navarch.api.methods import METHODS, Method, authenticate, call
from navarch.api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from navarch.api.metrics import ApiMetrics
from navarch.api.openapi import openapi_document
from navarch.api.ui import Dashboard
from navarch.api.ui.responses import request_headers
from navarch.api.wire import SERVICE_PATH
from navarch.controlplane import Caller, ControlPlane
from navarch.controlplane.leadership import Leadership
from navarch.store import StoreError

_SERVICE_PATH = SERVICE_PATH.encode()

# ASGI scopes and messages, read as mappings. A sent message is Any: each server declares its own
# type for it (hypercorn's TypedDicts, httpx's dicts), and the app must fit them all.
Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Any], Awaitable[None]]

log = logging.getLogger("navarch.api")

_JSON = b"application/json"
_READY_TIMEOUT = 5.0
# Reads a follower answers from its snapshot of the store; the pools' state lives in the leader.
_FOLLOWER_READS_EXCEPT = frozenset({"ListPools", "GetPool"})


class _Reply(Exception):
    """An error answered with an HTTP status other than the one its Connect code implies."""

    def __init__(self, status: int, error: ApiError, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error
        self.headers = headers


class ControlPlaneApp:
    """The ASGI app. `max_body_bytes` caps a request body (the config's `server.max_body_bytes`);
    `admission`, given, decides whether each API call may start (`navarch.api.admission`), and
    the app's lifespan measures the event loop's lag for it."""

    def __init__(
        self,
        control_plane: ControlPlane,
        *,
        max_body_bytes: int = 1_048_576,
        leadership: Leadership | None = None,
        admission: Admission | None = None,
    ) -> None:
        # With `leadership` (control planes sharing a PostgreSQL store), calls go to the term's
        # control plane while this one leads; `control_plane` is the snapshot loaded at start.
        self.control_plane = control_plane
        self.leadership = leadership
        self.max_body_bytes = max_body_bytes
        self.admission = admission
        self.metrics = ApiMetrics(control_plane, current=self._shown, admission=admission)
        self._openapi = json.dumps(openapi_document(), indent=1).encode()
        self.ui = Dashboard(control_plane)
        if leadership is not None:
            leadership.on_term.append(self._term_started)
        self._pages: dict[str, Callable[[Send], Awaitable[None]]] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
            "/openapi.json": self._openapi_json,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path.startswith(SERVICE_PATH):
            await self._rpc(scope, receive, send)
            return
        if path == "/ui" or path.startswith("/ui/"):
            await self._dashboard(scope, receive, send)
            return
        page = self._pages.get(path)
        if page is None:
            await _send_error(send, 404, ApiError("not_found", f"no such path: {path}"))
        elif scope["method"] != "GET":
            await _send_error(
                send,
                405,
                ApiError("unimplemented", f"{path} answers GET only"),
                [(b"allow", b"GET")],
            )
        else:
            try:
                if path == "/readyz":
                    await self._readyz(send, scope.get("query_string", b""))
                else:
                    await page(send)
            except Exception:
                log.exception("path=%s outcome=internal-error", path)
                await _send_error(send, 500, ApiError("internal", "internal error"))

    def stop_streams(self) -> None:
        """Ends the dashboard's live streams, so that a shutdown need not wait for them."""
        self.ui.stop_streams()

    async def _dashboard(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.ui(scope, receive, send)
        except Exception:
            log.exception("path=%s outcome=internal-error", scope["path"])
            await _send_error(send, 500, ApiError("internal", "internal error"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        async with trio.open_nursery() as nursery:
            if self.admission is not None:
                nursery.start_soon(self.admission.watch)
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    nursery.cancel_scope.cancel()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _healthz(self, send: Send) -> None:
        await _send(send, 200, b"ok\n", b"text/plain; charset=utf-8")

    def _term_started(self, control_plane: ControlPlane) -> None:
        """This control plane leads: the dashboard shows and streams the term's control plane."""
        self.ui.control_plane = control_plane
        control_plane.book.listeners.append(self.ui.stream.publish)

    def _shown(self) -> ControlPlane | None:
        """The control plane `/metrics` shows: this one's term, or none while it follows."""
        return self.control_plane if self.leadership is None else self.leadership.leading

    async def _readyz(self, send: Send, query: bytes = b"") -> None:
        leadership = self.leadership
        problem = ""
        if leadership is not None:
            role = leadership.role()
            if leadership.stopping:
                problem = "shutting down"
            elif leadership.unreachable and role != "leader":
                problem = f"store not reachable: {leadership.unreachable}"
            elif query == b"role=leader" and role != "leader":
                problem = f"not the leader: {role}"
            if not problem:
                await _send(send, 200, f"ready: {role}\n".encode(), b"text/plain; charset=utf-8")
                return
        elif self.control_plane.stopping:
            problem = "shutting down"
        else:
            with trio.move_on_after(_READY_TIMEOUT) as scope:
                try:
                    await self.control_plane.store.ping()
                except StoreError as exc:
                    problem = f"store not reachable: {exc}"
            if scope.cancelled_caught:
                problem = f"store not reachable: no answer in {_READY_TIMEOUT:g}s"
        if problem:
            await _send(send, 503, f"{problem}\n".encode(), b"text/plain; charset=utf-8")
        else:
            await _send(send, 200, b"ready\n", b"text/plain; charset=utf-8")

    async def _metrics(self, send: Send) -> None:
        await _send(send, 200, self.metrics.render(), METRICS_CONTENT_TYPE.encode())

    async def _openapi_json(self, send: Send) -> None:
        await _send(send, 200, self._openapi, _JSON)

    def shed(self, method: bytes, target: bytes) -> bytes | None:
        """The server's early refusal (`navarch.api.http.config.Shed`): the whole answer that
        refuses an API call that waited too long to run (`Admission.shed`), or None."""
        admission = self.admission
        if admission is None or method != b"POST" or not target.startswith(_SERVICE_PATH):
            return None
        name = target[len(_SERVICE_PATH) :].decode("ascii", "replace")
        if name not in METHODS:
            return None
        refusal = admission.shed(name)
        if refusal is None:
            return None
        self._overloaded(name)
        return refusal.raw

    def _overloaded(self, name: str) -> None:
        """A call to `name` was refused for load. A node whose heartbeat is refused is silent
        through no fault of its own; other refusals (a long poll or registration past its own
        bound, an unknown method) leave heartbeats through and must not hold off finding lost
        nodes."""
        shown = self._shown() if name == "SendHeartbeat" else None
        if shown is not None:
            shown.book.monitor.overloaded()

    async def _rpc(self, scope: Scope, receive: Receive, send: Send) -> None:
        admission = self.admission
        if admission is None:
            await self._answer(scope, receive, send)
            return
        name = scope["path"][len(SERVICE_PATH) :]
        if name not in METHODS:
            name = "unknown"
        refusal = admission.refuse(name, scope.get("extensions"))
        if refusal is not None:
            self._overloaded(name)
            await send(refusal.start)
            await send(refusal.body)
            return
        try:
            await self._answer(scope, receive, send)
        finally:
            admission.leave(name)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        name = scope["path"][len(SERVICE_PATH) :]
        label = name if name in METHODS else "unknown"
        code = "ok"
        try:
            payload = await self._call(name, scope, receive)
            await _send(send, 200, payload, _JSON)
        except _Reply as reply:
            code = reply.error.code
            await _send_error(send, reply.status, reply.error, reply.headers)
        except ApiError as error:
            code = error.code
            await _send_error(send, error.http_status, error)
        except Exception:
            code = "internal"
            log.exception("method=%s outcome=internal-error", label)
            await _send_error(send, 500, ApiError("internal", "internal error; see the server log"))
        self.metrics.observe(label, code, time.perf_counter() - started)

    async def _call(self, name: str, scope: Scope, receive: Receive) -> bytes:
        method = METHODS.get(name)
        if method is None:
            raise _Reply(404, ApiError("unimplemented", f"unknown method {name!r}"), [])
        if scope["method"] != "POST":
            raise _Reply(
                405,
                ApiError("unimplemented", f"{name} takes POST, not {scope['method']}"),
                [(b"allow", b"POST")],
            )
        headers = request_headers(scope)
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type != _JSON:
            shown = content_type.decode("latin-1") or "none"
            raise _Reply(
                415,
                ApiError(
                    "unimplemented",
                    f"content type {shown} is not supported; send application/json",
                ),
                [(b"accept-post", _JSON)],
            )
        version = headers.get(b"connect-protocol-version")
        if version is not None and version != b"1":
            raise ApiError(
                "invalid_argument",
                f"Connect-Protocol-Version: expected 1, got {version.decode('latin-1')!r}",
            )
        encoding = headers.get(b"content-encoding", b"identity").strip().lower()
        if encoding != b"identity":
            raise ApiError(
                "unimplemented",
                f"Content-Encoding {encoding.decode('latin-1')} is not supported; send identity",
            )
        timeout = _timeout(headers.get(b"connect-timeout-ms"))
        control_plane = self.control_plane
        authorization = headers.get(b"authorization")
        session = self.ui.caller(headers)
        if self.leadership is not None:
            # A caller with no credentials costs a follower no snapshot and learns no leader.
            if session is None and authorization is None and control_plane.auth.enabled:
                raise ApiError("unauthenticated", f"{name} needs a token")
            control_plane = await self._serving(method.name, method.read_only)
        caller = session or authenticate(
            control_plane, None if authorization is None else authorization.decode("latin-1")
        )
        body = await self._read_body(receive, headers)
        request = decode(method.request, body)
        if timeout is None:
            # Most calls carry no timeout; a cancel scope that cannot fire costs about 4 us.
            return encode(await self._respond(control_plane, method, request, caller))
        with trio.move_on_after(timeout) as deadline:
            response = await self._respond(control_plane, method, request, caller)
        if deadline.cancelled_caught:
            raise ApiError("deadline_exceeded", f"{name} did not finish within the call's timeout")
        return encode(response)

    async def _respond(
        self, control_plane: ControlPlane, method: Method[Any, Any], request: Any, caller: Caller
    ) -> Any:
        try:
            return await call(control_plane, method, request, caller)
        except StoreError as exc:
            if self.leadership is None or self.leadership.leading is control_plane:
                raise
            # The term ended under the call: a deposed leader's write, refused by fencing.
            raise self._not_leading(f"{method.name}: {exc}") from None

    async def _serving(self, name: str, read_only: bool) -> ControlPlane:
        """The control plane that answers `name`: the term's on the leader, a snapshot of the
        store for a follower's reads; a follower refuses the rest with the leader's address."""
        assert self.leadership is not None
        leading = self.leadership.leading
        if leading is not None:
            return leading
        if read_only and name not in _FOLLOWER_READS_EXCEPT:
            try:
                return await self.leadership.snapshot()
            except StoreError as exc:
                raise ApiError("unavailable", f"store not reachable: {exc}") from None
        raise self._not_leading(f"{name} is answered by the leader only")

    def _not_leading(self, why: str) -> _Reply:
        assert self.leadership is not None
        leader = self.leadership.leader_url
        if not leader:
            return _Reply(503, ApiError("unavailable", f"{why}; no control plane leads now"), [])
        return _Reply(
            503,
            ApiError("unavailable", f"{why}; this control plane follows {leader}"),
            [(b"navarch-leader", leader.encode())],
        )

    async def _read_body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        cap = self.max_body_bytes
        too_large = ApiError("resource_exhausted", f"body: larger than the limit of {cap} bytes")
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > cap:
            raise too_large
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError("canceled", "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _timeout(value: bytes | None) -> float | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 10:
        raise ApiError(
            "invalid_argument",
            f"Connect-Timeout-Ms: expected a positive integer of at most 10 digits, "
            f"got {value.decode('latin-1')!r}",
        )
    return int(value) / 1000


async def _send(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_error(
    send: Send, status: int, error: ApiError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _send(send, status, error.to_json(), _JSON, headers)
