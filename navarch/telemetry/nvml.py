"""NVIDIA GPU telemetry through NVML: one call samples every GPU, events arrive as they happen.

    with open_nvml() as nvml:
        for gpu in nvml.sample():
            print(gpu.index, gpu.temperature_c, gpu.field_status["temperature"])

A machine without libnvidia-ml is a normal machine with no NVIDIA GPUs: `open_nvml()` raises
`LibraryNotFound`, and `inventory()` returns an empty inventory that says why.

Two backends give identical results: the compiled extension navarch._telemetry ("cffi") and a
ctypes rewrite of it ("python"), chosen by navarch.telemetry._native.
"""

from __future__ import annotations

import collections
import ctypes
import enum
import os
import struct
import threading
import types
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import attrs
import trio

from navarch.errors import NavarchError
from navarch.telemetry import _native, _nvml_ctypes

DEFAULT_LIBRARY = "libnvidia-ml.so.1"
LIBRARY_ENV = "NAVARCH_NVML_LIBRARY"

Backend = Literal["cffi", "python"]


class Return(enum.IntEnum):
    """NVML return codes (nvmlReturn_t)."""

    SUCCESS = 0
    UNINITIALIZED = 1
    INVALID_ARGUMENT = 2
    NOT_SUPPORTED = 3
    NO_PERMISSION = 4
    ALREADY_INITIALIZED = 5
    NOT_FOUND = 6
    INSUFFICIENT_SIZE = 7
    INSUFFICIENT_POWER = 8
    DRIVER_NOT_LOADED = 9
    TIMEOUT = 10
    IRQ_ISSUE = 11
    LIBRARY_NOT_FOUND = 12
    FUNCTION_NOT_FOUND = 13
    CORRUPTED_INFOROM = 14
    GPU_IS_LOST = 15
    RESET_REQUIRED = 16
    OPERATING_SYSTEM = 17
    LIB_RM_VERSION_MISMATCH = 18
    IN_USE = 19
    MEMORY = 20
    NO_DATA = 21
    VGPU_ECC_NOT_SUPPORTED = 22
    INSUFFICIENT_RESOURCES = 23
    FREQ_NOT_SUPPORTED = 24
    ARGUMENT_VERSION_MISMATCH = 25
    DEPRECATED = 26
    NOT_READY = 27
    GPU_NOT_FOUND = 28
    INVALID_STATE = 29
    UNKNOWN = 999

    @classmethod
    def _missing_(cls, value: object) -> Return | None:
        # A newer driver may answer with a code this list lacks; keep the number.
        if not isinstance(value, int):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"CODE_{value}"
        member._value_ = value
        return member


_RETURNS = {int(r): r for r in Return}
_SUCCESS = Return.SUCCESS


def _return(code: int) -> Return:
    known = _RETURNS.get(code)
    return known if known is not None else Return(code)


class NVMLError(NavarchError):
    """An NVML call failed. `NVMLError(code)` builds the subclass for that code."""

    return_code: ClassVar[Return | None] = None
    _by_code: ClassVar[dict[int, type[NVMLError]]] = {}

    code: Return
    detail: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.return_code is not None:
            NVMLError._by_code[cls.return_code] = cls

    def __new__(cls, code: int, detail: str = "") -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._by_code.get(code, NVMLError)
        return super().__new__(cls, code, detail)

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code = Return(code)
        self.detail = detail

    def __str__(self) -> str:
        what = self.code.name.lower().replace("_", " ")
        text = f"NVML {what} (code {int(self.code)})"
        # NVML's own error string often just repeats the code's name.
        if not self.detail or self.detail.lower().rstrip(".") == what:
            return text
        return f"{text}: {self.detail}"


class Uninitialized(NVMLError):
    return_code = Return.UNINITIALIZED


class InvalidArgument(NVMLError):
    return_code = Return.INVALID_ARGUMENT


class NotSupported(NVMLError):
    return_code = Return.NOT_SUPPORTED


