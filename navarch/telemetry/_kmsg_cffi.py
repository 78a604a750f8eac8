"""The C kernel-log engine: csrc/telemetry_kmsg.c and telemetry_xid.c through navarch._telemetry.

Same interface as _kmsg_python. A drain is one C call that reads and parses every record the
source has ready; Python objects are built only for the records that the caller keeps.
"""

from __future__ import annotations

import os

from navarch.telemetry import _native, records

ffi, lib = _native.loaded()

BACKEND = "cffi"
MODE_DEVICE = lib.NAVARCH_KMSG_MODE_DEVICE
MODE_STREAM = lib.NAVARCH_KMSG_MODE_STREAM
AGAIN = lib.NAVARCH_KMSG_AGAIN
FULL = lib.NAVARCH_KMSG_FULL
EOF = lib.NAVARCH_KMSG_EOF


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _ascii(field: _native.CChars) -> str:
    return ffi.string(field).decode("ascii")


def _event(
    x: _native.Xid, text: bytes, source: records.XidSource, seq: int | None, ts_usec: int | None
) -> records.XidEvent:
    action = nvlink5 = None
    if x.has_action:
        action = records.RecoveryActionChange(
            old=x.action_old,
            old_name=_ascii(x.action_old_name),
            new=x.action_new,
            new_name=_ascii(x.action_new_name),
        )
    if x.has_nvlink:
        nvlink5 = records.NvLink5Error(
            unit=_ascii(x.nvl_unit),
            fatal=bool(x.nvl_fatal),
            containment=x.nvl_containment,
            link=x.nvl_link,
            intrinfo=x.nvl_intrinfo,
            error_status=x.nvl_error_status if x.nvl_has_error_status else None,
        )
    name = ffi.string(x.name)
    off = x.detail_off
    return records.XidEvent(
        code=x.code,
        pci_bus_id=_ascii(x.pci_bus_id),
        pci_raw=_ascii(x.pci_raw),
        message=_decode(text[off : off + x.detail_len]),
        pid=x.pid,
        process_name=_decode(name) if name else None,
        inferred=bool(x.inferred),
        recovery_action=action,
        nvlink5=nvlink5,
        source=source,
        seq=seq,
        ts_usec=ts_usec,
    )


def parse_xid(text: bytes, *, source: records.XidSource = "text") -> records.XidEvent | None:
    out = ffi.new("navarch_xid *")
    if not lib.navarch_xid_parse(text, len(text), out):
        return None
    return _event(out, text, source, None, None)


def _record(rec: _native.KmsgRecord) -> records.KmsgRecord:
    text = ffi.unpack(rec.text, rec.text_len)
    seq = rec.seq
    ts_usec = rec.ts_usec
    return records.KmsgRecord(
        seq=seq,
        ts_usec=ts_usec,
        facility=rec.facility,
        level=rec.level,
        flag=chr(rec.flag),
        text=_decode(text),
        truncated=bool(rec.truncated),
        xid=_event(rec.xid, text, "kmsg", seq, ts_usec) if rec.xid.code else None,
    )


def parse_record(rec: bytes, *, trust_user: bool = False) -> records.KmsgRecord | None:
    out = ffi.new("navarch_kmsg_record *")
    if not lib.navarch_kmsg_parse_record(rec, len(rec), int(trust_user), out):
        return None
    return _record(out)


class Drain:
    """Owns one navarch_kmsg_reader and the record array that each drain fills."""

    def __init__(self, fd: int, mode: int, *, trust_user: bool = False) -> None:
        self._r = ffi.new("navarch_kmsg_reader *")
        lib.navarch_kmsg_reader_init(self._r, fd, mode)
        self._r.trust_user = int(trust_user)
        self._out = ffi.new("navarch_kmsg_record[]", 0)
        self._cap = 0
        self._n = ffi.new("uint32_t *")

    @property
    def read_size(self) -> int:
        return int(self._r.read_size)

    @read_size.setter
    def read_size(self, size: int) -> None:
        self._r.read_size = size

    @property
    def last_seq(self) -> int | None:
        return int(self._r.last_seq) if self._r.has_last else None

    def resume_after(self, seq: int) -> None:
        self._r.has_skip = 1
        self._r.skip_through = seq
        self._r.has_last = 1
        self._r.last_seq = seq

    def stats(self) -> records.KmsgStats:
        return records.KmsgStats.read_from(self._r)

    def drain(self, cap: int, *, only_xid: bool = False) -> tuple[int, list[records.KmsgRecord]]:
        if cap > self._cap:
            self._out = ffi.new("navarch_kmsg_record[]", cap)
            self._cap = cap
        flags = lib.NAVARCH_KMSG_ONLY_XID if only_xid else 0
        status = lib.navarch_kmsg_drain(self._r, self._out, cap, flags, self._n)
        out = self._out
        records = [_record(out[i]) for i in range(self._n[0])]
        if status < 0:
            raise OSError(-status, os.strerror(-status))
        return status, records
