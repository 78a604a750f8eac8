"""NVML's numbers by name: return codes and the errors raised for them, and NVML's other enums.

Both backends hand back NVML's raw numbers; these enums are how the rest of navarch reads them.
An error built from a code is the subclass for that code, so callers catch `GpuIsLost` rather than
compare numbers.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from navarch.errors import NavarchError


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


def as_return(code: int) -> Return:
    """The Return for an NVML code; faster than `Return(code)`, which decoding calls per value."""
    known = _RETURNS.get(code)
    return known if known is not None else Return(code)


class NVMLError(NavarchError):
    """An NVML call failed. `NVMLError(code)` builds the subclass for that code."""

    return_code: ClassVar[Return | None] = None
    _by_code: ClassVar[dict[int, type[NVMLError]]] = {}

    code: Return
    detail: str

    def __init_subclass__(cls, **kwargs: object) -> None:
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
