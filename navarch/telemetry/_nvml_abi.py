"""The part of NVML's ABI that the pure-Python backend reads: csrc/nvml_abi.h in ctypes.

These layouts are NVIDIA's, not navarch's: they follow nvml.h as nvml_abi.h declares them for the
extension and the fake libnvidia-ml; keep the two in step.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from ctypes import c_int, c_uint, c_ulonglong, c_void_p

SUCCESS = 0
INVALID_ARGUMENT = 2
NOT_SUPPORTED = 3
INSUFFICIENT_SIZE = 7
LIBRARY_NOT_FOUND = 12
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
RESET_REQUIRED = 16
ARGUMENT_VERSION_MISMATCH = 25
UNKNOWN = 999


class PciInfo(ctypes.Structure):
    busIdLegacy: bytes
    domain: int
    bus: int
    device: int
    pciDeviceId: int
    pciSubSystemId: int
    busId: bytes

    _fields_ = [
        ("busIdLegacy", ctypes.c_char * 16),
        ("domain", c_uint),
        ("bus", c_uint),
        ("device", c_uint),
        ("pciDeviceId", c_uint),
        ("pciSubSystemId", c_uint),
        ("busId", ctypes.c_char * 32),
    ]


class Memory(ctypes.Structure):
    total: int
    free: int
    used: int

    _fields_ = [("total", c_ulonglong), ("free", c_ulonglong), ("used", c_ulonglong)]


class MemoryV2(ctypes.Structure):
    version: int
    total: int
    reserved: int
    free: int
    used: int

    _fields_ = [
        ("version", c_uint),
        ("total", c_ulonglong),
        ("reserved", c_ulonglong),
        ("free", c_ulonglong),
        ("used", c_ulonglong),
    ]


class Utilization(ctypes.Structure):
    gpu: int
    memory: int

    _fields_ = [("gpu", c_uint), ("memory", c_uint)]


class TemperatureV1(ctypes.Structure):
    version: int
    sensorType: int
    temperature: int

    _fields_ = [("version", c_uint), ("sensorType", c_int), ("temperature", c_int)]


class Value(ctypes.Union):
    dVal: float
    uiVal: int
    ulVal: int
    ullVal: int
    sllVal: int
    siVal: int
    usVal: int

    _fields_ = [
        ("dVal", ctypes.c_double),
        ("uiVal", c_uint),
        ("ulVal", ctypes.c_ulong),
        ("ullVal", c_ulonglong),
        ("sllVal", ctypes.c_longlong),
        ("siVal", c_int),
        ("usVal", ctypes.c_ushort),
    ]


class FieldValue(ctypes.Structure):
    fieldId: int
    scopeId: int
    timestamp: int
    latencyUsec: int
    valueType: int
    nvmlReturn: int
    value: Value

    _fields_ = [
        ("fieldId", ctypes.c_uint32),
        ("scopeId", ctypes.c_uint32),
        ("timestamp", ctypes.c_int64),
        ("latencyUsec", ctypes.c_int64),
        ("valueType", c_int),
        ("nvmlReturn", c_int),
        ("value", Value),
    ]


class EventData(ctypes.Structure):
    device: int | None
    eventType: int
    eventData: int
    gpuInstanceId: int
    computeInstanceId: int

    _fields_ = [
        ("device", c_void_p),
        ("eventType", c_ulonglong),
        ("eventData", c_ulonglong),
        ("gpuInstanceId", c_uint),
        ("computeInstanceId", c_uint),
    ]


class ProcessInfo(ctypes.Structure):
    """nvmlProcessInfo_v2_t, filled by the _v2 and _v3 running-process queries."""

    pid: int
    usedGpuMemory: int
    gpuInstanceId: int
    computeInstanceId: int

    _fields_ = [
        ("pid", c_uint),
        ("usedGpuMemory", c_ulonglong),
        ("gpuInstanceId", c_uint),
        ("computeInstanceId", c_uint),
    ]


def struct_version(struct: type[ctypes.Structure], version: int) -> int:
    """NVML_STRUCT_VERSION: a versioned struct's size and version, in its `version` field."""
    return ctypes.sizeof(struct) | (version << 24)


MEMORY_V2 = struct_version(MemoryV2, 2)
TEMPERATURE_V1 = struct_version(TemperatureV1, 1)
FI_DEV_GET_GPU_RECOVERY_ACTION = 230
FI_DEV_ECC_SBE_VOL_TOTAL = 3
FI_DEV_ECC_DBE_VOL_TOTAL = 4
FI_DEV_ECC_SBE_AGG_TOTAL = 5
FI_DEV_ECC_DBE_AGG_TOTAL = 6
FI_DEV_RETIRED_SBE = 29
FI_DEV_RETIRED_DBE = 30
FI_DEV_RETIRED_PENDING = 31
FI_DEV_PCIE_REPLAY_COUNTER = 94
FI_DEV_REMAPPED_COR = 142
FI_DEV_REMAPPED_UNC = 143
FI_DEV_REMAPPED_PENDING = 144
FI_DEV_REMAPPED_FAILURE = 145
FI_DEV_NVLINK_GET_STATE = 165  # scopeId: the link
NVLINK_STATE_INACTIVE, NVLINK_STATE_ACTIVE = 0, 1
FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL = 38
FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL = 45
FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL = 52
FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL = 59

# How to read an nvmlValue_t, by its nvmlValueType_t; other types read the 64-bit member.
VALUE_READERS: dict[int, Callable[[Value], int]] = {
    0: lambda v: int(v.dVal),
    1: lambda v: v.uiVal,
    2: lambda v: v.ulVal,
    4: lambda v: v.sllVal & 0xFFFFFFFFFFFFFFFF,
    5: lambda v: v.siVal & 0xFFFFFFFFFFFFFFFF,
    6: lambda v: v.usVal,
}
