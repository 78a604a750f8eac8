"""The pure-Python NVML backend: csrc/telemetry_nvml.c rewritten with ctypes.

It runs where navarch._telemetry could not be compiled, or when NAVARCH_DISABLE_NATIVE=1. Every
rule here (which entry point wins, when a GPU counts as lost, where the NVLink list ends) is the
C file's rule, so both backends return identical samples; keep the two in step.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from ctypes import byref, c_int, c_uint, c_ulonglong, c_void_p
from typing import TYPE_CHECKING

from navarch.telemetry._nvml_abi import (
    ARGUMENT_VERSION_MISMATCH,
    FUNCTION_NOT_FOUND,
    GPU_IS_LOST,
    INSUFFICIENT_SIZE,
    INVALID_ARGUMENT,
    LIBRARY_NOT_FOUND,
    MEMORY_V2,
    NOT_SUPPORTED,
    SUCCESS,
    TEMPERATURE_V1,
    EventData,
    Memory,
    MemoryV2,
    PciInfo,
    ProcessInfo,
    TemperatureV1,
    Utilization,
)
from navarch.telemetry._nvml_fields import (
    G_NVLINK,
    GROUP_OF_FIELD,
    FieldReader,
    Step,
    in_batch,
    learn_nvlink,
)
from navarch.telemetry._nvml_record import (
    BUS_ID_LEN,
    F_CLOCK_EVENT_REASONS,
    F_COUNT,
    F_ECC_CORRECTED_AGGREGATE,
    F_ECC_CORRECTED_VOLATILE,
    F_ECC_UNCORRECTED_AGGREGATE,
    F_ECC_UNCORRECTED_VOLATILE,
    F_MEMORY,
    F_NAME,
    F_NVLINK,
    F_PCI_BUS_ID,
    F_PCIE_LINK_GEN,
    F_PCIE_LINK_GEN_MAX,
    F_PCIE_LINK_WIDTH,
    F_PCIE_LINK_WIDTH_MAX,
    F_PCIE_REPLAY,
    F_POWER_LIMIT,
    F_POWER_USAGE,
    F_REMAPPED_ROWS,
    F_RETIRED_PAGES_DBE,
    F_RETIRED_PAGES_PENDING,
    F_RETIRED_PAGES_SBE,
    F_TEMPERATURE,
    F_TEMPERATURE_SHUTDOWN,
    F_TEMPERATURE_SLOWDOWN,
    F_UTILIZATION,
    F_UUID,
    MAX_LINKS,
    NAME_LEN,
    UUID_LEN,
    GpuRecord,
    ProcessRecord,
)

if TYPE_CHECKING:
    from _ctypes import CFuncPtr

# The codes after which the top PCIe generation or width is not asked again in a session.
_SETTLED = (SUCCESS, NOT_SUPPORTED, FUNCTION_NOT_FOUND)


# Every NVML entry point returns an nvmlReturn_t, ctypes' default restype; nvmlErrorString, the
# one that does not, is looked up on its own.
_Function = Callable[..., int]
_FUNCTIONS = (
    "nvmlInitWithFlags",
    "nvmlInit_v2",
    "nvmlInit",
    "nvmlShutdown",
    "nvmlDeviceGetCount_v2",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex_v2",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetPciInfo_v3",
    "nvmlDeviceGetPciInfo_v2",
    "nvmlDeviceGetMemoryInfo_v2",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetTemperatureV",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetTemperatureThreshold",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetPowerManagementLimit",
    "nvmlDeviceGetTotalEccErrors",
    "nvmlDeviceGetRetiredPages_v2",
    "nvmlDeviceGetRetiredPages",
    "nvmlDeviceGetRetiredPagesPendingStatus",
    "nvmlDeviceGetRemappedRows",
    "nvmlDeviceGetNvLinkState",
    "nvmlDeviceGetPcieReplayCounter",
    "nvmlDeviceGetCurrPcieLinkGeneration",
    "nvmlDeviceGetMaxPcieLinkGeneration",
    "nvmlDeviceGetCurrPcieLinkWidth",
    "nvmlDeviceGetMaxPcieLinkWidth",
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
    "nvmlDeviceGetFieldValues",
    "nvmlDeviceGetComputeRunningProcesses_v3",
    "nvmlDeviceGetComputeRunningProcesses_v2",
    "nvmlDeviceGetGraphicsRunningProcesses_v3",
    "nvmlDeviceGetGraphicsRunningProcesses_v2",
    "nvmlEventSetCreate",
    "nvmlDeviceGetSupportedEventTypes",
    "nvmlDeviceRegisterEvents",
    "nvmlEventSetWait_v2",
    "nvmlEventSetWait",
    "nvmlEventSetFree",
)


class EventRecord:
    __slots__ = ("compute_instance_id", "event_data", "event_type", "gpu_index", "gpu_instance_id")

    def __init__(self, data: EventData, gpu_index: int) -> None:
        self.gpu_index = gpu_index
        self.event_type = data.eventType
        self.event_data = data.eventData
        self.gpu_instance_id = data.gpuInstanceId
        self.compute_instance_id = data.computeInstanceId


def open_session(path: str | None) -> tuple[int, Session | None, str]:
    """Loads NVML from `path` (default libnvidia-ml.so.1); returns (code, session, error text)."""
    try:
        library = ctypes.CDLL(path or "libnvidia-ml.so.1", mode=ctypes.RTLD_LOCAL)
    except OSError as exc:
        return LIBRARY_NOT_FOUND, None, str(exc)
    fn: dict[str, _Function | None] = {}
    for name in _FUNCTIONS:
        try:
            fn[name] = getattr(library, name)
        except AttributeError:
            fn[name] = None
    error_string: CFuncPtr | None
    try:
        error_string = library.nvmlErrorString
        error_string.restype = ctypes.c_char_p
    except AttributeError:
        error_string = None

    def error_text(rc: int) -> str:
        text: bytes | None = error_string(rc) if error_string else b""
        return (text or b"").decode(errors="replace")

    if fn["nvmlInitWithFlags"]:
        rc = fn["nvmlInitWithFlags"](c_uint(0))
    elif fn["nvmlInit_v2"]:
        rc = fn["nvmlInit_v2"]()
    elif fn["nvmlInit"]:
        rc = fn["nvmlInit"]()
    else:
        rc = FUNCTION_NOT_FOUND
    if rc != SUCCESS:
        return rc, None, error_text(rc)

    count = c_uint(0)
    if fn["nvmlDeviceGetCount_v2"]:
        rc = fn["nvmlDeviceGetCount_v2"](byref(count))
    elif fn["nvmlDeviceGetCount"]:
        rc = fn["nvmlDeviceGetCount"](byref(count))
    else:
        rc = FUNCTION_NOT_FOUND
    if rc != SUCCESS:
        if fn["nvmlShutdown"]:
            fn["nvmlShutdown"]()
        return rc, None, error_text(rc)
    return SUCCESS, Session(library, fn, count.value), ""


class Session:
    def __init__(self, library: ctypes.CDLL, fn: dict[str, _Function | None], count: int) -> None:
        self._library = library
        self._fn = fn
        self.count = count
        self._lock = threading.Lock()  # guards the handles, as the C session's mutex does
        # In the order of sample_one() in the C file, which decides what a lost GPU skips.
        self._steps: tuple[Step, ...] = (
            (F_NAME, self._read_name, ()),
            (F_UUID, self._read_uuid, ()),
            (F_PCI_BUS_ID, self._read_pci, ()),
            (F_MEMORY, self._read_memory, ()),
            (F_UTILIZATION, self._read_utilization, ()),
            (F_TEMPERATURE, self._read_temperature, ()),
            (F_TEMPERATURE_SLOWDOWN, self._read_threshold, (1,)),
            (F_TEMPERATURE_SHUTDOWN, self._read_threshold, (0,)),
            (F_POWER_USAGE, self._read_power_usage, ()),
            (F_POWER_LIMIT, self._read_power_limit, ()),
            (F_ECC_CORRECTED_VOLATILE, self._read_ecc, (0, 0)),
            (F_ECC_UNCORRECTED_VOLATILE, self._read_ecc, (1, 0)),
            (F_ECC_CORRECTED_AGGREGATE, self._read_ecc, (0, 1)),
            (F_ECC_UNCORRECTED_AGGREGATE, self._read_ecc, (1, 1)),
            (F_RETIRED_PAGES_SBE, self._read_retired, (0,)),
            (F_RETIRED_PAGES_DBE, self._read_retired, (1,)),
            (F_RETIRED_PAGES_PENDING, self._read_retired_pending, ()),
            (F_REMAPPED_ROWS, self._read_remapped, ()),
            (F_NVLINK, self._read_nvlink, ()),
            (
                F_PCIE_REPLAY,
                self._read_uint,
                ("nvmlDeviceGetPcieReplayCounter", "pcie_replay_counter"),
            ),
            (
                F_PCIE_LINK_GEN,
                self._read_uint,
                ("nvmlDeviceGetCurrPcieLinkGeneration", "pcie_link_gen"),
            ),
            (
                F_PCIE_LINK_GEN_MAX,
                self._read_pcie_max,
                ("nvmlDeviceGetMaxPcieLinkGeneration", "pcie_link_gen_max"),
            ),
            (
                F_PCIE_LINK_WIDTH,
                self._read_uint,
                ("nvmlDeviceGetCurrPcieLinkWidth", "pcie_link_width"),
            ),
            (
                F_PCIE_LINK_WIDTH_MAX,
                self._read_pcie_max,
                ("nvmlDeviceGetMaxPcieLinkWidth", "pcie_link_width_max"),
            ),
            (F_CLOCK_EVENT_REASONS, self._read_clock_events, ()),
        )
        self._handles: list[c_void_p] = []
        self._handle_rc: list[int] = []
        # (GPU index, NVML function) -> (code, value), as pcie_max in the C session.
        self._pcie_max: dict[tuple[int, str], tuple[int, int]] = {}
        self._group_steps: dict[int, tuple[Callable[..., int], tuple[object, ...]]] = {
            GROUP_OF_FIELD[field]: (read, args)
            for field, read, args in self._steps
            if field in GROUP_OF_FIELD
        }
        self.fields = FieldReader(count, fn["nvmlDeviceGetFieldValues"], self._read_group)
        for index in range(count):
            handle = c_void_p()
            self._handles.append(handle)
            self._handle_rc.append(self._get_handle(index, handle))

    def _get_handle(self, index: int, handle: c_void_p) -> int:
        fn = self._fn
        get = fn["nvmlDeviceGetHandleByIndex_v2"] or fn["nvmlDeviceGetHandleByIndex"]
        if get is None:
            return FUNCTION_NOT_FOUND
        return get(c_uint(index), byref(handle))

    def close(self) -> None:
        if self._fn["nvmlShutdown"]:
            self._fn["nvmlShutdown"]()

    def sample(self) -> ctypes.Array[GpuRecord]:
        records = (GpuRecord * self.count)()
        for index, g in enumerate(records):
            g.index = index
            with self._lock:
                if self._handle_rc[index] != SUCCESS:
                    self._handle_rc[index] = self._get_handle(index, self._handles[index])
                handle_rc = self._handle_rc[index]
                handle = self._handles[index]
            if handle_rc != SUCCESS:
                g.status = handle_rc
                g.rc[:] = [handle_rc] * F_COUNT
            else:
                self._sample_one(handle, g)
        return records

    def _sample_one(self, d: c_void_p, g: GpuRecord) -> None:
        routes = self.fields.routes(g.index)
        steps = self._steps
        if routes is not None:
            if routes.steps is None:
                routes.steps = tuple(
                    step
                    for step in self._steps
                    if step[0] not in GROUP_OF_FIELD
                    or not in_batch(routes, GROUP_OF_FIELD[step[0]])
                )
            steps = routes.steps
        for field, read, args in steps:
            if g.status == GPU_IS_LOST:
                g.rc[field] = GPU_IS_LOST
            else:
                g.record(field, read(d, g, *args))
        # The first read of a GPU's links finds where the list ends, for the batch to ask.
        if routes is not None and routes.nvlink_links == 0 and not routes.group[G_NVLINK].own_call:
            learn_nvlink(routes, g)
        self.fields.read(d, g, routes)

    def _read_group(self, d: c_void_p, g: GpuRecord, group: int) -> int:
        """read_group() in the C file: a group's values by its own call."""
        read, args = self._group_steps[group]
        return read(d, g, *args)

    def _call_uint(self, name: str, d: c_void_p, *args: c_int) -> tuple[int, int]:
        fn = self._fn[name]
        if fn is None:
            return FUNCTION_NOT_FOUND, 0
        out = c_uint(0)
        rc = fn(d, *args, byref(out))
        return rc, out.value

    def _read_name(self, d: c_void_p, g: GpuRecord) -> int:
        fn = self._fn["nvmlDeviceGetName"]
        if fn is None:
            return FUNCTION_NOT_FOUND
        return fn(d, byref(g, GpuRecord.name.offset), c_uint(NAME_LEN))

    def _read_uuid(self, d: c_void_p, g: GpuRecord) -> int:
        fn = self._fn["nvmlDeviceGetUUID"]
        if fn is None:
            return FUNCTION_NOT_FOUND
        return fn(d, byref(g, GpuRecord.uuid.offset), c_uint(UUID_LEN))

    def _read_pci(self, d: c_void_p, g: GpuRecord) -> int:
        fn = self._fn["nvmlDeviceGetPciInfo_v3"] or self._fn["nvmlDeviceGetPciInfo_v2"]
        if fn is None:
            return FUNCTION_NOT_FOUND
        pci = PciInfo()
        rc = fn(d, byref(pci))
        if rc == SUCCESS:
            g.pci_bus_id = (pci.busId or pci.busIdLegacy)[: BUS_ID_LEN - 1]
        return rc

    def _read_memory(self, d: c_void_p, g: GpuRecord) -> int:
        rc = FUNCTION_NOT_FOUND
        if self._fn["nvmlDeviceGetMemoryInfo_v2"]:
            m2 = MemoryV2(version=MEMORY_V2)
            rc = self._fn["nvmlDeviceGetMemoryInfo_v2"](d, byref(m2))
            if rc == SUCCESS:
                g.memory_total, g.memory_used = m2.total, m2.used
        if (
            rc in (FUNCTION_NOT_FOUND, ARGUMENT_VERSION_MISMATCH)
            and self._fn["nvmlDeviceGetMemoryInfo"]
        ):
            m1 = Memory()
            rc = self._fn["nvmlDeviceGetMemoryInfo"](d, byref(m1))
            if rc == SUCCESS:
                g.memory_total, g.memory_used = m1.total, m1.used
        return rc

    def _read_utilization(self, d: c_void_p, g: GpuRecord) -> int:
        fn = self._fn["nvmlDeviceGetUtilizationRates"]
        if fn is None:
            return FUNCTION_NOT_FOUND
        u = Utilization()
        rc = fn(d, byref(u))
        g.utilization_gpu, g.utilization_memory = u.gpu, u.memory
        return rc

    def _read_temperature(self, d: c_void_p, g: GpuRecord) -> int:
        rc = FUNCTION_NOT_FOUND
        if self._fn["nvmlDeviceGetTemperatureV"]:
            t = TemperatureV1(version=TEMPERATURE_V1, sensorType=0)
            rc = self._fn["nvmlDeviceGetTemperatureV"](d, byref(t))
            g.temperature = t.temperature
        if (
            rc in (FUNCTION_NOT_FOUND, ARGUMENT_VERSION_MISMATCH)
            and self._fn["nvmlDeviceGetTemperature"]
        ):
            rc, value = self._call_uint("nvmlDeviceGetTemperature", d, c_int(0))
            g.temperature = c_int(value).value
        return rc

    def _read_threshold(self, d: c_void_p, g: GpuRecord, which: int) -> int:
        rc, value = self._call_uint("nvmlDeviceGetTemperatureThreshold", d, c_int(which))
        if which == 1:
            g.temperature_slowdown = value
        else:
            g.temperature_shutdown = value
        return rc

    def _read_power_usage(self, d: c_void_p, g: GpuRecord) -> int:
        rc, g.power_usage = self._call_uint("nvmlDeviceGetPowerUsage", d)
        return rc

    def _read_power_limit(self, d: c_void_p, g: GpuRecord) -> int:
        if self._fn["nvmlDeviceGetEnforcedPowerLimit"]:
            rc, g.power_limit = self._call_uint("nvmlDeviceGetEnforcedPowerLimit", d)
        else:
            rc, g.power_limit = self._call_uint("nvmlDeviceGetPowerManagementLimit", d)
        return rc

    def _read_ecc(self, d: c_void_p, g: GpuRecord, error_type: int, counter: int) -> int:
        fn = self._fn["nvmlDeviceGetTotalEccErrors"]
        if fn is None:
            return FUNCTION_NOT_FOUND
        out = c_ulonglong(0)
        rc = fn(d, c_int(error_type), c_int(counter), byref(out))
        name = ("ecc_corrected", "ecc_uncorrected")[error_type] + ("_volatile", "_aggregate")[
            counter
        ]
        setattr(g, name, out.value)
        return rc

    def _read_retired(self, d: c_void_p, g: GpuRecord, cause: int) -> int:
        count = c_uint(0)
        if self._fn["nvmlDeviceGetRetiredPages_v2"]:
            rc = self._fn["nvmlDeviceGetRetiredPages_v2"](d, c_int(cause), byref(count), None, None)
        elif self._fn["nvmlDeviceGetRetiredPages"]:
            rc = self._fn["nvmlDeviceGetRetiredPages"](d, c_int(cause), byref(count), None)
        else:
            return FUNCTION_NOT_FOUND
        if cause == 0:
            g.retired_pages_sbe = count.value
        else:
            g.retired_pages_dbe = count.value
        # A zero-sized buffer asks for the count alone; INSUFFICIENT_SIZE carries it.
        return SUCCESS if rc == INSUFFICIENT_SIZE else rc

    def _read_retired_pending(self, d: c_void_p, g: GpuRecord) -> int:
        rc, pending = self._call_uint("nvmlDeviceGetRetiredPagesPendingStatus", d)
        g.retired_pages_pending = pending != 0
        return rc

    def _read_remapped(self, d: c_void_p, g: GpuRecord) -> int:
        fn = self._fn["nvmlDeviceGetRemappedRows"]
        if fn is None:
            return FUNCTION_NOT_FOUND
        out = [c_uint(0) for _ in range(4)]
        rc = fn(d, *(byref(v) for v in out))
        g.remapped_rows_corrected = out[0].value
        g.remapped_rows_uncorrected = out[1].value
        g.remapped_rows_pending = out[2].value != 0
        g.remapped_rows_failure = out[3].value != 0
        return rc

    def _read_nvlink(self, d: c_void_p, g: GpuRecord) -> int:
        # Same stopping rules as read_nvlink() in the C file.
        fn = self._fn["nvmlDeviceGetNvLinkState"]
        if fn is None:
            return FUNCTION_NOT_FOUND
        first = FUNCTION_NOT_FOUND
        any_ok = False
        active = c_int(0)
        for link in range(MAX_LINKS):
            active.value = 0
            rc = fn(d, c_uint(link), byref(active))
            if link == 0:
                first = rc
            if rc == INVALID_ARGUMENT:
                break
            g.nvlink_state[link] = (active.value != 0) if rc == SUCCESS else -1
            g.nvlink_count = link + 1
            any_ok = any_ok or rc == SUCCESS
            if rc == GPU_IS_LOST:
                return rc
            if link == 0 and rc == NOT_SUPPORTED:
                break
        return SUCCESS if any_ok else first

    def _read_uint(self, d: c_void_p, g: GpuRecord, function: str, attribute: str) -> int:
        rc, value = self._call_uint(function, d)
        setattr(g, attribute, value)
        return rc

    def _read_pcie_max(self, d: c_void_p, g: GpuRecord, function: str, attribute: str) -> int:
        key = (g.index, function)
        known = self._pcie_max.get(key)
        if known is None:
            known = self._call_uint(function, d)
            if known[0] not in _SETTLED:
                return known[0]
            self._pcie_max[key] = known
        rc, value = known
        setattr(g, attribute, value)
        return rc

    def _read_clock_events(self, d: c_void_p, g: GpuRecord) -> int:
        fn = (
            self._fn["nvmlDeviceGetCurrentClocksEventReasons"]
            or self._fn["nvmlDeviceGetCurrentClocksThrottleReasons"]
        )
        if fn is None:
            return FUNCTION_NOT_FOUND
        out = c_ulonglong(0)
        rc = fn(d, byref(out))
        g.clock_event_reasons = out.value
        return rc

    def processes(
        self, index: int, kind: int, capacity: int
    ) -> tuple[int, list[ProcessRecord], int]:
        """navarch_nvml_processes: (code, the processes, how many there are)."""
        versions = ("_v3", "_v2")
        family = ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses")
        fn = next((f for v in versions if (f := self._fn[family[kind] + v]) is not None), None)
        if fn is None:
            return FUNCTION_NOT_FOUND, [], 0
        if not 0 <= index < self.count:
            return INVALID_ARGUMENT, [], 0
        with self._lock:
            if self._handle_rc[index] != SUCCESS:
                self._handle_rc[index] = self._get_handle(index, self._handles[index])
            rc = self._handle_rc[index]
            device = self._handles[index]
        if rc != SUCCESS:
            return rc, [], 0
        infos = (ProcessInfo * max(capacity, 1))()
        count = c_uint(capacity)
        rc = fn(device, byref(count), infos if capacity else None)
        if rc != SUCCESS:
            return rc, [], count.value
        found = [
            (p.pid, p.usedGpuMemory, p.gpuInstanceId, p.computeInstanceId)
            for p in infos[: min(count.value, capacity)]
        ]
        return SUCCESS, found, count.value

    def events_create(self, mask: int) -> tuple[int, EventSet | None, list[int]]:
        fn = self._fn
        wait = fn["nvmlEventSetWait_v2"] or fn["nvmlEventSetWait"]
        create, register, free = (
            fn["nvmlEventSetCreate"],
            fn["nvmlDeviceRegisterEvents"],
            fn["nvmlEventSetFree"],
        )
        if wait is None or create is None or register is None or free is None:
            return FUNCTION_NOT_FOUND, None, []
        handle = c_void_p()
        rc = create(byref(handle))
        if rc != SUCCESS:
            return rc, None, []
        registered = []
        for index in range(self.count):
            with self._lock:
                handle_rc = self._handle_rc[index]
                device = self._handles[index]
            registered.append(
                self._register(register, device, mask, handle) if handle_rc == SUCCESS else 0
            )
        return SUCCESS, EventSet(self, handle, wait, free), registered

    def _register(self, register: _Function, d: c_void_p, mask: int, event_set: c_void_p) -> int:
        # Same fallbacks as register_device() in the C file.
        fn = self._fn
        want = mask
        supported = c_ulonglong(0)
        if (
            fn["nvmlDeviceGetSupportedEventTypes"]
            and fn["nvmlDeviceGetSupportedEventTypes"](d, byref(supported)) == SUCCESS
        ):
            want &= supported.value
        if want == 0:
            return 0
        if register(d, c_ulonglong(want), event_set) == SUCCESS:
            return want
        registered = 0
        for bit in range(64):
            one = 1 << bit
            if want & one and register(d, c_ulonglong(one), event_set) == SUCCESS:
                registered |= one
        return registered

    def device_index(self, device: int | None) -> int:
        if not device:
            return -1
        with self._lock:
            for index, (handle, rc) in enumerate(zip(self._handles, self._handle_rc, strict=True)):
                if rc == SUCCESS and handle.value == device:
                    return index
        return -1


class EventSet:
    def __init__(
        self, session: Session, handle: c_void_p, wait: _Function, free: _Function
    ) -> None:
        self._session = session
        self._handle = handle
        self._wait = wait
        self._free = free

    def wait(self, timeout_ms: int) -> tuple[int, EventRecord]:
        data = EventData()
        rc = self._wait(self._handle, byref(data), c_uint(timeout_ms))
        return rc, EventRecord(data, self._session.device_index(data.device))

    def free(self) -> None:
        self._free(self._handle)