class NoPermission(NVMLError):
    return_code = Return.NO_PERMISSION


class NotFound(NVMLError):
    return_code = Return.NOT_FOUND


class DriverNotLoaded(NVMLError):
    return_code = Return.DRIVER_NOT_LOADED


class Timeout(NVMLError):
    return_code = Return.TIMEOUT


class LibraryNotFound(NVMLError):
    """libnvidia-ml could not be loaded: on most machines, there are no NVIDIA GPUs."""

    return_code = Return.LIBRARY_NOT_FOUND


class FunctionNotFound(NVMLError):
    """The loaded libnvidia-ml lacks the entry point (an older or newer driver)."""

    return_code = Return.FUNCTION_NOT_FOUND


class GpuIsLost(NVMLError):
    """The GPU fell off the bus; the kernel log reports the same as XID 79."""

    return_code = Return.GPU_IS_LOST


class ResetRequired(NVMLError):
    return_code = Return.RESET_REQUIRED


class LibRmVersionMismatch(NVMLError):
    """libnvidia-ml and the loaded kernel module come from different driver versions."""

    return_code = Return.LIB_RM_VERSION_MISMATCH


class UnknownError(NVMLError):
    return_code = Return.UNKNOWN


class EventType(enum.IntFlag):
    """NVML event types (nvmlEventType*) that navarch watches."""

    SINGLE_BIT_ECC = 0x1
    DOUBLE_BIT_ECC = 0x2
    XID = 0x8
    GPU_UNAVAILABLE = 0x4000
    GPU_RECOVERY_ACTION = 0x8000


DEFAULT_EVENTS = (
    EventType.XID
    | EventType.SINGLE_BIT_ECC
    | EventType.DOUBLE_BIT_ECC
    | EventType.GPU_UNAVAILABLE
    | EventType.GPU_RECOVERY_ACTION
)


class ClockEventReason(enum.IntFlag):
    """Bits of GpuSample.clock_event_reasons: why the GPU runs below its top clocks."""

    GPU_IDLE = 0x1
    APPLICATIONS_CLOCKS_SETTING = 0x2
    SW_POWER_CAP = 0x4
    HW_SLOWDOWN = 0x8
    SYNC_BOOST = 0x10
    SW_THERMAL_SLOWDOWN = 0x20
    HW_THERMAL_SLOWDOWN = 0x40
    HW_POWER_BRAKE_SLOWDOWN = 0x80
    DISPLAY_CLOCK_SETTING = 0x100


class RecoveryAction(enum.IntEnum):
    """Values of GpuSample.recovery_action: what the driver says the GPU needs."""

    NONE = 0
    GPU_RESET = 1
    NODE_REBOOT = 2
    DRAIN_P2P = 3
    DRAIN_AND_RESET = 4
    RECOVER_IMEX_DOMAIN = 5
    BUS_RESET = 6
    SYSTEM_REBOOT = 7


# Keys of GpuSample.field_status, one per NVML query, in the order of NAVARCH_NVML_F_*.
FIELDS = (
    "name",
    "uuid",
    "pci_bus_id",
    "memory",
    "utilization",
    "temperature",
    "temperature_slowdown",
    "temperature_shutdown",
    "power_usage",
    "power_limit",
    "ecc_corrected_volatile",
    "ecc_uncorrected_volatile",
    "ecc_corrected_aggregate",
    "ecc_uncorrected_aggregate",
    "retired_pages_sbe",
    "retired_pages_dbe",
    "retired_pages_pending",
    "remapped_rows",
    "nvlink",
    "pcie_replay",
    "clock_event_reasons",
    "recovery_action",
)


