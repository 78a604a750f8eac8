"""The `redis` metrics source: the length of a Redis list (LLEN) or stream (XLEN).

It speaks RESP, Redis's protocol, over a trio socket itself: the three commands it sends (AUTH,
SELECT, LLEN or XLEN) need a few lines, where redis-py would add a dependency whose asyncio client
does not run under trio and whose blocking client would need a thread each round.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import attrs
from attrs import frozen

from navarch.plugins import NavarchError, validators
from navarch.plugins.builtin.metrics.secrets import from_env

if TYPE_CHECKING:
    import trio

_COMMANDS = {"list": b"LLEN", "stream": b"XLEN"}
# The longest reply line read: a length, a number or an error message.
_MAX_LINE = 64 * 1024


@frozen(kw_only=True)
class RedisSettings:
    host: str = "127.0.0.1"
    port: int = attrs.field(default=6379, validator=validators.between(1, 65535))
    db: int = attrs.field(default=0, validator=validators.at_least(0))
    # The key of the queue; `{pool}` is replaced by the pool's name.
    key: str
    # "list" counts with LLEN (Celery, RQ, Sidekiq queues), "stream" with XLEN.
    kind: str = attrs.field(default="list", validator=validators.one_of(*_COMMANDS))
    # An ACL user (Redis 6 and later); empty logs in with the password alone.
    username: str = ""
    # The environment variable that holds the password; empty sends no AUTH.
    password_env: str = ""
    timeout: timedelta = attrs.field(default=timedelta(seconds=5), validator=validators.positive)


class RedisSource:
    Settings = RedisSettings

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self._password = from_env("redis", "password_env", settings.password_env)

    async def queue_depth(self, pool: str) -> int | None:
        import trio  # here, so that loading the plugin keeps every navarch command fast

        s = self.settings
        key = s.key.replace("{pool}", pool)
        commands: list[tuple[str, ...]] = []
        if self._password:
            commands.append(("AUTH", *((s.username,) if s.username else ()), self._password))
        if s.db:
            commands.append(("SELECT", str(s.db)))
        commands.append((_COMMANDS[s.kind].decode(), key))
        where = f"redis {s.host}:{s.port}"
        try:
            with trio.fail_after(s.timeout.total_seconds()):
                replies = await _call(s.host, s.port, commands)
        except trio.TooSlowError:
            raise NavarchError(
                f"{where}: no answer within {s.timeout.total_seconds():g}s"
            ) from None
        except (OSError, ValueError) as exc:
            raise NavarchError(f"{where}: {exc}") from exc
        for command, reply in zip(commands, replies, strict=True):
            shown = " ".join(command[:1] if command[0] == "AUTH" else command)
            if isinstance(reply, RedisError):
                raise NavarchError(f"{where}: {shown}: {reply}")
        depth = replies[-1]
        if not isinstance(depth, int):
            raise NavarchError(f"{where}: {shown} answered {depth!r}, not a length")
        return depth


class RedisError(str):
    """An error reply (`-WRONGTYPE ...`), kept as a reply so that each command's is reported."""


async def _call(host: str, port: int, commands: list[tuple[str, ...]]) -> list[str | int]:
    """Sends `commands` in one write (a pipeline) and reads one reply to each."""
    import trio

    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        out = bytearray()
        for command in commands:
            out += b"*%d\r\n" % len(command)
            for arg in command:
                data = arg.encode()
                out += b"$%d\r\n%s\r\n" % (len(data), data)
        await stream.send_all(bytes(out))
        reader = _Reader(stream)
        return [await reader.reply() for _ in commands]


class _Reader:
    """Reads the replies the commands above get: a status, an error or an integer."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def reply(self) -> str | int:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > _MAX_LINE:
                raise ValueError("a reply line is too long; is this a Redis server?")
            data = await self._stream.receive_some()
            if not data:
                raise ValueError("the server closed the connection")
            self._buffer += data
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        kind, rest = line[:1], line[1:].decode(errors="replace")
        if kind == b"+":
            return rest
        if kind == b"-":
            return RedisError(rest)
        if kind == b":":
            return int(rest)
        raise ValueError(f"unexpected reply {line[:80]!r}; is this a Redis server?")
