"""The dashboard's routes under `/ui`: its pages, signing in and out, the session, static files
and the live stream.

- `GET /ui/`, `/ui/nodes`, `/ui/nodes/<id>`, `/ui/pools`, `/ui/pools/<name>`,
  `/ui/remediations`: the page (`static/index.html`, which draws itself from the API) for a
  signed-in caller, else 303 to `/ui/signin?next=<path>`;
- `GET /ui/signin`: the sign-in form; `POST /ui/signin` (a form with `token` and `next`) makes a
  session and sets its cookie; `POST /ui/signout` (a form with `csrf`) ends it;
- `GET /ui/session`: `{"role": "admin" | "viewer", "csrf": "..."}` of the signed-in caller;
- `GET /ui/static/<name>`: the files of `static/`, with ETags;
- `GET /ui/stream`: the committed events as server-sent events (`stream.py`).

With auth off (no token configured, which the server allows on loopback only) there is nothing to
sign in with: the pages answer everyone, as admin.
"""

from __future__ import annotations

import hmac
import logging
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from navarch.api.ui import responses as r
from navarch.api.ui.assets import load_assets
from navarch.api.ui.sessions import (
    COOKIE,
    Session,
    Sessions,
    session_caller,
    session_cookie,
)
from navarch.api.ui.stream import ChangeStream
from navarch.controlplane import Caller, ControlPlane

log = logging.getLogger("navarch.api")

# A node id or pool name, as the API allows them (no control characters), decoded from the URL.
_SEGMENT = r"[^/\x00-\x1f\x7f-\x9f]{1,253}"
_PAGE = re.compile(rf"/ui/(?:|nodes|nodes/{_SEGMENT}|pools|pools/{_SEGMENT}|remediations)")
_FORM = b"application/x-www-form-urlencoded"
# A sign-in form holds a token and a page path; anything much larger is not one.
_MAX_FORM = 8192
_MAX_NEXT = 2048
_HOME = "/ui/"


