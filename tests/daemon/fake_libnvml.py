"""The fake libnvidia-ml of csrc/fake_nvml.c, compiled for the daemon's tests."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "csrc" / "fake_nvml.c"


def build(directory: Path) -> Path:
    """Compiles the fake into `directory`; skips the test where there is no C compiler."""
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) to build the fake libnvidia-ml")
    out = directory / "libnvidia-ml.so.1"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-pthread", "-O2", "-o", str(out), str(SOURCE)], check=True
    )
    return out


class FakeDevices:
    """The fake's control functions, on the same library instance that navarch loads."""

    def __init__(self, path: Path) -> None:
        self.lib = ctypes.CDLL(str(path))
        self.lib.fakeNvmlSetValue.argtypes = [ctypes.c_uint, ctypes.c_char_p, ctypes.c_ulonglong]
        self.lib.fakeNvmlInjectEvent.argtypes = [
            ctypes.c_uint,
            ctypes.c_ulonglong,
            ctypes.c_ulonglong,
        ]
        self.lib.fakeNvmlInjectEvent.restype = ctypes.c_ulonglong

    def reset(self, count: int) -> None:
        self.lib.fakeNvmlReset(count)

    def set(self, index: int, name: str, value: int) -> None:
        assert self.lib.fakeNvmlSetValue(index, name.encode(), value) == 0, name

    def inject(self, index: int, event_type: int, data: int = 0) -> int:
        return self.lib.fakeNvmlInjectEvent(index, event_type, data)
