"""The `rabbitmq` metrics source: the ready messages of a RabbitMQ queue, over AMQP 0-9-1.

It opens a connection, declares the queue passively (which creates nothing and answers with the
queue's message count) and closes the connection again. It speaks the protocol over a trio socket
itself: the five methods it needs are a page of code, where pika or aio-pika would add a
dependency that runs on threads or asyncio rather than trio, and the management API is a plugin
that a broker need not enable.
"""

from __future__ import annotations

import struct
from datetime import timedelta
from typing import TYPE_CHECKING

import attrs
from attrs import frozen

from navarch.plugins import NavarchError, validators
from navarch.plugins.builtin.metrics.secrets import from_env

if TYPE_CHECKING:
    import trio

_HEADER = b"AMQP\x00\x00\x09\x01"
_FRAME_END = b"\xce"
_METHOD, _HEARTBEAT = 1, 8
# (class, method) of the methods used.
_START, _START_OK = (10, 10), (10, 11)
_TUNE, _TUNE_OK = (10, 30), (10, 31)
_OPEN, _OPEN_OK = (10, 40), (10, 41)
_CLOSE, _CLOSE_OK = (10, 50), (10, 51)
_CHANNEL_OPEN, _CHANNEL_OPEN_OK = (20, 10), (20, 11)
_CHANNEL_CLOSE = (20, 40)
_DECLARE, _DECLARE_OK = (50, 10), (50, 11)
_PASSIVE = 1
# The largest frame read; the broker's own default is 128 KiB.
_MAX_FRAME = 1 << 20


@frozen(kw_only=True)
class RabbitMqSettings:
    host: str = "127.0.0.1"
    port: int = attrs.field(default=5672, validator=validators.between(1, 65535))
    vhost: str = "/"
    # The queue to count; `{pool}` is replaced by the pool's name.
    queue: str
    username: str = "guest"
    # The environment variable that holds the password; empty sends an empty password.
    password_env: str = ""
    timeout: timedelta = attrs.field(default=timedelta(seconds=5), validator=validators.positive)


class RabbitMqSource:
    Settings = RabbitMqSettings

    def __init__(self, settings: RabbitMqSettings) -> None:
        self.settings = settings
        self._password = from_env("rabbitmq", "password_env", settings.password_env)

    async def queue_depth(self, pool: str) -> int | None:
        import trio  # here, so that loading the plugin keeps every navarch command fast

        s = self.settings
        queue = s.queue.replace("{pool}", pool)
        where = f"rabbitmq {s.host}:{s.port}"
        try:
            with trio.fail_after(s.timeout.total_seconds()):
                stream = await trio.open_tcp_stream(s.host, s.port)
                async with stream:
                    connection = _Connection(stream)
                    await connection.open(s.username, self._password, s.vhost)
                    count = await connection.message_count(queue)
                    await connection.close()
        except trio.TooSlowError:
            raise NavarchError(
                f"{where}: no answer within {s.timeout.total_seconds():g}s"
            ) from None
        except (OSError, ValueError, struct.error) as exc:
            raise NavarchError(f"{where}: {exc}") from exc
        return count


class _Connection:
    """One AMQP connection with one channel, as far as a passive queue.declare needs."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def open(self, username: str, password: str, vhost: str) -> None:
        await self._stream.send_all(_HEADER)
        await self._expect(0, _START)
        # Without this capability RabbitMQ answers bad credentials by closing the socket.
        properties = _table({"capabilities": {"authentication_failure_close": True}})
        response = f"\0{username}\0{password}".encode()
        await self._send(
            0,
            _START_OK,
            properties + _short("PLAIN") + _long(response) + _short("en_US"),
        )
        tune = await self._expect(0, _TUNE)
        channel_max, frame_max, _heartbeat = struct.unpack(">HIH", tune[:8])
        # A heartbeat of 0 turns heartbeats off: the connection lasts one query.
        await self._send(0, _TUNE_OK, struct.pack(">HIH", channel_max, frame_max, 0))
        await self._send(0, _OPEN, _short(vhost) + _short("") + b"\0")
        await self._expect(0, _OPEN_OK)
        await self._send(1, _CHANNEL_OPEN, _short(""))
        await self._expect(1, _CHANNEL_OPEN_OK)

    async def message_count(self, queue: str) -> int:
        # A reserved short, the queue, the flags, and an empty table of arguments.
        arguments = struct.pack(">H", 0) + _short(queue) + bytes([_PASSIVE]) + _long(b"")
        await self._send(1, _DECLARE, arguments)
        declare_ok = await self._expect(1, _DECLARE_OK)
        size = declare_ok[0]
        count, _consumers = struct.unpack(">II", declare_ok[1 + size : 9 + size])
        return int(count)

    async def close(self) -> None:
        await self._send(0, _CLOSE, struct.pack(">H", 200) + _short("") + struct.pack(">HH", 0, 0))
        await self._expect(0, _CLOSE_OK)

    async def _send(self, channel: int, method: tuple[int, int], arguments: bytes) -> None:
        payload = struct.pack(">HH", *method) + arguments
        frame = struct.pack(">BHI", _METHOD, channel, len(payload)) + payload + _FRAME_END
        await self._stream.send_all(frame)

    async def _expect(self, channel: int, method: tuple[int, int]) -> bytes:
        """Reads the next method frame, which must be `method`; returns its arguments. A close
        from the broker instead (bad credentials, no such queue) is raised with its reply."""
        while True:
            kind, got_channel, payload = await self._frame()
            if kind == _HEARTBEAT:
                continue
            got = struct.unpack(">HH", payload[:4])
            if got in (_CLOSE, _CHANNEL_CLOSE):
                code = struct.unpack(">H", payload[4:6])[0]
                text = payload[7 : 7 + payload[6]].decode(errors="replace")
                raise ValueError(f"{code} {text}")
            if kind != _METHOD or got != method or got_channel != channel:
                raise ValueError(f"expected method {method} on channel {channel}, got {got}")
            return payload[4:]

    async def _frame(self) -> tuple[int, int, bytes]:
        while True:
            if len(self._buffer) >= 7:
                kind, channel, size = struct.unpack(">BHI", self._buffer[:7])
                if size > _MAX_FRAME:
                    raise ValueError(f"a frame of {size} bytes; is this an AMQP 0-9-1 broker?")
                if len(self._buffer) >= 8 + size:
                    if self._buffer[7 + size : 8 + size] != _FRAME_END:
                        raise ValueError("a malformed frame; is this an AMQP 0-9-1 broker?")
                    payload = bytes(self._buffer[7 : 7 + size])
                    del self._buffer[: 8 + size]
                    return kind, channel, payload
            data = await self._stream.receive_some()
            if not data:
                raise ValueError(_closed(self._buffer))
            self._buffer += data


def _closed(buffer: bytearray) -> str:
    # A broker that does not speak 0-9-1 answers the header with the one it speaks, and closes.
    if buffer.startswith(b"AMQP"):
        return f"the broker speaks another AMQP version ({bytes(buffer[4:8]).hex()})"
    return "the broker closed the connection"


def _short(text: str) -> bytes:
    data = text.encode()
    return bytes([len(data)]) + data


def _long(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _table(values: dict[str, object]) -> bytes:
    """An AMQP field table of booleans and nested tables, the only values sent here."""
    body = b""
    for name, value in values.items():
        if isinstance(value, bool):
            body += _short(name) + b"t" + bytes([value])
        elif isinstance(value, dict):
            body += _short(name) + b"F" + _table(value)
    return _long(body)
