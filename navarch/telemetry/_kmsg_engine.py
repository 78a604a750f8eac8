"""Picks the kernel-log engine: the C one when navarch._telemetry is in use, else pure Python."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from navarch.telemetry.records import KmsgRecord, KmsgStats, XidEvent, XidSource


class Drain(Protocol):
    """One reader's position, counters and buffers, as `Engine.Drain` builds it."""

    @property
    def last_seq(self) -> int | None: ...
    def resume_after(self, seq: int) -> None: ...
    def stats(self) -> KmsgStats: ...
    def drain(self, cap: int, *, only_xid: bool = False) -> tuple[int, list[KmsgRecord]]: ...


class Engine(Protocol):
    """What _kmsg_cffi and _kmsg_python both are, as modules."""

    @property
    def BACKEND(self) -> str: ...
    @property
    def MODE_DEVICE(self) -> int: ...
    @property
    def MODE_STREAM(self) -> int: ...
    @property
    def FULL(self) -> int: ...
    @property
    def EOF(self) -> int: ...
    def Drain(self, fd: int, mode: int, *, trust_user: bool = False) -> Drain: ...
    def parse_record(self, rec: bytes, *, trust_user: bool = False) -> KmsgRecord | None: ...
    def parse_xid(self, text: bytes, *, source: XidSource = "text") -> XidEvent | None: ...


@functools.cache
def current() -> Engine:
    from navarch.telemetry import _native

    if _native.BACKEND == "cffi":
        from navarch.telemetry import _kmsg_cffi

        return _kmsg_cffi
    from navarch.telemetry import _kmsg_python

    return _kmsg_python