# Not slotted: attrs' frozen __init__ fills a __dict__ in half the time it sets 31 slots, and
# building these objects is most of what a sample costs.
@attrs.frozen(slots=False)
class GpuSample:
    """What one GPU reported in one sample.

    A value is None when its query failed; `field_status` holds NVML's code for every query
    (keys in FIELDS), and `status` is GPU_IS_LOST or RESET_REQUIRED when the whole GPU is.
    """

    index: int
    status: Return
    name: str | None
    uuid: str | None
    pci_bus_id: str | None
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    utilization_gpu_pct: int | None
    utilization_memory_pct: int | None
    temperature_c: int | None
    temperature_slowdown_c: int | None
    temperature_shutdown_c: int | None
    power_usage_mw: int | None
    power_limit_mw: int | None
    ecc_corrected_volatile: int | None
    ecc_uncorrected_volatile: int | None
    ecc_corrected_aggregate: int | None
    ecc_uncorrected_aggregate: int | None
    retired_pages_sbe: int | None  # pages retired after multiple single-bit errors
    retired_pages_dbe: int | None  # pages retired after a double-bit error
    retired_pages_pending: bool | None  # retirement waits for the next reset
    remapped_rows_corrected: int | None
    remapped_rows_uncorrected: int | None
    remapped_rows_pending: bool | None  # a remap waits for the next reset
    remapped_rows_failure: bool | None  # a remap failed: the GPU needs replacing
    pcie_replay_counter: int | None
    clock_event_reasons: int | None  # ClockEventReason bits
    recovery_action: int | None  # a RecoveryAction value; None where the driver lacks it
    # One entry per link NVML knows: True up, False down, None when the link reported an error.
    nvlink_active: tuple[bool | None, ...]
    field_status: Mapping[str, Return]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping: codes as their names."""
        out = attrs.asdict(self, recurse=False)
        out["status"] = self.status.name
        out["nvlink_active"] = list(self.nvlink_active)
        out["field_status"] = {k: v.name for k, v in self.field_status.items()}
        return out


def _record_struct() -> struct.Struct:
    """A struct.Struct that reads navarch_nvml_gpu, laid out from its ctypes copy, in one call.

    Arrays come out as bytes: the strings, and the NVLink states and return codes, which change
    so rarely that their decoded forms are looked up rather than rebuilt every sample.
    """
    codes = {ctypes.c_bool: "?", ctypes.c_int: "i", ctypes.c_uint: "I", ctypes.c_ulonglong: "Q"}
    record = _nvml_ctypes.GpuRecord
    fmt, end = "=", 0
    for name, ctype in record._fields_:
        field = getattr(record, name)
        fmt += f"{field.offset - end}x" if field.offset > end else ""
        fmt += f"{field.size}s" if issubclass(ctype, ctypes.Array) else codes[ctype]
        end = field.offset + field.size
    fmt += f"{ctypes.sizeof(record) - end}x" if ctypes.sizeof(record) > end else ""
    return struct.Struct(fmt)


# The numbers of navarch_nvml_gpu, in the order they have there and in GpuSample, each with the
# query (FIELDS key) that reads it.
_VALUES = (
    ("memory_total", "memory"),
    ("memory_used", "memory"),
    ("utilization_gpu", "utilization"),
    ("utilization_memory", "utilization"),
    ("temperature", "temperature"),
    ("temperature_slowdown", "temperature_slowdown"),
    ("temperature_shutdown", "temperature_shutdown"),
    ("power_usage", "power_usage"),
    ("power_limit", "power_limit"),
    ("ecc_corrected_volatile", "ecc_corrected_volatile"),
    ("ecc_uncorrected_volatile", "ecc_uncorrected_volatile"),
    ("ecc_corrected_aggregate", "ecc_corrected_aggregate"),
    ("ecc_uncorrected_aggregate", "ecc_uncorrected_aggregate"),
    ("retired_pages_sbe", "retired_pages_sbe"),
    ("retired_pages_dbe", "retired_pages_dbe"),
    ("retired_pages_pending", "retired_pages_pending"),
    ("remapped_rows_corrected", "remapped_rows"),
    ("remapped_rows_uncorrected", "remapped_rows"),
    ("remapped_rows_pending", "remapped_rows"),
    ("remapped_rows_failure", "remapped_rows"),
    ("pcie_replay_counter", "pcie_replay"),
    ("clock_event_reasons", "clock_event_reasons"),
    ("recovery_action", "recovery_action"),
)
_RECORD = _record_struct()
_RC_FORMAT = struct.Struct(f"={len(FIELDS)}i")
_FIRST_VALUE = [name for name, _ in _nvml_ctypes.GpuRecord._fields_].index(_VALUES[0][0])
_END_VALUES = _FIRST_VALUE + len(_VALUES)
_VALUE_FIELDS = tuple(FIELDS.index(query) for _, query in _VALUES)
_NVLINK = FIELDS.index("nvlink")
_CACHE_LIMIT = 4096


class _RcDecoding:
    """What one combination of return codes means for a sample's values."""

    __slots__ = ("bad_values", "field_status", "name_ok", "nvlink_ok", "pci_ok", "uuid_ok")

    def __init__(self, raw: bytes) -> None:
        codes = _RC_FORMAT.unpack(raw)
        self.field_status = types.MappingProxyType(
            {name: _return(c) for name, c in zip(FIELDS, codes, strict=True)}
        )
        self.bad_values = tuple(i for i, f in enumerate(_VALUE_FIELDS) if codes[f] != 0)
        self.name_ok, self.uuid_ok, self.pci_ok = (codes[i] == 0 for i in range(3))
        self.nvlink_ok = codes[_NVLINK] == 0