class Dashboard:
    """The ASGI app of every path under `/ui`, and the sessions the API also accepts."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.control_plane = control_plane
        self.sessions = Sessions()
        self.stream = ChangeStream()
        control_plane.book.listeners.append(self.stream.publish)
        self.assets = load_assets()
        server = control_plane.server
        # Behind a proxy that ends TLS the request looks like http; the configured URL says
        # what browsers use.
        self._always_secure = bool(server.tls_cert_file) or server.external_url.startswith(
            "https://"
        )

    @property
    def _auth(self) -> bool:
        return self.control_plane.auth.enabled

    def caller(self, headers: Mapping[bytes, bytes]) -> Caller | None:
        """The API caller of a request with a session cookie and no Authorization header."""
        if not self._auth or b"authorization" in headers:
            return None
        return session_caller(self.sessions, headers)

    async def __call__(self, scope: Mapping[str, Any], receive: r.Receive, send: r.Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        headers = r.request_headers(scope)
        if path == "/ui/signin":
            if method == "POST":
                await self._sign_in(scope, receive, send, headers)
            elif method == "GET":
                await self._signin_page(send)
            else:
                await _not_allowed(send, path, "GET, POST")
            return
        if path == "/ui/signout":
            if method == "POST":
                await self._sign_out(receive, send, headers)
            else:
                await _not_allowed(send, path, "POST")
            return
        if method != "GET":
            await _not_allowed(send, path, "GET")
        elif path == "/ui":
            await r.redirect(send, _HOME)
        elif path == "/ui/session":
            await self._session_answer(send, headers)
        elif path == "/ui/stream":
            await self._stream(receive, send, headers)
        elif path.startswith("/ui/static/"):
            await self._static(send, path[len("/ui/static/") :], headers)
        elif _PAGE.fullmatch(path):
            await self._page(scope, send, headers)
        else:
            await r.error(send, 404, "not_found", f"no such page: {path}")

    def _session(self, headers: Mapping[bytes, bytes]) -> tuple[str, Session] | None:
        session_id = session_cookie(headers)
        if session_id is None:
            return None
        session = self.sessions.get(session_id)
        return None if session is None else (session_id, session)

    async def _page(
        self, scope: Mapping[str, Any], send: r.Send, headers: Mapping[bytes, bytes]
    ) -> None:
        if self._auth and self._session(headers) is None:
            raw = scope.get("raw_path") or urllib.parse.quote(scope["path"]).encode()
            target = raw.decode("latin-1")
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            next_page = _local_next(target)
            await r.redirect(send, "/ui/signin?next=" + urllib.parse.quote(next_page, safe=""))
            return
        await self._html(send, "index.html")

    async def _signin_page(self, send: r.Send) -> None:
        if not self._auth:
            await r.redirect(send, _HOME)
            return
        await self._html(send, "signin.html")

    async def _html(self, send: r.Send, name: str) -> None:
        asset = self.assets.get(name)
        if asset is None:
            await r.error(send, 404, "not_found", f"this installation lacks the dashboard's {name}")
            return
        await r.respond(send, 200, asset.body, asset.content_type)

    async def _sign_in(
        self,
        scope: Mapping[str, Any],
        receive: r.Receive,
        send: r.Send,
        headers: Mapping[bytes, bytes],
    ) -> None:
        if not _same_origin(headers):
            await r.error(send, 403, "permission_denied", "sign-in forms come from this site only")
            return
        form = await _read_form(receive, send, headers)
        if form is None:
            return
        next_page = _local_next(form.get("next", _HOME))
        if not self._auth:
            await r.redirect(send, next_page)
            return
        token = form.get("token", "")
        role = self.control_plane.auth.dashboard_role(token) if token else None
        client = _client(scope)
        if role is None:
            log.info("dashboard sign-in refused client=%s: not the admin or a viewer token", client)
            location = "/ui/signin?error=1"
            if next_page != _HOME:
                location += "&next=" + urllib.parse.quote(next_page, safe="")
            await r.redirect(send, location)
            return
        old = session_cookie(headers)
        if old is not None:
            self.sessions.drop(old)
        session_id, _ = self.sessions.create(role)
        log.info("dashboard sign-in role=%s client=%s", role, client)
        cookie = f"{COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Strict"
        if self._always_secure or scope.get("scheme") == "https":
            cookie += "; Secure"
        await r.redirect(send, next_page, [(b"set-cookie", cookie.encode())])

    async def _sign_out(
        self, receive: r.Receive, send: r.Send, headers: Mapping[bytes, bytes]
    ) -> None:
        if not _same_origin(headers):
            await r.error(send, 403, "permission_denied", "sign-out forms come from this site only")
            return
        form = await _read_form(receive, send, headers)
        if form is None:
            return
        found = self._session(headers)
        if found is not None:
            session_id, session = found
            if not _equal(form.get("csrf", ""), session.csrf):
                await r.error(
                    send,
                    403,
                    "permission_denied",
                    "sign-out needs the csrf value of GET /ui/session in the form's csrf field",
                )
                return
            self.sessions.drop(session_id)
            self.stream.recheck()
        expired = f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        await r.redirect(
            send, "/ui/signin" if self._auth else _HOME, [(b"set-cookie", expired.encode())]
        )

    async def _session_answer(self, send: r.Send, headers: Mapping[bytes, bytes]) -> None:
        if not self._auth:
            await r.respond_json(send, 200, {"role": "admin", "csrf": ""})
            return
        found = self._session(headers)
        if found is None:
            await r.error(send, 401, "unauthenticated", "not signed in; sign in at /ui/signin")
            return
        session = found[1]
        await r.respond_json(send, 200, {"role": session.role, "csrf": session.csrf})

    async def _stream(
        self, receive: r.Receive, send: r.Send, headers: Mapping[bytes, bytes]
    ) -> None:
        found = self._session(headers) if self._auth else None
        if self._auth and found is None:
            await r.error(send, 401, "unauthenticated", "not signed in; sign in at /ui/signin")
            return
        if self.stream.full:
            await r.error(
                send,
                503,
                "unavailable",
                f"{self.stream.limit} live streams are open already; try again later",
            )
            return
        if found is None:
            alive = _always
        else:
            session_id = found[0]

            def alive() -> bool:
                return self.sessions.alive(session_id)

        await self.stream.serve(
            receive,
            send,
            [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                *r.SECURITY_HEADERS,
                *r.NO_STORE,
                (b"x-accel-buffering", b"no"),
            ],
            alive,
        )

    async def _static(self, send: r.Send, name: str, headers: Mapping[bytes, bytes]) -> None:
        asset = self.assets.get(name)
        if asset is None:
            await r.error(send, 404, "not_found", f"no such dashboard file: {name}")
            return
        cache = [(b"etag", asset.etag.encode()), (b"cache-control", b"no-cache")]
        if asset.etag.encode() in _etags(headers.get(b"if-none-match", b"")):
            await r.respond(send, 304, b"", asset.content_type, cache)
            return
        await r.respond(send, 200, asset.body, asset.content_type, cache)

    def stop_streams(self) -> None:
        self.stream.close()


def _always() -> bool:
    return True


def _client(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _etags(value: bytes) -> set[bytes]:
    return {tag.strip().removeprefix(b"W/") for tag in value.split(b",")}


def _same_origin(headers: Mapping[bytes, bytes]) -> bool:
    """False when a browser says the form comes from another site.

    Browsers say it in `Sec-Fetch-Site`; `Origin` is the fallback for those that do not send
    it, and is "null" under the pages' `Referrer-Policy: no-referrer`. Clients that send neither
    (curl) pass; the cookie's SameSite=Strict still holds for those."""
    site = headers.get(b"sec-fetch-site")
    if site is not None:
        return site in (b"same-origin", b"none")
    origin = headers.get(b"origin")
    if origin is None or origin == b"null":
        return True
    parts = urllib.parse.urlsplit(origin.decode("latin-1"))
    host = headers.get(b"host", b"").decode("latin-1")
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def _local_next(value: str) -> str:
    """`value` when it is a path of the dashboard to go back to, else the home page: never a
    URL of another site (an open redirect)."""
    if (
        len(value) > _MAX_NEXT
        or not value.startswith("/ui/")
        or "\\" in value
        or any(not 0x21 <= ord(c) <= 0x7E for c in value)
    ):
        return _HOME
    return value


