from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from navarch.telemetry import nvml

REPO = Path(__file__).resolve().parents[2]
FAKE_NVML_SOURCE = REPO / "csrc" / "fake_nvml.c"


class FakeNvml:
    """Controls the devices of a compiled csrc/fake_nvml.c through its fakeNvml* functions.

    ctypes loads the same path as navarch and pynvml, so all three share one instance.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lib = ctypes.CDLL(str(path))
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
        """`count` devices with default values, no failures, call counters at zero."""
        self.lib.fakeNvmlReset(count)

    def set(self, index: int, **values: int | str) -> None:
        for name, value in values.items():
            if isinstance(value, str):
                rc = self.lib.fakeNvmlSetString(index, name.encode(), value.encode())
            else:
                rc = self.lib.fakeNvmlSetValue(index, name.encode(), value)
            assert rc == 0, f"the fake has no value named {name!r}"

    def fail(self, function: str, rc: int, index: int = -1) -> None:
        """Makes `function` return `rc` for GPU `index`, or for every caller when index is -1."""
        assert self.lib.fakeNvmlSetReturn(index, function.encode(), rc) == 0, function

    def lose(self, index: int, lost: bool = True) -> None:
        self.lib.fakeNvmlSetLost(index, int(lost))

    def inject(self, index: int, event_type: int, data: int = 0) -> int:
        """Queues an event; returns how many event sets were listening for it."""
        return self.lib.fakeNvmlInjectEvent(index, event_type, data)

    def calls(self, function: str) -> int:
        return self.lib.fakeNvmlCallCount(function.encode())


@pytest.fixture(scope="session")
def build_fake_nvml(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Compiles csrc/fake_nvml.c with the system C compiler, once per set of -D flags."""
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) to build the fake libnvidia-ml")
    built: dict[tuple[str, ...], Path] = {}

    def build(*defines: str) -> Path:
        if defines not in built:
            out = tmp_path_factory.mktemp("fake-nvml") / "libnvidia-ml.so.1"
            flags = [f"-D{d}" for d in defines]
            cmd = [compiler, "-shared", "-fPIC", "-pthread", "-O2", "-Wall", "-Werror", *flags]
            subprocess.run([*cmd, "-o", str(out), str(FAKE_NVML_SOURCE)], check=True)
            built[defines] = out
        return built[defines]

    return build


@pytest.fixture
def make_fake_nvml(
    build_fake_nvml: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., FakeNvml]:
    """Builds a variant of the fake, points NAVARCH_NVML_LIBRARY at it and gives 2 devices."""

    def make(*defines: str) -> FakeNvml:
        fake = FakeNvml(build_fake_nvml(*defines))
        fake.reset(2)
        monkeypatch.setenv(nvml.LIBRARY_ENV, str(fake.path))
        return fake

    return make


@pytest.fixture
def fake_nvml(make_fake_nvml: Callable[..., FakeNvml]) -> FakeNvml:
    return make_fake_nvml()


@pytest.fixture(params=["cffi", "python"])
def backend(request: pytest.FixtureRequest) -> nvml.Backend:
    """Runs a test once per NVML backend that this build and environment offer."""
    if request.param == "cffi" and not nvml.cffi_available():
        required = os.environ.get("NAVARCH_REQUIRE_EXTENSIONS") == "1"
        if required and os.environ.get("NAVARCH_DISABLE_NATIVE") != "1":
            pytest.fail("navarch._telemetry is required but not built")
        pytest.skip("navarch._telemetry is not in use here")
    return request.param


@pytest.fixture
def open_fake(fake_nvml: FakeNvml, backend: nvml.Backend) -> Iterator[Callable[[], nvml.Nvml]]:
    """Opens NVML sessions on the fake with the test's backend, and closes them afterwards."""
    sessions: list[nvml.Nvml] = []

    def open_() -> nvml.Nvml:
        sessions.append(nvml.open_nvml(backend=backend))
        return sessions[-1]

    yield open_
    for session in sessions:
        session.close()


@pytest.fixture
def pynvml_for() -> Iterator[Callable[[FakeNvml], Any]]:
    """Initialises nvidia-ml-py on the same fake library instance that navarch uses."""
    import pynvml

    def load(fake: FakeNvml) -> Any:
        with pynvml.libLoadLock:
            pynvml.nvmlLib = ctypes.CDLL(str(fake.path))
            pynvml._nvmlGetFunctionPointer_cache.clear()
        pynvml.nvmlInit()
        loaded.append(fake)
        return pynvml

    loaded: list[FakeNvml] = []
    yield load
    for _ in loaded:
        pynvml.nvmlShutdown()
    with pynvml.libLoadLock:
        pynvml.nvmlLib = None
        pynvml._nvmlGetFunctionPointer_cache.clear()
