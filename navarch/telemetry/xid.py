"""NVIDIA XID events as the driver writes them to the kernel log.

`parse_line` turns one line of text (a dmesg or journal line, or a kmsg record's message) into an
`XidEvent`, or None. It accepts every format in docs/xid.md: with and without the `PCI:` prefix,
any PCI domain width, a bare code with nothing after it, `pid=` and `name=` present, absent,
unknown or ending the line, the fallen-off-the-bus lines that carry no XID number (reported as
XID 79, with or without a PCI domain), XID 154 recovery-action changes and the NVLink5 (144-150)
fields, padded or not, with link -1. PCI addresses come out in NVML's form, `00000000:3B:00.0`,
so an event maps to the GPU index and UUID that NVML reports. Text that does not match in full
yields None.
"""

from __future__ import annotations

import re

from navarch.telemetry import _kmsg_engine
from navarch.telemetry.records import NvLink5Error, RecoveryActionChange, XidEvent, XidSource

__all__ = [
    "NvLink5Error",
    "RecoveryActionChange",
    "XidEvent",
    "XidSource",
    "normalize_bus_id",
    "parse_line",
]


def parse_line(line: str | bytes) -> XidEvent | None:
    """The XID event in one line of kernel log text, or None."""
    if isinstance(line, str):
        # surrogatepass keeps every str encodable; the fields that matter are ASCII anyway.
        line = line.encode("utf-8", "surrogatepass")
    return _kmsg_engine.current().parse_xid(line, source="text")


_BUS_ID = re.compile(
    r"(?:PCI:)?([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})(?:\.([0-7]))?"
    r"|()([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])"
)


def normalize_bus_id(bus_id: str) -> str | None:
    """A PCI address in NVML's form (`00000000:3B:00.0`), or None if `bus_id` is not one.

    Accepts what the kernel log and NVML write: `PCI:0000:3b:00`, `0000:3b:00.0`,
    `00000000:3B:00.0`, and lspci's `3b:00.0`, which has no domain (domain 0).
    """
    m = _BUS_ID.fullmatch(bus_id.strip())
    if m is None:
        return None
    first = 1 if m.group(2) is not None else 5
    domain, bus, device = (int(g or "0", 16) for g in m.group(first, first + 1, first + 2))
    if device > 0x1F:
        return None
    return f"{domain:08X}:{bus:02X}:{device:02X}.{int(m.group(first + 3) or 0):X}"
