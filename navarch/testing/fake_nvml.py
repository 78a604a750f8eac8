"""The fake libnvidia-ml: NVML's entry points over GPUs whose values a test sets.

`build_fake_nvml` compiles the C source that ships beside this module (`fake_nvml.c`, with the
`nvml_abi.h` that navarch's telemetry extension is built against) into `libnvidia-ml.so.1`, and
`FakeNvml` sets the values of its GPUs, makes its functions fail, loses GPUs and queues events.
Point `NAVARCH_NVML_LIBRARY` at the library and navarch (or nvidia-ml-py) reads the fake through
the real `dlopen` path, on a machine without NVIDIA GPUs:

    path = build_fake_nvml(tmp_path)
    fake = FakeNvml(path)
    fake.reset(2)
    fake.set(1, temperature=95, ecc_uncorrected_volatile=3)
    gpus = fake.sample()  # what a health check's `run` gets
    monkeypatch.setenv("NAVARCH_NVML_LIBRARY", str(path))  # for a daemon or `navarch gpus`

`FAKE_NVML_DEVICES` in the environment sets how many GPUs exist when the library loads (2 unless
set), for a fake that another process loads.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from navarch.telemetry.nvml import GpuSample

SOURCE = Path(__file__).with_name("fake_nvml.c")


class CompilerNotFound(Exception):
    """There is no C compiler here to build the fake libnvidia-ml."""


def build_fake_nvml(directory: str | os.PathLike[str], *defines: str) -> Path:
    """Compiles the fake into `directory` as `libnvidia-ml.so.1` and returns its path.

    The compiler is `$CC`, or `cc`. `defines` build a variant that lacks entry points the way
    older or smaller drivers do: `FAKE_NO_REMAPPED_ROWS` (no nvmlDeviceGetRemappedRows) and
    `FAKE_LEGACY` (only the older entry point of every versioned family).
    """
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        raise CompilerNotFound(f"no C compiler ({compiler}) to build the fake libnvidia-ml")
    out = Path(directory) / "libnvidia-ml.so.1"
    flags = [f"-D{d}" for d in defines]
    command = [compiler, "-shared", "-fPIC", "-pthread", "-O2", "-Wall", *flags]
    subprocess.run([*command, "-o", str(out), str(SOURCE)], check=True)
    return out


class FakeNvml:
    """Controls the GPUs of a built fake through its `fakeNvml*` functions.

    ctypes loads the library by its path, and the dynamic loader gives every loader in a process
    one instance per path, so these calls change what navarch and nvidia-ml-py read.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lib = ctypes.CDLL(str(self.path))
        self.lib.fakeNvmlSetValue.argtypes = [ctypes.c_uint, ctypes.c_char_p, ctypes.c_ulonglong]
        self.lib.fakeNvmlSetString.argtypes = [ctypes.c_uint, ctypes.c_char_p, ctypes.c_char_p]
        self.lib.fakeNvmlSetReturn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.fakeNvmlCallCount.argtypes = [ctypes.c_char_p]
        self.lib.fakeNvmlCallCount.restype = ctypes.c_ulonglong
        self.lib.fakeNvmlInjectEvent.argtypes = [
            ctypes.c_uint,
            ctypes.c_ulonglong,
            ctypes.c_ulonglong,
        ]
        self.lib.fakeNvmlSetLost.argtypes = [ctypes.c_uint, ctypes.c_int]

    def reset(self, count: int) -> None:
        """`count` GPUs with default values, no failures, call counters at zero."""
        self.lib.fakeNvmlReset(count)

    def set(self, index: int, **values: int | str) -> None:
        """Sets values of GPU `index` by their names in fake_nvml.c (`temperature=95`,
        `name="NVIDIA H100 80GB HBM3"`); raises `ValueError` for a name the fake lacks."""
        for name, value in values.items():
            if isinstance(value, str):
                rc = self.lib.fakeNvmlSetString(index, name.encode(), value.encode())
            else:
                rc = self.lib.fakeNvmlSetValue(index, name.encode(), value)
            if rc != 0:
                raise ValueError(f"the fake libnvidia-ml cannot set {name!r} on GPU {index}")

    def fail(self, function: str, rc: int, index: int = -1) -> None:
        """Makes the NVML `function` return `rc` for GPU `index`, or for every caller when
        `index` is -1; `field:ID` names one field of nvmlDeviceGetFieldValues."""
        if self.lib.fakeNvmlSetReturn(index, function.encode(), rc) != 0:
            raise ValueError(f"the fake libnvidia-ml cannot make {function!r} fail for GPU {index}")

    def lose(self, index: int, lost: bool = True) -> None:
        """Makes GPU `index` answer GPU_IS_LOST, as a GPU that fell off the bus does."""
        self.lib.fakeNvmlSetLost(index, int(lost))

    def inject(self, index: int, event_type: int, data: int = 0) -> int:
        """Queues an event of GPU `index`; returns how many event sets were listening for it."""
        listening: int = self.lib.fakeNvmlInjectEvent(index, event_type, data)
        return listening

    def sample(self) -> list[GpuSample]:
        """One sample of every GPU, read through navarch's NVML binding as the daemon reads it:
        what a health check's `run` gets."""
        from navarch.telemetry.nvml import open_nvml

        session = open_nvml(str(self.path))
        try:
            return list(session.sample())
        finally:
            session.close()

    def calls(self, function: str) -> int:
        """How many times the NVML `function` was called since the last `reset`."""
        count: int = self.lib.fakeNvmlCallCount(function.encode())
        return count
