"""NVIDIA GPU telemetry through NVML: one call samples every GPU, events arrive as they happen.

    with open_nvml() as nvml:
        for gpu in nvml.sample():
            print(gpu.index, gpu.temperature_c, gpu.field_status["temperature"])

A machine without libnvidia-ml is a normal machine with no NVIDIA GPUs: `open_nvml()` raises
`LibraryNotFound`, and `inventory()` returns an empty inventory that says why.

Two backends give identical results: the compiled extension navarch._telemetry ("cffi") and a
ctypes rewrite of it ("python"), chosen by navarch.telemetry._native.

This module holds the session and is the one to import from; NVML's codes, the sample record and
the event watcher live in nvml_codes, nvml_sample and nvml_events, and are re-exported here.
"""

from __future__ import annotations

import os
import threading
from typing import Literal, Protocol

import attrs

from navarch.errors import NavarchError
from navarch.telemetry import _native, _nvml_ctypes
from navarch.telemetry.nvml_codes import (
    DEFAULT_EVENTS,
    ClockEventReason,
    DriverNotLoaded,
    EventType,
    FunctionNotFound,
    GpuIsLost,
    InvalidArgument,
    LibraryNotFound,
    LibRmVersionMismatch,
    NoPermission,
    NotFound,
    NotSupported,
    NVMLError,
    RecoveryAction,
    ResetRequired,
    Return,
    Timeout,
    Uninitialized,
    UnknownError,
)
from navarch.telemetry.nvml_events import EventSet, EventWatcher, NvmlEvent
from navarch.telemetry.nvml_processes import GpuProcess, list_processes
from navarch.telemetry.nvml_sample import FIELDS, Decoder, GpuSample

__all__ = [
    "DEFAULT_EVENTS",
    "DEFAULT_LIBRARY",
    "FIELDS",
    "LIBRARY_ENV",
    "Backend",
    "ClockEventReason",
    "DriverNotLoaded",
    "EventType",
    "EventWatcher",
    "FunctionNotFound",
    "GpuInventory",
    "GpuIsLost",
    "GpuProcess",
    "GpuSample",
    "InvalidArgument",
    "LibRmVersionMismatch",
    "LibraryNotFound",
    "NVMLError",
    "NoPermission",
    "NotFound",
    "NotSupported",
    "Nvml",
    "NvmlEvent",
    "RecoveryAction",
    "ResetRequired",
    "Return",
    "Timeout",
    "Uninitialized",
    "UnknownError",
    "cffi_available",
    "inventory",
    "library_path",
    "open_nvml",
]

DEFAULT_LIBRARY = "libnvidia-ml.so.1"
LIBRARY_ENV = "NAVARCH_NVML_LIBRARY"

Backend = Literal["cffi", "python"]


class _Session(Protocol):
    """What Nvml needs of a backend's session: _CffiSession or _CtypesSession."""

    @property
    def count(self) -> int: ...
    def samples(self) -> list[GpuSample]: ...
    def set_batched(self, batched: bool) -> None: ...
    def close(self) -> None: ...
    def events_create(self, mask: int) -> tuple[int, EventSet | None, list[int]]: ...
    def processes(
        self, index: int, kind: int, capacity: int
    ) -> tuple[int, list[tuple[int, int, int, int]], int]: ...


class _CffiSession:
    """The extension's session, with the same surface as _nvml_ctypes.Session."""

    def __init__(self, handle: object) -> None:
        self._ffi, self._lib = _native.loaded()
        self._handle = handle  # navarch_nvml *
        self.count = self._lib.navarch_nvml_device_count(handle)
        self._lock = threading.Lock()  # one sample at a time uses the buffer and the decoder
        self._buffer = self._ffi.new("navarch_nvml_gpu[]", self.count)
        self._decoder = Decoder()

    @staticmethod
    def open(path: str | None) -> tuple[int, _CffiSession | None, str]:
        ffi, lib = _native.loaded()
        out = ffi.new("navarch_nvml **")
        error = ffi.new("char[]", 512)
        rc = lib.navarch_nvml_open(path.encode() if path else ffi.NULL, out, error, len(error))
        if rc != 0:
            return rc, None, ffi.string(error).decode(errors="replace")
        return 0, _CffiSession(out[0]), ""

    def close(self) -> None:
        self._lib.navarch_nvml_close(self._handle)

    def set_batched(self, batched: bool) -> None:
        self._lib.navarch_nvml_set_batched(self._handle, int(batched))

    def samples(self) -> list[GpuSample]:
        with self._lock:
            n = self._lib.navarch_nvml_sample(self._handle, self._buffer, self.count)
            data = self._ffi.buffer(self._buffer)[:]
            return self._decoder.samples(data, n)

    def events_create(self, mask: int) -> tuple[int, _CffiEventSet | None, list[int]]:
        ffi, lib = self._ffi, self._lib
        out = ffi.new("navarch_nvml_events **")
        registered = ffi.new("unsigned long long[]", max(self.count, 1))
        rc = lib.navarch_nvml_events_create(self._handle, mask, out, registered, self.count)
        if rc != 0:
            return rc, None, []
        return 0, _CffiEventSet(out[0]), list(registered[0 : self.count])

    def processes(
        self, index: int, kind: int, capacity: int
    ) -> tuple[int, list[tuple[int, int, int, int]], int]:
        out = self._ffi.new("navarch_nvml_process[]", max(capacity, 1))
        count = self._ffi.new("unsigned int *")
        rc = self._lib.navarch_nvml_processes(self._handle, index, kind, out, capacity, count)
        if rc != 0:
            return rc, [], count[0]
        found = [
            (p.pid, p.used_memory, p.gpu_instance_id, p.compute_instance_id)
            for p in out[0 : min(count[0], capacity)]
        ]
        return 0, found, count[0]


