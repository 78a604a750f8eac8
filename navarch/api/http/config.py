"""The HTTP server's transport settings and the shape of the app it serves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

# An ASGI 3 app as navarch's server calls it: scopes and received messages are dicts, sent
# messages are read as mappings.
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
App = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
# An app's early refusal (its `shed` attribute, where it has one): given a request's method and
# target, the whole HTTP answer that refuses it, or None to serve it. The server asks it before
# parsing a request that arrived whole, so that refusing under load costs little; a request it
# lets through reaches the app with `scope["extensions"]["navarch.shed"]` set.
Shed = Callable[[bytes, bytes], bytes | None]

# h11's default cap on a request line and its headers, as hypercorn had it.
MAX_HEADER_BYTES = 16 * 1024


@attrs.define(kw_only=True)
class HttpConfig:
    """How the server listens and keeps connections; the request limits come with each call."""

    # HOST:PORT; an IPv6 host is written in brackets.
    listen: str
    # An idle keep-alive connection is closed after this many seconds.
    keep_alive_timeout: float = 75.0
    # After a shutdown, requests in flight get this many seconds before they are cut.
    graceful_timeout: float = 1.5
    # Connections the kernel queues while the server is at `max_connections` or busy.
    backlog: int = 4096
    # A request line and headers larger than this are answered 431 and the connection closed.
    max_header_bytes: int = MAX_HEADER_BYTES
