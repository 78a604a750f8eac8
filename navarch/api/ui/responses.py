"""How the dashboard's routes answer: every answer carries the security headers below, and the
request bodies they read are capped."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Any], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# The pages load scripts, styles and data from this origin alone and run no inline script, so an
# injected tag can neither run nor send anything elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: Headers = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
NO_STORE: Headers = [(b"cache-control", b"no-store")]


class TooLarge(Exception):
    """A request body over its cap."""


class Gone(Exception):
    """The client went away while its request body arrived."""


def request_headers(scope: Mapping[str, Any]) -> dict[bytes, bytes]:
    """The request's headers by name. ASGI servers give names in lower case; the first of
    repeated headers wins."""
    headers: dict[bytes, bytes] = {}
    for key, value in scope["headers"]:
        headers.setdefault(key, value)
    return headers


async def respond(
    send: Send,
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    headers: Headers | None = None,
) -> None:
    """One whole answer, with the security headers and `no-store` unless `headers` has its own
    Cache-Control."""
    extra = list(headers or [])
    if not any(name == b"cache-control" for name, _ in extra):
        extra += NO_STORE
    if status != 304:  # a 304's length would be taken for the length of the cached file
        extra.append((b"content-length", str(len(body)).encode()))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode()), *SECURITY_HEADERS, *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_json(
    send: Send, status: int, document: object, headers: Headers | None = None
) -> None:
    await respond(send, status, json.dumps(document).encode(), "application/json", headers)


async def error(send: Send, status: int, code: str, message: str) -> None:
    """A Connect-style error body, as the API answers, so the page reads both the same way."""
    await respond_json(send, status, {"code": code, "message": message})


async def redirect(send: Send, location: str, headers: Headers | None = None) -> None:
    """303 See Other: the browser follows with a GET."""
    await respond(send, 303, b"", headers=[(b"location", location.encode()), *(headers or [])])


async def read_body(receive: Receive, cap: int) -> bytes:
    """The request body, read in chunks; TooLarge past `cap` bytes, Gone if the client left."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Gone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
