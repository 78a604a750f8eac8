"""navarch's HTTP/1.1 server: h11 parses, trio carries, an ASGI app answers.

`serve_http` serves an ASGI app on listening sockets with the limits the control plane needs:
request headers within a deadline (408 and close), request bodies within a deadline (408 with a
Connect error), at most so many connections at once (the rest wait in the listen backlog), a size
cap on the request line and headers, keep-alive with an idle timeout, pipelining one request at
a time, `Expect: 100-continue`, `http.disconnect` when a client goes away while it waits for its
answer, TLS through `trio.SSLStream`, the ASGI lifespan protocol and a graceful shutdown.

`connection` serves one connection, `serving` accepts them and shuts down, `lifespan` runs the
app's startup and shutdown, `config` holds the transport settings.
"""

from navarch.api.http.config import App, HttpConfig
from navarch.api.http.serving import serve_http

__all__ = ["App", "HttpConfig", "serve_http"]
