"""GPU telemetry for health-check plugins: NVML's readings and codes, and the kernel log.

Importing this module loads the telemetry extension; a health check imports it when it runs, not
when its plugin loads, so that `navarch --help` stays fast.
"""

from __future__ import annotations

from navarch.telemetry.kmsg import KmsgReader, ResumePosition
from navarch.telemetry.nvml import GpuSample, RecoveryAction
from navarch.telemetry.nvml import Return as NvmlReturn
from navarch.telemetry.xid import XidEvent, normalize_bus_id

__all__ = [
    "GpuSample",
    "KmsgReader",
    "NvmlReturn",
    "RecoveryAction",
    "ResumePosition",
    "XidEvent",
    "normalize_bus_id",
]
