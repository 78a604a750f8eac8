"""Loads navarch._telemetry, the compiled telemetry extension, or says why it is not in use.

`BACKEND` is "cffi" when the extension is loaded and "python" when the pure-Python fallbacks
run instead: because the extension was not compiled on this machine (it is optional in the
build), or because NAVARCH_DISABLE_NATIVE=1 asks for the fallbacks.

The extension has no stubs, so the part of its `ffi` and `lib` that navarch uses is declared
here, from csrc/telemetry_*.cdef; keep the two in step. A C handle that Python only passes back
to C (`navarch_nvml *`, a record buffer) is an `object`.
"""

from __future__ import annotations

import os
from typing import Literal, Protocol, TypeVar, overload

T = TypeVar("T")


class CArray(Protocol[T]):
    """A cffi array or pointer: `p[0]`, or a slice of an array as a list."""

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __len__(self) -> int: ...


class CBuffer(Protocol):
    """What `ffi.buffer` returns: the memory of a C object, read as bytes."""

    def __getitem__(self, index: slice) -> bytes: ...


# A char[] field or array; only ffi.string and ffi.unpack read it.
CChars = CArray[bytes]


class Xid(Protocol):
    """navarch_xid."""

    code: int
    inferred: int
    pci_raw: CChars
    pci_bus_id: CChars
    pid: int
    name: CChars
    detail_off: int
    detail_len: int
    has_action: int
    action_old: int
    action_new: int
    action_old_name: CChars
    action_new_name: CChars
    has_nvlink: int
    nvl_fatal: int
    nvl_containment: int
    nvl_link: int
    nvl_has_error_status: int
    nvl_intrinfo: int
    nvl_error_status: int
    nvl_unit: CChars


class KmsgRecord(Protocol):
    """navarch_kmsg_record."""

    seq: int
    ts_usec: int
    facility: int
    level: int
    flag: int
    truncated: int
    text_len: int
    text: CChars
    xid: Xid


class KmsgReader(Protocol):
    """navarch_kmsg_reader: the fields Python sets and the counters it reads."""

    fd: int
    mode: int
    trust_user: int
    read_size: int
    has_last: int
    last_seq: int
    has_skip: int
    skip_through: int
    records: int
    xids: int
    lost: int
    overruns: int
    malformed: int
    oversized: int
    skipped: int


class NvmlEvent(Protocol):
    """navarch_nvml_event."""

    gpu_index: int
    event_type: int
    event_data: int
    gpu_instance_id: int
    compute_instance_id: int


class NvmlProcess(Protocol):
    """navarch_nvml_process."""

    pid: int
    used_memory: int
    gpu_instance_id: int
    compute_instance_id: int


class Ffi(Protocol):
    NULL: object

    @overload
    def new(self, cdecl: Literal["navarch_xid *"]) -> Xid: ...
    @overload
    def new(self, cdecl: Literal["navarch_kmsg_record *"]) -> KmsgRecord: ...
    @overload
    def new(self, cdecl: Literal["navarch_kmsg_record[]"], init: int) -> CArray[KmsgRecord]: ...
    @overload
    def new(self, cdecl: Literal["navarch_kmsg_reader *"]) -> KmsgReader: ...
    @overload
    def new(self, cdecl: Literal["navarch_nvml_event *"]) -> NvmlEvent: ...
    @overload
    def new(
        self, cdecl: Literal["navarch_nvml **", "navarch_nvml_events **"]
    ) -> CArray[object]: ...
    @overload
    def new(self, cdecl: Literal["navarch_nvml_gpu[]"], init: int) -> object: ...
    @overload
    def new(self, cdecl: Literal["navarch_nvml_process[]"], init: int) -> CArray[NvmlProcess]: ...
    @overload
    def new(self, cdecl: Literal["unsigned int *"]) -> CArray[int]: ...
    @overload
    def new(self, cdecl: Literal["char[]"], init: int) -> CChars: ...
    @overload
    def new(self, cdecl: Literal["uint32_t *"]) -> CArray[int]: ...
    @overload
    def new(self, cdecl: Literal["unsigned long long[]"], init: int) -> CArray[int]: ...
    def string(self, cdata: CChars) -> bytes: ...
    def unpack(self, cdata: CChars, length: int) -> bytes: ...
    def buffer(self, cdata: object) -> CBuffer: ...


class Lib(Protocol):
    NAVARCH_KMSG_MODE_DEVICE: int
    NAVARCH_KMSG_MODE_STREAM: int
    NAVARCH_KMSG_ONLY_XID: int
    NAVARCH_KMSG_AGAIN: int
    NAVARCH_KMSG_FULL: int
    NAVARCH_KMSG_EOF: int

    def navarch_xid_parse(self, text: bytes, len: int, out: Xid, /) -> int: ...
    def navarch_kmsg_parse_record(
        self, rec: bytes, len: int, trust_user: int, out: KmsgRecord, /
    ) -> int: ...
    def navarch_kmsg_reader_init(self, r: KmsgReader, fd: int, mode: int, /) -> None: ...
    def navarch_kmsg_drain(
        self,
        r: KmsgReader,
        out: CArray[KmsgRecord],
        cap: int,
        flags: int,
        n_out: CArray[int],
        /,
    ) -> int: ...
    def navarch_nvml_open(
        self, path: object, out: CArray[object], error: CChars, error_len: int, /
    ) -> int: ...
    def navarch_nvml_close(self, s: object, /) -> None: ...
    def navarch_nvml_device_count(self, s: object, /) -> int: ...
    def navarch_nvml_set_batched(self, s: object, batched: int, /) -> None: ...
    def navarch_nvml_sample(self, s: object, out: object, capacity: int, /) -> int: ...
    def navarch_nvml_events_create(
        self,
        s: object,
        mask: int,
        out: CArray[object],
        registered: CArray[int],
        capacity: int,
        /,
    ) -> int: ...
    def navarch_nvml_events_wait(self, e: object, timeout_ms: int, out: NvmlEvent, /) -> int: ...
    def navarch_nvml_events_free(self, e: object, /) -> None: ...
    def navarch_nvml_processes(
        self,
        s: object,
        index: int,
        kind: int,
        out: CArray[NvmlProcess],
        capacity: int,
        count: CArray[int],
        /,
    ) -> int: ...


ffi: Ffi | None = None
lib: Lib | None = None
REASON = ""  # why BACKEND is "python"; empty when the extension is in use

if os.environ.get("NAVARCH_DISABLE_NATIVE") == "1":
    REASON = "disabled by NAVARCH_DISABLE_NATIVE=1"
else:
    try:
        from navarch._telemetry import ffi as _ffi
        from navarch._telemetry import lib as _lib
    except ImportError as exc:
        REASON = f"navarch._telemetry is not built ({exc})"
    else:
        ffi, lib = _ffi, _lib

BACKEND: Literal["cffi", "python"] = "cffi" if lib is not None else "python"


def loaded() -> tuple[Ffi, Lib]:
    """The extension's ffi and lib, for the code that runs only when BACKEND is "cffi"."""
    if ffi is None or lib is None:
        raise RuntimeError(f"navarch._telemetry is not in use: {REASON}")
    return ffi, lib