class _Decoder:
    """Turns the bytes of navarch_nvml_gpu records into GpuSamples; not thread-safe."""

    def __init__(self) -> None:
        self._rcs: dict[bytes, _RcDecoding] = {}
        self._texts: dict[bytes, str] = {}
        self._links: dict[bytes, tuple[bool | None, ...]] = {}

    def samples(self, data: bytes, count: int) -> list[GpuSample]:
        # The hot path of every sample: cache lookups are inlined, misses go to the methods.
        out = []
        size = _RECORD.size
        rcs, texts, links = self._rcs.get, self._texts.get, self._links.get
        for offset in range(0, count * size, size):
            t = _RECORD.unpack_from(data, offset)
            rc = rcs(t[-1]) or self._rc(t[-1])
            values = t[_FIRST_VALUE:_END_VALUES]
            if rc.bad_values:
                values = list(values)
                for i in rc.bad_values:
                    values[i] = None
            nvlink = t[-2][: t[-3]]
            out.append(
                GpuSample(
                    t[0],
                    _SUCCESS if t[1] == 0 else _return(t[1]),
                    (texts(t[2]) or self._text(t[2])) if rc.name_ok else None,
                    (texts(t[3]) or self._text(t[3])) if rc.uuid_ok else None,
                    (texts(t[4]) or self._text(t[4])) if rc.pci_ok else None,
                    *values,
                    (links(nvlink) or self._nvlink(nvlink)) if rc.nvlink_ok else (),
                    rc.field_status,
                )
            )
        return out

    def _rc(self, raw: bytes) -> _RcDecoding:
        decoded = self._rcs.get(raw)
        if decoded is None:
            if len(self._rcs) >= _CACHE_LIMIT:
                self._rcs.clear()
            decoded = self._rcs[raw] = _RcDecoding(raw)
        return decoded

    def _text(self, raw: bytes) -> str:
        text = self._texts.get(raw)
        if text is None:
            if len(self._texts) >= _CACHE_LIMIT:
                self._texts.clear()
            text = self._texts[raw] = raw.split(b"\0", 1)[0].decode(errors="replace")
        return text

    def _nvlink(self, raw: bytes) -> tuple[bool | None, ...]:
        links = self._links.get(raw)
        if links is None:
            if len(self._links) >= _CACHE_LIMIT:
                self._links.clear()
            states = struct.unpack(f"{len(raw)}b", raw)
            links = self._links[raw] = tuple(None if s < 0 else s == 1 for s in states)
        return links