async def _read_form(
    receive: r.Receive, send: r.Send, headers: Mapping[bytes, bytes]
) -> dict[str, str] | None:
    """The form's fields, one value each; None after answering a bad form."""
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type != _FORM:
        await r.error(
            send, 415, "invalid_argument", "send the form as application/x-www-form-urlencoded"
        )
        return None
    try:
        body = await r.read_body(receive, _MAX_FORM)
    except r.TooLarge:
        await r.error(send, 413, "resource_exhausted", f"form: larger than {_MAX_FORM} bytes")
        return None
    except r.Gone:
        return None
    try:
        fields = urllib.parse.parse_qs(
            body.decode("ascii"), keep_blank_values=True, max_num_fields=8, errors="strict"
        )
    except ValueError:
        await r.error(send, 400, "invalid_argument", "form: not a valid urlencoded form")
        return None
    form = {}
    for name, values in fields.items():
        if len(values) != 1:
            await r.error(send, 400, "invalid_argument", f"form: {name}: expected one value")
            return None
        form[name] = values[0]
    return form


async def _not_allowed(send: r.Send, path: str, allow: str) -> None:
    await r.respond_json(
        send,
        405,
        {"code": "unimplemented", "message": f"{path} answers {allow} only"},
        [(b"allow", allow.encode())],
    )
