"""GPU telemetry on the node: NVML samples and events, and the kernel log's XID records."""

from navarch.telemetry._native import BACKEND
from navarch.telemetry.kmsg import KmsgReader, KmsgRecord, KmsgStats, ResumePosition
from navarch.telemetry.nvml import (
    GpuInventory,
    GpuSample,
    LibraryNotFound,
    Nvml,
    NVMLError,
    NvmlEvent,
    inventory,
    open_nvml,
)
from navarch.telemetry.xid import XidEvent, parse_line

__all__ = [
    "BACKEND",
    "GpuInventory",
    "GpuSample",
    "KmsgReader",
    "KmsgRecord",
    "KmsgStats",
    "LibraryNotFound",
    "NVMLError",
    "Nvml",
    "NvmlEvent",
    "ResumePosition",
    "XidEvent",
    "inventory",
    "open_nvml",
    "parse_line",
]
