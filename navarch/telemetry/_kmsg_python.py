"""The pure-Python kernel-log engine: the fallback for csrc/telemetry_kmsg.c and telemetry_xid.c.

Every rule here mirrors the C code, down to the buffer sizes that decide when a line is too long,
so both engines give the same records, events and counters for the same input; the tests compare
them on random input. The engines work on bytes and decode only the finished fields.
"""

from __future__ import annotations

import errno
import os
import re
from typing import NamedTuple

from navarch.telemetry import records

BACKEND = "python"
TEXT_LEN = 1024  # NAVARCH_KMSG_TEXT_LEN
BUF_LEN = 16384  # NAVARCH_KMSG_BUF_LEN
DEVICE_READ = 8192  # NAVARCH_KMSG_DEVICE_READ
NAME_LEN = 64  # NAVARCH_XID_NAME_LEN

MODE_DEVICE = 0
MODE_STREAM = 1
AGAIN = 0
FULL = 1
EOF = 2

_U64_MAX = 2**64 - 1
_PCI = rb"(?:PCI:)?([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})(?:\.([0-7]))?"
# lspci's form without a domain, which some fallen-off-the-bus lines print; the empty group stands
# for the domain so that both forms number their groups alike.
_PCI_SHORT = rb"()([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])"
_XID = re.compile(rb"Xid \((" + _PCI + rb")\): ([0-9]{1,5})(?:, *|[ \t\r\n]*\Z)")
_GPU_AT = tuple(
    re.compile(rb"GPU at (" + p + rb") has fallen off the bus") for p in (_PCI, _PCI_SHORT)
)
_GPU = tuple(
    re.compile(rb"GPU (" + p + rb"): GPU has fallen off the bus") for p in (_PCI, _PCI_SHORT)
)
_THE_GPU = tuple(re.compile(rb"The NVIDIA GPU (" + p + rb")") for p in (_PCI, _PCI_SHORT))
_MULTILINE = b"fallen off the bus and is not responding"
_PID = re.compile(rb"pid=(?:'<unknown>'|<unknown>|([0-9]{1,10}))")
_ACTION_NAME = rb"\(([\x20-\x28\x2a-\x7e]{1,47})\)"
_ACTION = re.compile(
    rb"GPU recovery action changed from 0x([0-9a-fA-F]{1,8}) "
    + _ACTION_NAME
    + rb" to 0x([0-9a-fA-F]{1,8}) "
    + _ACTION_NAME
)
# The unit may be several words ("MSE Degraded"), 47 bytes at most; the lazy repeats try the
# shortest unit first, as the C parser tries each word end in turn. Runs of spaces may pad any
# field, and link -1 stands for no single link.
_NVLINK5 = re.compile(
    rb"([A-Za-z0-9_/](?:[A-Za-z0-9_/ ]{0,45}?[A-Za-z0-9_/])??) +(Fatal|Nonfatal) +XC([0-9]{1,2}) +"
    rb"i[0-9]{1,3} +Link +(-?[0-9]{1,3}) +\(0x([0-9a-fA-F]{1,8})(?: +0x([0-9a-fA-F]{1,8}))?"
)
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_UNKNOWN = (b"<unknown>", b"'<unknown>'")
_TRAILING = b" \t\r\n"


class _Found(NamedTuple):
    code: int
    pci: tuple[str, str]  # raw, normalised
    detail: int  # where the message starts
    pid: int
    name: bytes | None
    end: int  # where the message ends
    inferred: bool


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _match(
    patterns: tuple[re.Pattern[bytes], ...], text: bytes, pos: int
) -> re.Match[bytes] | None:
    """The first of `patterns` that matches at `pos`, as the C parser tries each address form."""
    for pattern in patterns:
        if m := pattern.match(text, pos):
            return m
    return None


def _pci(m: re.Match[bytes], group: int) -> tuple[str, str] | None:
    """(raw, normalised) for the address whose groups start at `group`, or None if invalid."""
    device = int(m.group(group + 3), 16)
    if device > 0x1F:
        return None
    domain = int(m.group(group + 1) or b"0", 16)
    bus = int(m.group(group + 2), 16)
    function = int(m.group(group + 4) or b"0")
    raw = m.group(group).decode("ascii")
    return raw, f"{domain:08X}:{bus:02X}:{device:02X}.{function:X}"


def _field_end(text: bytes, p: int, mend: int) -> int | None:
    """Where the next field starts after a value that ends at `p`, or None.

    ", " separates fields, and the last field may end the line (`mend`: the end without trailing
    blanks), with or without a comma.
    """
    if text.startswith(b", ", p):
        return p + 2
    if p == mend or (p + 1 == mend and text[p] == 0x2C):
        return mend
    return None


