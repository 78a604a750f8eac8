"""The event a kernel-log watch reports when it cannot read the log, shared by the checks that
watch it (`xid`, `nvswitch`)."""

from __future__ import annotations

from navarch.plugins import HealthEvent, HealthEventType, NodeWatch


def kmsg_failure(node: NodeWatch, check: str, path: str, exc: BaseException) -> HealthEvent:
    """A `check_failed` event saying that reading the kernel log at `path` failed."""
    return HealthEvent(
        type=HealthEventType.CHECK_FAILED,
        time=node.wall_clock(),
        message=f"reading the kernel log {path} failed: {exc}",
        details={"check": check, "source": "kmsg"},
    )
