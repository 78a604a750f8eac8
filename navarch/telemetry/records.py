"""What the kernel log yields: XID events, kmsg records and a reader's counters.

These values are shared by the parsers (`xid`, `kmsg`) and the two engines that do the parsing
(the C one in navarch._telemetry and the pure-Python fallback), so that the engines need neither
of the modules that choose them.
"""

from __future__ import annotations

from typing import Literal

import attrs

# Where an XID was read: a kmsg record, or a line of text (dmesg, the journal, a file).
XidSource = Literal["kmsg", "text"]


@attrs.frozen
class RecoveryActionChange:
    """XID 154: the driver's recovery action for the GPU (NVML's GPU_RECOVERY_ACTION values)."""

    old: int
    old_name: str
    new: int
    new_name: str


@attrs.frozen
class NvLink5Error:
    """The fields of an NVLink5 XID (144-150): `UNIT Fatal XC0 i0 Link 08 (0x... 0x... ...)`."""

    unit: str  # one word or several: "NETIR_LINK_EVT", "MSE Degraded"
    fatal: bool
    containment: int  # the n of "XCn"
    link: int  # -1 when the event concerns no single link
    intrinfo: int  # the first hex value
    error_status: int | None  # the second hex value

    @property
    def subcode(self) -> int:
        """Bits 20-25 of intrinfo, the key into NVIDIA's NVLink5 decode table."""
        return (self.intrinfo >> 20) & 0x3F


@attrs.frozen
class XidEvent:
    """One XID the driver logged, from a kmsg record (`source="kmsg"`) or a line of text."""

    code: int
    pci_bus_id: str  # NVML's form: 00000000:3B:00.0
    pci_raw: str  # as the line wrote it: PCI:0000:3b:00, or 18:00.0 without a domain
    message: str  # the text after the XID fields
    pid: int = -1  # -1 when the line gives none or "<unknown>"
    process_name: str | None = None
    inferred: bool = False  # a fallen-off-the-bus line without an XID number, reported as 79
    recovery_action: RecoveryActionChange | None = None
    nvlink5: NvLink5Error | None = None
    source: XidSource = "text"
    seq: int | None = None  # the kmsg record's sequence number
    ts_usec: int | None = None  # the kmsg record's time, microseconds since boot


@attrs.frozen
class KmsgRecord:
    seq: int
    ts_usec: int  # microseconds since boot
    facility: int  # 0 is the kernel; userspace writes land in 1 (user) and above
    level: int
    flag: str  # "-", or "c" for a continuation fragment
    text: str  # the message, escaped as the kernel escapes it (\xNN); at most 1023 bytes
    truncated: bool
    xid: XidEvent | None  # set only for kernel-facility records


@attrs.frozen
class KmsgStats:
    records: int  # well-formed records after the resume point
    xids: int
    lost: int  # sequence numbers never read: overwritten by the kernel, or skipped as too large
    overruns: int  # times the kernel overwrote the reader's position (EPIPE)
    malformed: int  # lines or records that are not kmsg records
    oversized: int  # records or lines too large to read, skipped
    skipped: int  # records at or before the resume point

    @classmethod
    def read_from(cls, counters: object) -> KmsgStats:
        """The counters of an engine (the C reader's struct or the Python reader) by name."""
        return cls(**{f.name: int(getattr(counters, f.name)) for f in attrs.fields(cls)})
