"""Which telemetry code runs here, and which NVIDIA driver and NVML it talks to.

`navarch version` and `navarch gpus` show these facts, so an install that fell back to the
pure-Python telemetry, or a machine without the driver, is visible rather than silent.
"""

from __future__ import annotations

import ctypes

import attrs

from navarch.telemetry import _native
from navarch.telemetry.nvml import Backend, library_path

_SUCCESS = 0
_VERSION_LEN = 80  # NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE and NVML_SYSTEM_NVML_VERSION_BUFFER_SIZE


@attrs.frozen
class TelemetryVersions:
    backend: Backend
    fallback_reason: str | None  # why the pure-Python fallback runs; None with the extension
    library: str  # the libnvidia-ml navarch loads
    driver_version: str | None
    nvml_version: str | None
    unavailable: str | None  # why libnvidia-ml could not be asked; None when it answered

    @property
    def backend_text(self) -> str:
        if self.fallback_reason is None:
            return "compiled extension (navarch._telemetry)"
        return f"pure-Python fallback: {self.fallback_reason}"


def fallback_reason() -> str | None:
    """Why the pure-Python telemetry fallback runs; None when the compiled extension does."""
    return _native.REASON or None


def telemetry_versions(library: str | None = None) -> TelemetryVersions:
    """The telemetry backend in use and the versions libnvidia-ml reports, if it loads."""
    path = library or library_path()
    driver = nvml = unavailable = None
    try:
        driver, nvml = _query(path)
    except _Unavailable as exc:
        unavailable = str(exc)
    return TelemetryVersions(
        backend=_native.BACKEND,
        fallback_reason=fallback_reason(),
        library=path,
        driver_version=driver,
        nvml_version=nvml,
        unavailable=unavailable,
    )


class _Unavailable(Exception):
    pass


def _query(path: str) -> tuple[str | None, str | None]:
    """(driver version, NVML version); either is None where the library lacks the call."""
    try:
        library = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
    except OSError as exc:
        raise _Unavailable(str(exc)) from None
    init = getattr(library, "nvmlInit_v2", None) or getattr(library, "nvmlInit", None)
    if init is None:
        raise _Unavailable(f"{path} has no nvmlInit")
    rc = init()
    if rc != _SUCCESS:
        raise _Unavailable(f"nvmlInit failed: {_error_text(library, rc)}")
    try:
        return (
            _read(library, "nvmlSystemGetDriverVersion"),
            _read(library, "nvmlSystemGetNVMLVersion"),
        )
    finally:
        shutdown = getattr(library, "nvmlShutdown", None)
        if shutdown is not None:
            shutdown()


def _read(library: ctypes.CDLL, name: str) -> str | None:
    fn = getattr(library, name, None)
    if fn is None:
        return None
    buffer = ctypes.create_string_buffer(_VERSION_LEN)
    if fn(buffer, ctypes.c_uint(_VERSION_LEN)) != _SUCCESS:
        return None
    return buffer.value.decode(errors="replace")


def _error_text(library: ctypes.CDLL, rc: int) -> str:
    error_string = getattr(library, "nvmlErrorString", None)
    if error_string is None:
        return f"NVML error {rc}"
    error_string.restype = ctypes.c_char_p
    text: bytes | None = error_string(rc)
    return (text or b"").decode(errors="replace") or f"NVML error {rc}"
