"""The record of one GPU's sample as csrc/telemetry_nvml.h lays it out (`navarch_nvml_gpu`),
with its field codes and limits, for the pure-Python backend (`_nvml_ctypes`); keep the two in
step."""

from __future__ import annotations

import ctypes
from ctypes import c_int, c_uint, c_ulonglong

from navarch.telemetry._nvml_abi import (
    FI_DEV_GET_GPU_RECOVERY_ACTION,
    FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL,
    FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL,
    FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL,
    FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL,
    GPU_IS_LOST,
    RESET_REQUIRED,
)

MAX_LINKS = 36
# The kinds of navarch_nvml_processes, as in telemetry_nvml.h.
COMPUTE_PROCESSES, GRAPHICS_PROCESSES = 0, 1
# One process as the backends hand it over: pid, used memory, GPU and compute instance ids.
ProcessRecord = tuple[int, int, int, int]
NAME_LEN = 96
UUID_LEN = 96
BUS_ID_LEN = 32

# Index into GpuRecord.rc, as in telemetry_nvml.h.
(
    F_NAME,
    F_UUID,
    F_PCI_BUS_ID,
    F_MEMORY,
    F_UTILIZATION,
    F_TEMPERATURE,
    F_TEMPERATURE_SLOWDOWN,
    F_TEMPERATURE_SHUTDOWN,
    F_POWER_USAGE,
    F_POWER_LIMIT,
    F_ECC_CORRECTED_VOLATILE,
    F_ECC_UNCORRECTED_VOLATILE,
    F_ECC_CORRECTED_AGGREGATE,
    F_ECC_UNCORRECTED_AGGREGATE,
    F_RETIRED_PAGES_SBE,
    F_RETIRED_PAGES_DBE,
    F_RETIRED_PAGES_PENDING,
    F_REMAPPED_ROWS,
    F_NVLINK,
    F_PCIE_REPLAY,
    F_PCIE_LINK_GEN,
    F_PCIE_LINK_GEN_MAX,
    F_PCIE_LINK_WIDTH,
    F_PCIE_LINK_WIDTH_MAX,
    F_CLOCK_EVENT_REASONS,
    F_RECOVERY_ACTION,
    F_NVLINK_REPLAY_ERRORS,
    F_NVLINK_RECOVERY_ERRORS,
    F_NVLINK_CRC_FLIT_ERRORS,
    F_NVLINK_CRC_DATA_ERRORS,
    F_COUNT,
) = range(31)


# The values that only nvmlDeviceGetFieldValues serves (FIELD_ONLY in csrc/nvml_session.h), first
# in its one call per GPU, with the GpuRecord attribute each fills and the code it reports under.
FIELD_VALUES = (
    (FI_DEV_GET_GPU_RECOVERY_ACTION, "recovery_action", F_RECOVERY_ACTION),
    (FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL, "nvlink_replay_errors", F_NVLINK_REPLAY_ERRORS),
    (FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL, "nvlink_recovery_errors", F_NVLINK_RECOVERY_ERRORS),
    (FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, "nvlink_crc_flit_errors", F_NVLINK_CRC_FLIT_ERRORS),
    (FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL, "nvlink_crc_data_errors", F_NVLINK_CRC_DATA_ERRORS),
)


class GpuRecord(ctypes.Structure):
    """navarch_nvml_gpu from telemetry_nvml.h, field for field."""

    # name and uuid are left out: NVML writes them at their offsets, and Python never reads them.
    index: int
    status: int
    pci_bus_id: bytes
    memory_total: int
    memory_used: int
    utilization_gpu: int
    utilization_memory: int
    temperature: int
    temperature_slowdown: int
    temperature_shutdown: int
    power_usage: int
    power_limit: int
    ecc_corrected_volatile: int
    ecc_uncorrected_volatile: int
    ecc_corrected_aggregate: int
    ecc_uncorrected_aggregate: int
    retired_pages_sbe: int
    retired_pages_dbe: int
    retired_pages_pending: bool
    remapped_rows_corrected: int
    remapped_rows_uncorrected: int
    remapped_rows_pending: bool
    remapped_rows_failure: bool
    pcie_replay_counter: int
    pcie_link_gen: int
    pcie_link_gen_max: int
    pcie_link_width: int
    pcie_link_width_max: int
    clock_event_reasons: int
    recovery_action: int
    nvlink_replay_errors: int
    nvlink_recovery_errors: int
    nvlink_crc_flit_errors: int
    nvlink_crc_data_errors: int
    nvlink_count: int
    nvlink_state: ctypes.Array[ctypes.c_byte]
    rc: ctypes.Array[c_int]

    _fields_ = [
        ("index", c_uint),
        ("status", c_int),
        ("name", ctypes.c_char * NAME_LEN),
        ("uuid", ctypes.c_char * UUID_LEN),
        ("pci_bus_id", ctypes.c_char * BUS_ID_LEN),
        ("memory_total", c_ulonglong),
        ("memory_used", c_ulonglong),
        ("utilization_gpu", c_uint),
        ("utilization_memory", c_uint),
        ("temperature", c_int),
        ("temperature_slowdown", c_uint),
        ("temperature_shutdown", c_uint),
        ("power_usage", c_uint),
        ("power_limit", c_uint),
        ("ecc_corrected_volatile", c_ulonglong),
        ("ecc_uncorrected_volatile", c_ulonglong),
        ("ecc_corrected_aggregate", c_ulonglong),
        ("ecc_uncorrected_aggregate", c_ulonglong),
        ("retired_pages_sbe", c_uint),
        ("retired_pages_dbe", c_uint),
        ("retired_pages_pending", ctypes.c_bool),
        ("remapped_rows_corrected", c_uint),
        ("remapped_rows_uncorrected", c_uint),
        ("remapped_rows_pending", ctypes.c_bool),
        ("remapped_rows_failure", ctypes.c_bool),
        ("pcie_replay_counter", c_uint),
        ("pcie_link_gen", c_uint),
        ("pcie_link_gen_max", c_uint),
        ("pcie_link_width", c_uint),
        ("pcie_link_width_max", c_uint),
        ("clock_event_reasons", c_ulonglong),
        ("recovery_action", c_ulonglong),
        ("nvlink_replay_errors", c_ulonglong),
        ("nvlink_recovery_errors", c_ulonglong),
        ("nvlink_crc_flit_errors", c_ulonglong),
        ("nvlink_crc_data_errors", c_ulonglong),
        ("nvlink_count", c_uint),
        ("nvlink_state", ctypes.c_byte * MAX_LINKS),
        ("rc", c_int * F_COUNT),
    ]

    def record(self, field: int, rc: int) -> None:
        """Stores a field's code; GPU_IS_LOST and RESET_REQUIRED also mark the whole GPU."""
        self.rc[field] = rc
        if rc in (GPU_IS_LOST, RESET_REQUIRED) and self.status != GPU_IS_LOST:
            self.status = rc
