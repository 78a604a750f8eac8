"""The client's HTTP/1.1 connections to control planes: h11 on trio sockets, kept alive.

`Connections.post` sends one request and reads its whole reply, on a connection to the URL's
origin that it keeps open for the next request. It is what a daemon needs and no more, so that a
daemon at rest stays small: httpx alone costs a daemon more memory than all of this module's
work, and builds an SSL context with its CA bundle even for http.

- Keep-alive: at most `max_per_origin` connections per origin, reused while the control plane
  keeps them open. An idle connection the control plane closed, or that has bytes waiting, is
  dropped when it would be reused, so a request is not sent into a closing connection.
- Timeouts: connecting (with the TLS handshake) must finish within the call's timeout, and so
  must sending the request and reading its reply.
- TLS: the context is built on the first https connection, never for http. It verifies the
  certificate and the host name against the CA certificates of `SSL_CERT_FILE` or
  `SSL_CERT_DIR` when set, else certifi's bundle (as httpx does).
- Failures: `SendFailed` says in a few words why, and whether the request surely never left
  (`unsent`), which is when a caller may send it to another control plane.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

import h11
import trio
from attrs import frozen

from navarch import __version__

__all__ = ["Connections", "Exchange", "Reply", "SendFailed", "failure_reason"]

# The largest reply body read; a longer one fails the call rather than the client's memory.
MAX_REPLY_BYTES = 256 * 2**20
# The largest reply head (status line and headers).
MAX_HEAD_BYTES = 64 * 1024
_READ_SIZE = 64 * 1024
_USER_AGENT = f"navarch/{__version__}"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@frozen
class Reply:
    status: int
    # Header names in lower case; a header sent several times has its values joined by ", ".
    headers: Mapping[str, str]
    body: bytes


class SendFailed(Exception):
    """A request found no reply: `reason` says why in a few words; `unsent` is True when the
    request surely never reached the control plane (no connection, or no TLS session)."""

    def __init__(self, reason: str, *, unsent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unsent = unsent


class Exchange(Protocol):
    """Sends a POST and reads its reply; `HttpClient` speaks Connect over one of these."""

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Reply: ...

    async def aclose(self) -> None: ...


_Origin = tuple[str, str, int]


class _Connection:
    """One open connection and its h11 state machine."""

    def __init__(self, stream: trio.abc.Stream, sock: trio.socket.SocketType) -> None:
        self.stream = stream
        self._socket = sock
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)

    def stale(self) -> bool:
        """True when the control plane closed it, or sent what no request asked for."""
        # poll, not select: select refuses descriptors past 1023.
        poller = select.poll()
        try:
            poller.register(self._socket.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    async def exchange(self, request: h11.Request, body: bytes) -> Reply:
        conn = self.h11
        await self.stream.send_all(
            conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        )
        status = 0
        headers: dict[str, str] = {}
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await self.stream.receive_some(_READ_SIZE)))
            elif isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    key, text = name.decode("latin-1"), value.decode("latin-1")
                    headers[key] = f"{headers[key]}, {text}" if key in headers else text
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_REPLY_BYTES:
                    raise _TooLarge
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return Reply(status, headers, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("closed before a reply")
            # An InformationalResponse (100 Continue) is followed by the real one.

    def reusable(self) -> bool:
        conn = self.h11
        # Bytes after the reply answer no request: the next call would read them as its reply.
        if (
            conn.our_state is h11.DONE
            and conn.their_state is h11.DONE
            and not conn.trailing_data[0]
        ):
            conn.start_next_cycle()
            return True
        return False

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            try:
                await trio.aclose_forcefully(self.stream)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass


class _TooLarge(Exception):
    pass


class Connections:
    """Keep-alive HTTP/1.1 connections to any number of origins; see the module's docstring."""

    def __init__(self, *, max_per_origin: int = 10) -> None:
        self._max_per_origin = max_per_origin
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._slots: dict[_Origin, trio.Semaphore] = {}
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Reply:
        not_a_url = SendFailed(f"not an http or https URL with a host: {url!r}", unsent=True)
        try:
            parts = urlsplit(url)
            scheme, host = parts.scheme, parts.hostname
            port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
        except ValueError:
            raise not_a_url from None
        if scheme not in _DEFAULT_PORTS or not host or not port:
            raise not_a_url
        if self._closed:
            raise SendFailed("the client is closed", unsent=True)
        origin = (scheme, host, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rpartition("@")[2]
        try:
            request = h11.Request(
                method="POST",
                target=target,
                headers=[
                    ("Host", netloc),
                    ("User-Agent", _USER_AGENT),
                    ("Content-Length", str(len(body))),
                    *headers.items(),
                ],
            )
        except (ValueError, h11.LocalProtocolError) as exc:
            # A URL or header value that HTTP/1.1 cannot carry (a line break, a character
            # outside ASCII): nothing was sent.
            raise SendFailed(f"cannot send to {url!r}: {exc}", unsent=True) from None
        slots = self._slots.get(origin)
        if slots is None:
            slots = self._slots[origin] = trio.Semaphore(self._max_per_origin)
        async with slots:
            connection = await self._take_idle(origin)
            if connection is None:
                connection = await self._connect(origin, timeout)
            try:
                with trio.fail_after(timeout):
                    reply = await connection.exchange(request, body)
            except trio.TooSlowError:
                await connection.aclose()
                raise SendFailed(f"no reply within {timeout:g}s", unsent=False) from None
            except _TooLarge:
                await connection.aclose()
                raise SendFailed(
                    f"the reply is larger than {MAX_REPLY_BYTES // 2**20} MiB", unsent=False
                ) from None
            except h11.ProtocolError as exc:
                await connection.aclose()
                reason = (
                    "the connection closed before a reply"
                    if isinstance(exc, h11.RemoteProtocolError)
                    else f"the reply broke HTTP/1.1 ({exc})"
                )
                raise SendFailed(reason, unsent=False) from exc
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                await connection.aclose()
                raise SendFailed(failure_reason(exc), unsent=False) from exc
            except BaseException:
                await connection.aclose()
                raise
            if not self._closed and connection.reusable():
                self._idle.setdefault(origin, []).append(connection)
            else:
                await connection.aclose()
            return reply

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()

    async def _take_idle(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.stale():
                return connection
            await connection.aclose()
        return None

    async def _connect(self, origin: _Origin, timeout: float) -> _Connection:
        scheme, host, port = origin
        stream: trio.abc.Stream | None = None
        try:
            with trio.fail_after(timeout):
                tcp = await trio.open_tcp_stream(host, port)
                stream = tcp
                if scheme == "https":
                    tls = trio.SSLStream(
                        tcp, self._tls_context(), server_hostname=host, https_compatible=True
                    )
                    stream = tls
                    await tls.do_handshake()
        except trio.TooSlowError:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise SendFailed("connection timed out", unsent=True) from None
        except (OSError, trio.BrokenResourceError) as exc:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise SendFailed(failure_reason(exc), unsent=True) from exc
        except UnicodeError:
            # A host name IDNA cannot encode (a label over 63 characters, say).
            raise SendFailed(f"not a host name: {host!r}", unsent=True) from None
        except BaseException:
            if stream is not None:  # cancelled during the handshake: the socket is not kept
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(stream)
            raise
        return _Connection(stream, tcp.socket)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = _verifying_context()
        return self._tls


def _verifying_context() -> ssl.SSLContext:
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def failure_reason(exc: BaseException) -> str:
    """A few words on why a request found no control plane, from the error and its causes."""
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
            if cause.errno in (errno.ECONNRESET, errno.EPIPE):
                return "connection reset"
            return (cause.strerror or str(cause)).lower()
        if isinstance(cause, trio.BrokenResourceError) and cause.__cause__ is None:
            return "connection reset"
    text = str(exc).strip()
    if text.startswith("[Errno"):
        text = text.partition("] ")[2]
    return text.lower() or type(exc).__name__


def _untrusted(exc: ssl.SSLCertVerificationError) -> str:
    if exc.verify_code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
        return f"its TLS certificate is not for this address ({exc.verify_message})"
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