def _pid_name(text: bytes, p: int, mend: int) -> tuple[int, bytes | None, int]:
    """pid, name and where the message starts; a field that does not parse stays in it."""
    m = _PID.match(text, p)
    if m is None or (after := _field_end(text, m.end(), mend)) is None:
        return -1, None, p
    pid = int(m.group(1)) if m.group(1) is not None else -1
    p = after
    if not text.startswith(b"name=", p):
        return pid, None, p
    ns = p + 5
    ne = text.find(b", ", ns)
    if ne >= 0:
        after = ne + 2
    else:
        after = ne = mend
        if ne > ns and text[ne - 1] == 0x2C:
            ne -= 1
    if not 0 < ne - ns < NAME_LEN or _CONTROL.search(text, ns, ne):
        return pid, None, p
    name = text[ns:ne]
    return pid, (None if name in _UNKNOWN else name), after


def _detail_end(text: bytes, start: int) -> int:
    return start + len(text[start:].rstrip(_TRAILING))


def parse_xid(
    text: bytes,
    *,
    source: records.XidSource = "text",
    seq: int | None = None,
    ts_usec: int | None = None,
    clip: int | None = None,
) -> records.XidEvent | None:
    """The first XID line in `text`; `clip` bounds the message as a record's stored text does."""
    p = text.find(b"NVRM: ")
    while p >= 0:
        q = p + 6
        found = None
        if text.startswith(b"Xid (", q):
            m = _XID.match(text, q)
            if m and (pci := _pci(m, 1)) and (code := int(m.group(6))) > 0:
                mend = _detail_end(text, m.start(6))
                pid, name, detail = _pid_name(text, m.end(), mend)
                found = _Found(code, pci, detail, pid, name, _detail_end(text, detail), False)
        elif text.startswith(b"GPU at ", q):
            if (m := _match(_GPU_AT, text, q)) and (pci := _pci(m, 1)):
                found = _Found(79, pci, q, -1, None, _detail_end(text, q), True)
        elif text.startswith(b"GPU ", q):
            if (m := _match(_GPU, text, q)) and (pci := _pci(m, 1)):
                found = _Found(79, pci, q, -1, None, _detail_end(text, q), True)
        elif text.startswith(b"The NVIDIA GPU ", q):
            m = _match(_THE_GPU, text, q)
            if m and (pci := _pci(m, 1)) and text.find(_MULTILINE, m.end()) >= 0:
                found = _Found(79, pci, q, -1, None, _detail_end(text, q), True)
        if found is not None:
            return _event(text, found, source, seq, ts_usec, clip)
        p = text.find(b"NVRM: ", p + 1)
    return None


def _event(
    text: bytes,
    found: _Found,
    source: records.XidSource,
    seq: int | None,
    ts_usec: int | None,
    clip: int | None,
) -> records.XidEvent:
    code, (raw, bus_id), detail, pid, name, end, inferred = found
    action = nvlink5 = None
    if code == 154 and (m := _ACTION.match(text, detail, end)):
        action = records.RecoveryActionChange(
            old=int(m.group(1), 16),
            old_name=m.group(2).decode("ascii"),
            new=int(m.group(3), 16),
            new_name=m.group(4).decode("ascii"),
        )
    elif 144 <= code <= 150 and (m := _NVLINK5.match(text, detail, end)):
        nvlink5 = records.NvLink5Error(
            unit=m.group(1).decode("ascii"),
            fatal=m.group(2) == b"Fatal",
            containment=int(m.group(3)),
            link=int(m.group(4)),
            intrinfo=int(m.group(5), 16),
            error_status=int(m.group(6), 16) if m.group(6) is not None else None,
        )
    if clip is not None:
        end = min(end, clip)
    return records.XidEvent(
        code=code,
        pci_bus_id=bus_id,
        pci_raw=raw,
        message=_decode(text[detail:end]),
        pid=pid,
        process_name=_decode(name) if name is not None else None,
        inferred=inferred,
        recovery_action=action,
        nvlink5=nvlink5,
        source=source,
        seq=seq,
        ts_usec=ts_usec,
    )


def _number(field: bytes, digits: int) -> int | None:
    if not 0 < len(field) <= digits or not field.isdigit():
        return None
    value = int(field)
    return value if value <= _U64_MAX else None


def _header(rec: bytes) -> tuple[int, int, int, int, bytes] | None:
    """prio, seq, ts_usec, flag and message of a kmsg record, or None when it is not one."""
    semi = rec.find(b";")
    if semi < 0:
        return None
    header = rec[:semi].split(b",")
    if len(header) < 4 or len(header[3]) != 1 or header[3] not in b"-c+":
        return None
    prio = _number(header[0], 10)
    seq = _number(header[1], 20)
    ts_usec = _number(header[2], 20)
    if prio is None or prio > 0x7FFFFFFF or seq is None or ts_usec is None:
        return None
    msg = rec[semi + 1 :]
    nl = msg.find(b"\n")
    if nl >= 0:
        msg = msg[:nl]
    if msg.endswith(b"\r"):
        msg = msg[:-1]
    return prio, seq, ts_usec, header[3][0], msg


def _record(
    prio: int, seq: int, ts_usec: int, flag: int, msg: bytes, event: records.XidEvent | None
) -> records.KmsgRecord:
    return records.KmsgRecord(
        seq=seq,
        ts_usec=ts_usec,
        facility=prio >> 3,
        level=prio & 7,
        flag=chr(flag),
        text=_decode(msg[: TEXT_LEN - 1]),
        truncated=len(msg) > TEXT_LEN - 1,
        xid=event,
    )