@attrs.frozen
class NvmlEvent:
    """One event from NVML.

    `data` is the XID for XID events and the new RecoveryAction for recovery-action events.
    GPU_UNAVAILABLE also reports a GPU that NVML declared lost while navarch waited.
    """

    type: EventType
    gpu_index: int | None
    uuid: str | None
    data: int
    gpu_instance_id: int | None  # MIG instance ids; None outside MIG
    compute_instance_id: int | None

    @property
    def xid(self) -> int | None:
        return self.data if self.type == EventType.XID else None


_NO_INSTANCE = 0xFFFFFFFF


class _CffiSession:
    """The extension's session, with the same surface as _nvml_ctypes.Session."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.count = _native.lib.navarch_nvml_device_count(handle)
        self._lock = threading.Lock()  # one sample at a time uses the buffer and the decoder
        self._buffer = _native.ffi.new("navarch_nvml_gpu[]", self.count)
        self._decoder = _Decoder()

    @staticmethod
    def open(path: str | None) -> tuple[int, _CffiSession | None, str]:
        ffi, lib = _native.ffi, _native.lib
        out = ffi.new("navarch_nvml **")
        error = ffi.new("char[]", 512)
        rc = lib.navarch_nvml_open(path.encode() if path else ffi.NULL, out, error, len(error))
        if rc != 0:
            return rc, None, ffi.string(error).decode(errors="replace")
        return 0, _CffiSession(out[0]), ""

    def close(self) -> None:
        _native.lib.navarch_nvml_close(self._handle)

    def samples(self) -> list[GpuSample]:
        with self._lock:
            n = _native.lib.navarch_nvml_sample(self._handle, self._buffer, self.count)
            data = _native.ffi.buffer(self._buffer)[:]
            return self._decoder.samples(data, n)

    def events_create(self, mask: int) -> tuple[int, _CffiEventSet | None, list[int]]:
        ffi, lib = _native.ffi, _native.lib
        out = ffi.new("navarch_nvml_events **")
        registered = ffi.new("unsigned long long[]", max(self.count, 1))
        rc = lib.navarch_nvml_events_create(self._handle, mask, out, registered, self.count)
        if rc != 0:
            return rc, None, []
        return 0, _CffiEventSet(out[0]), list(registered[0 : self.count])


class _CffiEventSet:
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def wait(self, timeout_ms: int) -> tuple[int, Any]:
        event = _native.ffi.new("navarch_nvml_event *")
        rc = _native.lib.navarch_nvml_events_wait(self._handle, timeout_ms, event)
        return rc, event

    def free(self) -> None:
        _native.lib.navarch_nvml_events_free(self._handle)


class _CtypesSession:
    """_nvml_ctypes.Session, decoding its records as _CffiSession decodes the extension's."""

    def __init__(self, session: _nvml_ctypes.Session) -> None:
        self._session = session
        self.count = session.count
        self._lock = threading.Lock()
        self._decoder = _Decoder()
        self.close = session.close
        self.events_create = session.events_create

    def samples(self) -> list[GpuSample]:
        with self._lock:
            return self._decoder.samples(bytes(self._session.sample()), self.count)


def library_path() -> str:
    """The libnvidia-ml that navarch loads: NAVARCH_NVML_LIBRARY, else the driver's soname."""
    return os.environ.get(LIBRARY_ENV) or DEFAULT_LIBRARY


def cffi_available() -> bool:
    return _native.lib is not None and hasattr(_native.lib, "navarch_nvml_open")


def open_nvml(library: str | None = None, *, backend: Backend | None = None) -> Nvml:
    """Loads libnvidia-ml, initialises NVML and caches every GPU's handle.

    `library` defaults to library_path(); `backend` to navarch.telemetry._native.BACKEND.
    Raises LibraryNotFound where there is no NVIDIA driver, another NVMLError otherwise.
    """
    path = library or library_path()
    backend = backend or _native.BACKEND
    session: Any
    if backend == "cffi":
        if not cffi_available():
            raise NavarchError(f"the cffi telemetry backend is not available: {_native.REASON}")
        rc, session, detail = _CffiSession.open(path)
    else:
        rc, raw, detail = _nvml_ctypes.open_session(path)
        session = _CtypesSession(raw) if raw is not None else None
    if rc != 0:
        raise NVMLError(rc, detail)
    return Nvml(session, backend, path)


