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

A GPU reset happens in another process (the daemon runs its `reset_command`), so it reaches the
fake through a control file: `reset_command(control)` is a shell command that asks for one, and
the fake carries it out, with the outcome `set_reset_outcome` chose, when NVML is next opened:

    monkeypatch.setenv("FAKE_NVML_CONTROL", str(tmp_path / "control"))
    fake.set_reset_outcome(0, "lost")
    config = DaemonConfig(reset_command=FakeNvml.reset_command(tmp_path / "control"), ...)
"""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from navarch.telemetry.nvml import GpuSample

SOURCE = Path(__file__).with_name("fake_nvml.c")
CONTROL_ENV = "FAKE_NVML_CONTROL"
# What a reset does to a GPU (RESET_CLEAN, RESET_FAILS and RESET_LOST in fake_nvml.c).
RESET_OUTCOMES = {"clean": 0, "fails": 1, "lost": 2}


class CompilerNotFound(Exception):
    """There is no C compiler here to build the fake libnvidia-ml."""


def build_fake_nvml(directory: str | os.PathLike[str], *defines: str) -> Path:
    """Compiles the fake into `directory` as `libnvidia-ml.so.1` and returns its path.

    The compiler is `$CC`, or `cc`. `defines` build a variant that lacks entry points the way
    older or smaller drivers do: `FAKE_NO_REMAPPED_ROWS` (no nvmlDeviceGetRemappedRows),
    `FAKE_NO_FIELD_VALUES` (no nvmlDeviceGetFieldValues) and `FAKE_LEGACY` (only the older entry
    point of every versioned family).
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
        self.lib.fakeNvmlSetProcesses.argtypes = [
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.POINTER(ctypes.c_ulonglong),
        ]
        self.lib.fakeNvmlResetDevice.argtypes = [ctypes.c_uint]
        self.lib.fakeNvmlGetValue.argtypes = [ctypes.c_uint, ctypes.c_char_p]
        self.lib.fakeNvmlGetValue.restype = ctypes.c_ulonglong
        self.lib.fakeNvmlSetNvLinkErrors.argtypes = [
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_ulonglong,
        ]

    def reset(self, count: int) -> None:
        """`count` GPUs with default values, no failures, call counters at zero."""
        self.lib.fakeNvmlReset(count)

    def set(self, index: int, **values: int | str) -> None:
        """Sets values of GPU `index` by their names in fake_nvml.c (`temperature=95`,
        `name="NVIDIA H100 80GB HBM3"`); raises `ValueError` for a name the fake lacks.

        navarch reads `pcie_link_gen_max` and `pcie_link_width_max` once per NVML session, as
        they do not change while a driver runs: set them before opening one."""
        for name, value in values.items():
            if isinstance(value, str):
                rc = self.lib.fakeNvmlSetString(index, name.encode(), value.encode())
            else:
                rc = self.lib.fakeNvmlSetValue(index, name.encode(), value)
            if rc != 0:
                raise ValueError(f"the fake libnvidia-ml cannot set {name!r} on GPU {index}")

    def set_nvlink_errors(
        self,
        index: int,
        link: int,
        *,
        replay: int = 0,
        recovery: int = 0,
        crc_flit: int = 0,
        crc_data: int = 0,
    ) -> None:
        """Sets the error counters of one NVLink link of GPU `index`; NVML reports them per link
        (nvmlDeviceGetNvLinkErrorCounter) and summed over the links (the *_TOTAL fields)."""
        for counter, value in enumerate((replay, recovery, crc_flit, crc_data)):
            if self.lib.fakeNvmlSetNvLinkErrors(index, link, counter, value) != 0:
                raise ValueError(f"the fake libnvidia-ml has no NVLink {link} on GPU {index}")

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

    def set_processes(
        self,
        index: int,
        pids: Sequence[int],
        memory: Sequence[int] | None = None,
        *,
        graphics: bool = False,
    ) -> None:
        """The compute (or graphics) processes running on GPU `index`, with their memory in
        bytes (unknown to NVML when `memory` is None)."""
        count = len(pids)
        mem = (ctypes.c_ulonglong * count)(*memory) if memory is not None else None
        rc = self.lib.fakeNvmlSetProcesses(
            index, int(graphics), count, (ctypes.c_uint * count)(*pids), mem
        )
        if rc != 0:
            raise ValueError(f"the fake libnvidia-ml cannot hold {count} processes on GPU {index}")

    def set_reset_outcome(self, index: int, outcome: str) -> None:
        """What a reset of GPU `index` does: "clean" (it comes back without its faults and
        processes), "fails" (nothing changes) or "lost" (it falls off the bus and stays lost)."""
        if outcome not in RESET_OUTCOMES:
            raise ValueError(f"reset outcome must be one of {', '.join(RESET_OUTCOMES)}")
        self.set(index, reset_outcome=RESET_OUTCOMES[outcome])

    def reset_gpu(self, index: int) -> None:
        """Resets GPU `index` in this process, with its reset outcome."""
        self.lib.fakeNvmlResetDevice(index)

    def resets(self, index: int) -> int:
        """How many resets GPU `index` had since the last `reset`, from this process or others."""
        count: int = self.lib.fakeNvmlGetValue(index, b"resets")
        return count

    @staticmethod
    def reset_command(control: str | os.PathLike[str]) -> str:
        """A `reset_command` for the daemon that asks the fake, through the control file that
        FAKE_NVML_CONTROL names, to reset GPU `{gpu}`."""
        return f"printf 'reset %s\\n' {{gpu}} >> {shlex.quote(str(control))}"

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
