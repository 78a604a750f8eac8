"""Builders of health events for the policy tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from navarch.model import HealthEvent, HealthEventType

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(kind: str, *, at: float = 0.0, gpu: int = 0, **fields) -> HealthEvent:
    """An event of type `kind` ("xid", "thermal", ...) at `at` seconds after T0."""
    return HealthEvent(
        type=HealthEventType(kind),
        time=T0 + timedelta(seconds=at),
        gpu_index=gpu,
        **fields,
    )


def xid(code: int, *, pid: int | str | None = None, at: float = 0.0, gpu: int = 0, **fields):
    details = dict(fields.pop("details", {}))
    if pid is not None:
        details["pid"] = str(pid)
    return event("xid", at=at, gpu=gpu, xid=code, details=details, **fields)
