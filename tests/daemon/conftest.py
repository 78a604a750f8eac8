from __future__ import annotations

import os

import pytest
from support.service import DAEMON_SERVER, open_service


@pytest.fixture
async def control_plane(tmp_path):
    async with open_service(tmp_path / "navarch.db", DAEMON_SERVER) as service:
        yield service


@pytest.fixture
def kmsg_pipe(tmp_path):
    """A named pipe the check reads as its kernel log, and a function that writes records."""
    path = tmp_path / "kmsg"
    os.mkfifo(path)
    # Opened for reading and writing, so the reader never sees the pipe close.
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def write(*records: bytes) -> None:
        for line in records:
            os.write(fd, line)

    write.path = str(path)
    yield write
    os.close(fd)
