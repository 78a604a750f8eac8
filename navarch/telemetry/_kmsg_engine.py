"""Picks the kernel-log engine: the C one when navarch._telemetry is in use, else pure Python."""

from __future__ import annotations

import functools
from types import ModuleType


@functools.cache
def current() -> ModuleType:
    from navarch.telemetry import _native

    if _native.BACKEND == "cffi":
        from navarch.telemetry import _kmsg_cffi

        return _kmsg_cffi
    from navarch.telemetry import _kmsg_python

    return _kmsg_python