def _xid_of(
    prio: int, seq: int, ts_usec: int, msg: bytes, trust_user: bool
) -> records.XidEvent | None:
    if (prio >> 3 == 0 or trust_user) and b"NVRM: " in msg:
        return parse_xid(msg, source="kmsg", seq=seq, ts_usec=ts_usec, clip=TEXT_LEN - 1)
    return None


def parse_record(rec: bytes, *, trust_user: bool = False) -> records.KmsgRecord | None:
    """One kmsg record, or None when `rec` is not one."""
    parts = _header(rec)
    if parts is None:
        return None
    prio, seq, ts_usec, flag, msg = parts
    return _record(prio, seq, ts_usec, flag, msg, _xid_of(prio, seq, ts_usec, msg, trust_user))


class Drain:
    """The reader state of csrc/telemetry_kmsg.c: position, loss accounting and line buffer."""

    def __init__(self, fd: int, mode: int, *, trust_user: bool = False) -> None:
        self.fd = fd
        self.mode = mode
        self.trust_user = trust_user
        self.read_size = DEVICE_READ
        self.last_seq: int | None = None
        self._skip_through: int | None = None
        self.records = self.xids = self.lost = self.overruns = 0
        self.malformed = self.oversized = self.skipped = 0
        self._buf = bytearray()
        self._discarding = False

    def resume_after(self, seq: int) -> None:
        self._skip_through = seq
        self.last_seq = seq

    def stats(self) -> records.KmsgStats:
        return records.KmsgStats.read_from(self)

    def drain(self, cap: int, *, only_xid: bool = False) -> tuple[int, list[records.KmsgRecord]]:
        """Reads until the source has nothing ready, `cap` records are kept, or a stream ends."""
        out: list[records.KmsgRecord] = []
        if cap == 0:
            return FULL, out
        if self.mode == MODE_DEVICE:
            return self._drain_device(cap, only_xid, out)
        return self._drain_stream(cap, only_xid, out)

    def _take(self, rec: bytes, only_xid: bool, out: list[records.KmsgRecord]) -> None:
        parts = _header(rec)
        if parts is None:
            self.malformed += 1
            return
        prio, seq, ts_usec, flag, msg = parts
        if self._skip_through is not None and seq <= self._skip_through:
            self.skipped += 1
            return
        if self.last_seq is None or seq > self.last_seq:
            if self.last_seq is not None:
                self.lost += seq - self.last_seq - 1
            self.last_seq = seq
        self.records += 1
        event = _xid_of(prio, seq, ts_usec, msg, self.trust_user)
        if event is not None:
            self.xids += 1
        # Most records are not XIDs; building no object for them is most of the cost saved.
        if event is not None or not only_xid:
            out.append(_record(prio, seq, ts_usec, flag, msg, event))

    def _drain_device(
        self, cap: int, only_xid: bool, out: list[records.KmsgRecord]
    ) -> tuple[int, list[records.KmsgRecord]]:
        size = min(self.read_size, BUF_LEN)
        while len(out) < cap:
            try:
                rec = os.read(self.fd, size)
            except BlockingIOError:
                return AGAIN, out
            except BrokenPipeError:
                self.overruns += 1
                continue
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # The kernel keeps offering the record that does not fit, so reading on would
                # spin. Jump to the end; the next record's sequence number counts the loss.
                self.oversized += 1
                os.lseek(self.fd, 0, os.SEEK_END)
                continue
            if not rec:
                return EOF, out
            self._take(rec, only_xid, out)
        return FULL, out

    def _line(self, line: bytes, only_xid: bool, out: list[records.KmsgRecord]) -> None:
        # Blank lines and the " KEY=value" dictionary lines that follow a record are not records.
        if line and line[0] != 0x20:
            self._take(line, only_xid, out)

    def _drain_stream(
        self, cap: int, only_xid: bool, out: list[records.KmsgRecord]
    ) -> tuple[int, list[records.KmsgRecord]]:
        buf = self._buf
        start = 0
        while True:
            while len(out) < cap:
                nl = buf.find(b"\n", start)
                if nl < 0:
                    break
                line = bytes(buf[start:nl])
                start = nl + 1
                self._line(line, only_xid, out)
            del buf[:start]
            start = 0
            if len(out) == cap:
                return FULL, out
            if len(buf) == BUF_LEN:
                self.oversized += 1
                self._discarding = True
                buf.clear()
            try:
                chunk = os.read(self.fd, BUF_LEN - len(buf))
            except BlockingIOError:
                return AGAIN, out
            if not chunk:
                # A last line without a newline still counts once the stream has ended.
                if buf and not self._discarding:
                    self._line(bytes(buf), only_xid, out)
                buf.clear()
                self._discarding = False
                return EOF, out
            if self._discarding:
                nl = chunk.find(b"\n")
                if nl < 0:
                    continue
                buf += chunk[nl + 1 :]
                self._discarding = False
            else:
                buf += chunk
