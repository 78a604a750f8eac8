"""The kernel log: /dev/kmsg, or a file or pipe of kmsg records, read without blocking trio.

A `KmsgReader` drains every record the source has ready in one call into the C extension (or the
pure-Python engine when the extension is not in use), and waits for more with
`trio.lowlevel.wait_readable` on the file descriptor. It counts records the kernel overwrote
before they were read, and it resumes after a saved `ResumePosition` so that a restarted daemon
neither misses nor repeats an XID. Only kernel-facility records (facility 0) yield XID events,
because any process can write a look-alike line to /dev/kmsg.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import stat
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import attrs
import trio

from navarch.errors import NavarchError
from navarch.telemetry import _kmsg_engine
from navarch.telemetry.records import KmsgRecord, KmsgStats, XidEvent

__all__ = [
    "BOOT_ID_PATH",
    "DEVICE",
    "KmsgReader",
    "KmsgRecord",
    "KmsgStats",
    "ResumePosition",
    "read_boot_id",
    "scan_log",
]

DEVICE = "/dev/kmsg"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_BATCH = 256  # records per drain call; a few hundred KiB of C structs
_MULTILINE_OPENING = b"NVRM: The NVIDIA GPU "
_MULTILINE_CLOSING = b"fallen off the bus and is not responding"


def read_boot_id() -> str:
    return Path(BOOT_ID_PATH).read_text().strip()


@attrs.frozen
class ResumePosition:
    """The last record handled, so that the next reader starts after it on the same boot."""

    boot_id: str
    seq: int

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the position atomically: a crash leaves the old file or the new one."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w") as f:
            json.dump({"boot_id": self.boot_id, "seq": self.seq}, f)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ResumePosition | None:
        """The saved position, or None when there is no file yet."""
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            boot_id, seq = data["boot_id"], data["seq"]
        except (ValueError, TypeError, KeyError):
            boot_id = seq = None
        if (
            not isinstance(boot_id, str)
            or not boot_id
            or type(seq) is not int
            or not 0 <= seq < 2**64
        ):
            expected = '{"boot_id": "...", "seq": N}'
            raise NavarchError(f"{path}: expected a kmsg position {expected}, got {text[:80]!r}")
        return cls(boot_id=boot_id, seq=seq)


class KmsgReader:
    """Reads kmsg records from /dev/kmsg, or from a file or pipe holding one record per line.

    On /dev/kmsg the reader starts at the end (new records only), or at the oldest record still
    in the ring with `from_start`. With `resume` from the same boot it reads from the oldest
    record and skips those up to `resume.seq`; a resume position from another boot reads the
    whole ring. A file or pipe is always read from its start, and a file ends the iteration.
    `trust_user_facility` also parses XIDs in records written by userspace; it is for tests.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEVICE,
        *,
        resume: ResumePosition | None = None,
        from_start: bool = False,
        trust_user_facility: bool = False,
        boot_id: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.boot_id = boot_id if boot_id is not None else read_boot_id()
        self._engine = _kmsg_engine.current()
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            device = stat.S_ISCHR(os.fstat(fd).st_mode)
            mode = self._engine.MODE_DEVICE if device else self._engine.MODE_STREAM
            self._drain = self._engine.Drain(fd, mode, trust_user=trust_user_facility)
            if device:
                start = resume is not None or from_start
                os.lseek(fd, 0, os.SEEK_SET if start else os.SEEK_END)
            if resume is not None and resume.boot_id == self.boot_id:
                self._drain.resume_after(resume.seq)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._pending: collections.deque[KmsgRecord] = collections.deque()
        self._handed: int | None = self._drain.last_seq

    @property
    def backend(self) -> str:
        return self._engine.BACKEND

    @property
    def stats(self) -> KmsgStats:
        return self._drain.stats()

    @property
    def position(self) -> ResumePosition | None:
        """The last record handed out (or passed over); save it after handling an event."""
        seq = self._handed if self._pending else self._drain.last_seq
        return None if seq is None else ResumePosition(boot_id=self.boot_id, seq=seq)

    def read_available(self, *, only_xid: bool = False) -> list[KmsgRecord]:
        """Every record the source has ready now, without waiting."""
        out = list(self._pending)
        self._pending.clear()
        while True:
            status = self._fill(only_xid)
            out.extend(self._pending)
            self._pending.clear()
            if status != self._engine.FULL:
                break
        return [r for r in out if r.xid is not None] if only_xid else out

    async def records(self) -> AsyncIterator[KmsgRecord]:
        """Every record, waiting for new ones; a file or a closed pipe ends the iteration."""
        while True:
            while self._pending:
                record = self._pending.popleft()
                self._handed = record.seq
                yield record
            if not await self._refill(only_xid=False):
                return

    async def xid_events(self) -> AsyncIterator[XidEvent]:
        """The XID events of kernel-facility records, waiting for new ones."""
        while True:
            while self._pending:
                record = self._pending.popleft()
                self._handed = record.seq
                if record.xid is not None:
                    yield record.xid
            if not await self._refill(only_xid=True):
                return

    def _fill(self, only_xid: bool) -> int:
        self._handed = self._drain.last_seq
        status, records = self._drain.drain(_BATCH, only_xid=only_xid)
        self._pending.extend(records)
        return status

    async def _refill(self, *, only_xid: bool) -> bool:
        """Waits until records are pending; False once a file or pipe has ended."""
        while True:
            status = self._fill(only_xid)
            if self._pending:
                # A long backlog arrives batch after batch; let other tasks run in between.
                await trio.lowlevel.checkpoint()
                return True
            if status == self._engine.EOF:
                return False
            await trio.lowlevel.wait_readable(self._fd)

    def close(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(RuntimeError):  # outside trio nothing can be waiting on the fd
            trio.lowlevel.notify_closing(self._fd)
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> KmsgReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scan_log(lines: Iterable[bytes]) -> Iterator[tuple[int, XidEvent]]:
    """(line number, event) for every XID in kernel log text.

    Lines may be dmesg or journal text, or kmsg records; records count only from the kernel
    facility, as on a live system. The fallen-off-the-bus message that dmesg prints over two or
    three lines counts once, at its first line.
    """
    engine = _kmsg_engine.current()
    opening: tuple[int, bytes] | None = None
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        record = engine.parse_record(line)
        if record is not None:
            if record.xid is not None:
                yield number, record.xid
            continue
        event = engine.parse_xid(line, source="text")
        if event is not None:
            opening = None
            yield number, event
            continue
        if opening is not None:
            if _MULTILINE_CLOSING in line:
                event = engine.parse_xid(opening[1] + b"\n" + line, source="text")
                if event is not None:
                    yield opening[0], event
                opening = None
                continue
            if number - opening[0] >= 2:
                opening = None
        if _MULTILINE_OPENING in line:
            opening = (number, line)