class _CffiEventSet:
    def __init__(self, handle: object) -> None:
        self._ffi, self._lib = _native.loaded()
        self._handle = handle  # navarch_nvml_events *

    def wait(self, timeout_ms: int) -> tuple[int, _native.NvmlEvent]:
        event = self._ffi.new("navarch_nvml_event *")
        rc = self._lib.navarch_nvml_events_wait(self._handle, timeout_ms, event)
        return rc, event

    def free(self) -> None:
        self._lib.navarch_nvml_events_free(self._handle)


class _CtypesSession:
    """_nvml_ctypes.Session, decoding its records as _CffiSession decodes the extension's."""

    def __init__(self, session: _nvml_ctypes.Session) -> None:
        self._session = session
        self.count = session.count
        self._lock = threading.Lock()
        self._decoder = Decoder()
        self.close = session.close
        self.events_create = session.events_create
        self.processes = session.processes

    def samples(self) -> list[GpuSample]:
        with self._lock:
            return self._decoder.samples(bytes(self._session.sample()), self.count)

    def set_batched(self, batched: bool) -> None:
        self._session.fields.batched = batched


def library_path() -> str:
    """The libnvidia-ml that navarch loads: NAVARCH_NVML_LIBRARY, else the driver's soname."""
    return os.environ.get(LIBRARY_ENV) or DEFAULT_LIBRARY


def cffi_available() -> bool:
    return _native.lib is not None and hasattr(_native.lib, "navarch_nvml_open")


def open_nvml(
    library: str | None = None, *, backend: Backend | None = None, batched: bool = True
) -> Nvml:
    """Loads libnvidia-ml, initialises NVML and caches every GPU's handle.

    `library` defaults to library_path(); `backend` to navarch.telemetry._native.BACKEND.
    `batched=False` reads every value with its own NVML call, as on a driver without
    nvmlDeviceGetFieldValues, for benchmarks and cross-checks; samples are the same either way.
    Raises LibraryNotFound where there is no NVIDIA driver, another NVMLError otherwise.
    """
    path = library or library_path()
    backend = backend or _native.BACKEND
    session: _Session | None
    if backend == "cffi":
        if not cffi_available():
            raise NavarchError(f"the cffi telemetry backend is not available: {_native.REASON}")
        rc, session, detail = _CffiSession.open(path)
    else:
        rc, raw, detail = _nvml_ctypes.open_session(path)
        session = _CtypesSession(raw) if raw is not None else None
    if session is None:
        raise NVMLError(rc, detail)
    if not batched:
        session.set_batched(False)
    return Nvml(session, backend, path)


class Nvml:
    """An open NVML session. Close it (or use it as a context manager) to shut NVML down."""

    def __init__(self, session: _Session, backend: Backend, library: str) -> None:
        self.backend: Backend = backend
        self.library = library
        self._session = session
        self._lock = threading.Lock()
        self._users = 0  # samples and event sets in flight; the last one out shuts NVML down
        self._closing = False
        self._uuids: dict[int, str] = {}

    @property
    def device_count(self) -> int:
        return self._session.count

    def sample(self) -> tuple[GpuSample, ...]:
        """Reads every metric of every GPU: one call into C on the cffi backend."""
        self._retain()
        try:
            samples = self._session.samples()
        finally:
            self._release()
        for s in samples:
            if s.uuid is not None:
                self._uuids[s.index] = s.uuid
        return tuple(samples)

    def running_processes(self, index: int) -> tuple[GpuProcess, ...]:
        """The processes that hold GPU `index` now, compute ones first. Not part of a sample:
        one NVML query per kind, asked again when processes start in between."""
        self._retain()
        try:
            return list_processes(self._session, index)
        finally:
            self._release()

    def watch_events(
        self, types: EventType = DEFAULT_EVENTS, *, wait_timeout: float = 0.5
    ) -> EventWatcher:
        """Registers `types` on every GPU; use as `async with nvml.watch_events() as events`."""
        return EventWatcher(self, types, wait_timeout)

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            last = self._users == 0
        if last:
            self._session.close()

    def __enter__(self) -> Nvml:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _retain(self) -> None:
        with self._lock:
            if self._closing:
                raise NVMLError(Return.UNINITIALIZED, "the NVML session is closed")
            self._users += 1

    def _release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._closing and self._users == 0
        if last:
            self._session.close()


@attrs.frozen
class GpuInventory:
    """This machine's GPUs; empty, with the reason in `unavailable`, when NVML cannot load."""

    gpus: tuple[GpuSample, ...]
    unavailable: str | None
    backend: Backend


def inventory(library: str | None = None, *, backend: Backend | None = None) -> GpuInventory:
    """Samples every GPU once; a machine without libnvidia-ml has an empty inventory."""
    try:
        nvml = open_nvml(library, backend=backend)
    except LibraryNotFound as exc:
        return GpuInventory((), exc.detail or str(exc), backend or _native.BACKEND)
    with nvml:
        return GpuInventory(nvml.sample(), None, nvml.backend)