class Nvml:
    """An open NVML session. Close it (or use it as a context manager) to shut NVML down."""

    def __init__(self, session: Any, backend: Backend, library: str) -> None:
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


class EventWatcher:
    """NVML events as an async iterator.

    A worker thread waits in nvmlEventSetWait for at most `wait_timeout` seconds at a time.
    Cancelling the iteration returns at once and abandons that thread; what the thread still
    receives is kept for the next iteration, and the event set is freed by whichever of the
    thread and close() finishes last.
    """

    def __init__(self, nvml: Nvml, types: EventType, wait_timeout: float) -> None:
        self._nvml = nvml
        self._types = types
        self._timeout_ms = max(int(wait_timeout * 1000), 1)
        self._event_set: Any = None
        self._wait_lock = threading.Lock()
        self._ready: collections.deque[tuple[int, Any]] = collections.deque()
        self._closed = False
        self._freed = False
        self._lost: set[int | None] = set()
        self.registered: dict[int, EventType] = {}  # GPU index -> the types NVML accepted

    async def __aenter__(self) -> EventWatcher:
        self.open()
        if not self._nvml._uuids:
            await trio.to_thread.run_sync(self._nvml.sample)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        self._nvml._retain()
        rc, self._event_set, registered = self._nvml._session.events_create(int(self._types))
        if rc != 0:
            self._nvml._release()
            self._freed = self._closed = True
            raise NVMLError(rc, "could not create an NVML event set")
        self.registered = {i: EventType(m) for i, m in enumerate(registered)}

    def close(self) -> None:
        self._closed = True
        if self._wait_lock.acquire(blocking=False):
            try:
                self._free()
            finally:
                self._wait_lock.release()

    def _free(self) -> None:
        if not self._freed and self._event_set is not None:
            self._freed = True
            self._event_set.free()
            self._nvml._release()

    def _wait_once(self) -> None:
        with self._wait_lock:
            try:
                if self._closed or self._ready:
                    return
                rc, record = self._event_set.wait(self._timeout_ms)
                if rc != Return.TIMEOUT:
                    self._ready.append((rc, record))
            finally:
                if self._closed:
                    self._free()

    def __aiter__(self) -> EventWatcher:
        return self

    async def __anext__(self) -> NvmlEvent:
        while True:
            if self._ready:
                rc, record = self._ready.popleft()
                event = self._event(rc, record)
                if event is not None:
                    return event
                continue
            if self._closed:
                raise StopAsyncIteration
            await trio.to_thread.run_sync(self._wait_once, abandon_on_cancel=True)

    def _event(self, rc: int, record: Any) -> NvmlEvent | None:
        index = record.gpu_index if record.gpu_index >= 0 else None
        if rc == Return.GPU_IS_LOST:
            # Report a lost GPU once; a driver that keeps answering GPU_IS_LOST must not flood.
            if index in self._lost:
                return None
            self._lost.add(index)
            return NvmlEvent(EventType.GPU_UNAVAILABLE, index, self._uuid(index), 0, None, None)
        if rc != Return.SUCCESS:
            raise NVMLError(rc, "waiting for NVML events failed")
        return NvmlEvent(
            type=EventType(record.event_type),
            gpu_index=index,
            uuid=self._uuid(index),
            data=record.event_data,
            gpu_instance_id=_instance(record.gpu_instance_id),
            compute_instance_id=_instance(record.compute_instance_id),
        )

    def _uuid(self, index: int | None) -> str | None:
        return None if index is None else self._nvml._uuids.get(index)


def _instance(value: int) -> int | None:
    return None if value == _NO_INSTANCE else value


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
