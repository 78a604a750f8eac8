"""One owner per store: the process that opens a SQLite store holds an exclusive lock on it.

The lock is a `flock` on a file beside the database (`navarch.db.lock`), which the kernel lets go
of when the holding process ends, however it ends: a control plane killed with SIGKILL leaves no
stale lock behind. The file also names its holder (process id, host and when it took the lock),
so that a second control plane on the same store stops with one line that says who has it,
instead of running beside it with a different view of the fleet.
"""

from __future__ import annotations

import fcntl
import os
import socket
from datetime import UTC, datetime

from navarch.errors import NavarchError


class StoreInUse(NavarchError):
    """Another process holds the store."""


class StoreLock:
    def __init__(self, database: str) -> None:
        self.path = f"{database}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock, or raises StoreInUse naming the holder."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise NavarchError(f"{self.path}: cannot open the store's lock file: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            database = self.path.removesuffix(".lock")
            raise StoreInUse(
                f"{database} is in use by another navarch process ({holder or 'holder unknown'});"
                " stop it first, or give this one a store of its own (--data-dir or [store] path)"
            ) from None
        os.ftruncate(fd, 0)
        since = datetime.now(UTC).isoformat(timespec="seconds")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor lets go of the flock
            self._fd = None


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
