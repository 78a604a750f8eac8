"""NVML sampling through the real dlopen path, against the fake libnvidia-ml."""

from __future__ import annotations

import ctypes
import pickle
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from navarch.errors import NavarchError
from navarch.telemetry import _native, _nvml_abi, _nvml_record, nvml, nvml_sample
from navarch.telemetry.nvml import Return
from navarch.testing import FakeNvml

OK = dict.fromkeys(nvml.FIELDS, Return.SUCCESS)

# A GPU with something to report in every field.
TROUBLED = {
    "name": "NVIDIA H100 PCIe",
    "uuid": "GPU-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
    "pci_domain": 1,
    "pci_bus": 0x3B,
    "memory_total": 80 << 30,
    "memory_used": 61 << 30,
    "utilization_gpu": 93,
    "utilization_memory": 41,
    "temperature": 88,
    "temperature_slowdown": 87,
    "temperature_shutdown": 92,
    "power_usage": 512_345,
    "enforced_power_limit": 350_000,
    "ecc_corrected_volatile": 5,
    "ecc_uncorrected_volatile": 2,
    "ecc_corrected_aggregate": 2**40,
    "ecc_uncorrected_aggregate": 20,
    "retired_pages_sbe": 3,
    "retired_pages_dbe": 2,
    "retired_pages_pending": 1,
    "remapped_rows_corrected": 7,
    "remapped_rows_uncorrected": 1,
    "remapped_rows_pending": 1,
    "remapped_rows_failure": 0,
    "nvlink_links": 12,
    "nvlink_up_mask": 0b1111_1110_1111,
    "nvlink_unsupported_mask": 1 << 7,
    "pcie_replay_counter": 12,
    "pcie_link_gen": 3,
    "pcie_link_gen_max": 5,
    "pcie_link_width": 8,
    "pcie_link_width_max": 16,
    "clock_event_reasons": 0x4 | 0x20,
    "recovery_action": 2,
}


def troubled(fake: FakeNvml, index: int) -> None:
    """Makes GPU `index` TROUBLED, with NVLink errors on two links (link 7 answers no query)."""
    fake.set(index, **TROUBLED)
    fake.set_nvlink_errors(index, 2, replay=1, recovery=2, crc_flit=30, crc_data=4)
    fake.set_nvlink_errors(index, 5, replay=10, crc_flit=2**33)
    fake.set_nvlink_errors(index, 7, replay=1000, crc_data=1000)


def test_sample_reports_the_values_the_gpus_hold(fake_nvml: FakeNvml, open_fake) -> None:
    fake_nvml.reset(3)
    troubled(fake_nvml, 2)
    gpus = open_fake().sample()

    assert [g.index for g in gpus] == [0, 1, 2]
    g = gpus[2]
    assert g.status == Return.SUCCESS
    assert g.field_status == OK
    assert (g.name, g.uuid, g.pci_bus_id) == (
        "NVIDIA H100 PCIe",
        "GPU-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
        "00000001:3B:00.0",
    )
    assert (g.memory_total_bytes, g.memory_used_bytes) == (80 << 30, 61 << 30)
    assert (g.utilization_gpu_pct, g.utilization_memory_pct) == (93, 41)
    assert (g.temperature_c, g.temperature_slowdown_c, g.temperature_shutdown_c) == (88, 87, 92)
    assert (g.power_usage_mw, g.power_limit_mw) == (512_345, 350_000)
    assert (
        g.ecc_corrected_volatile,
        g.ecc_uncorrected_volatile,
        g.ecc_corrected_aggregate,
        g.ecc_uncorrected_aggregate,
    ) == (5, 2, 2**40, 20)
    assert (g.retired_pages_sbe, g.retired_pages_dbe, g.retired_pages_pending) == (3, 2, True)
    assert (
        g.remapped_rows_corrected,
        g.remapped_rows_uncorrected,
        g.remapped_rows_pending,
        g.remapped_rows_failure,
    ) == (7, 1, True, False)
    up = [True] * 12
    up[4] = False
    up[7] = None
    assert g.nvlink_active == tuple(up)
    assert g.pcie_replay_counter == 12
    assert (g.pcie_link_gen, g.pcie_link_gen_max, g.pcie_link_width, g.pcie_link_width_max) == (
        3,
        5,
        8,
        16,
    )
    # Summed over the links that have counters.
    assert (
        g.nvlink_replay_errors,
        g.nvlink_recovery_errors,
        g.nvlink_crc_flit_errors,
        g.nvlink_crc_data_errors,
    ) == (11, 2, 30 + 2**33, 4)
    assert g.clock_event_reasons == nvml.ClockEventReason.SW_POWER_CAP | (
        nvml.ClockEventReason.SW_THERMAL_SLOWDOWN
    )
    assert g.recovery_action == nvml.RecoveryAction.NODE_REBOOT
    # The untouched GPUs keep the fake's defaults.
    assert gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert gpus[0].nvlink_active == (True,) * 18
    assert (gpus[0].pcie_link_gen, gpus[0].pcie_link_width) == (5, 16)
    assert gpus[0].nvlink_crc_flit_errors == 0


def _read_with_pynvml(pynvml: Any, index: int) -> tuple[dict[str, Any], dict[str, int]]:
    """Reads every field of GpuSample through nvidia-ml-py: values, and a code per FIELDS key."""
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    codes: dict[str, int] = {}

    def read(field: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            result = fn(handle, *args)
        except pynvml.NVMLError as exc:
            codes[field] = exc.value
            return None
        codes[field] = 0
        return result

    v: dict[str, Any] = {}
    v["name"] = read("name", pynvml.nvmlDeviceGetName)
    v["uuid"] = read("uuid", pynvml.nvmlDeviceGetUUID)
    pci = read("pci_bus_id", pynvml.nvmlDeviceGetPciInfo_v3)
    v["pci_bus_id"] = pci.busId if pci else None  # pynvml decodes char arrays
    memory = read("memory", pynvml.nvmlDeviceGetMemoryInfo, pynvml.nvmlMemory_v2)
    v["memory_total_bytes"] = memory.total if memory else None
    v["memory_used_bytes"] = memory.used if memory else None
    util = read("utilization", pynvml.nvmlDeviceGetUtilizationRates)
    v["utilization_gpu_pct"] = util.gpu if util else None
    v["utilization_memory_pct"] = util.memory if util else None
    v["temperature_c"] = read(
        "temperature", pynvml.nvmlDeviceGetTemperatureV, pynvml.NVML_TEMPERATURE_GPU
    )
    v["temperature_slowdown_c"] = read(
        "temperature_slowdown",
        pynvml.nvmlDeviceGetTemperatureThreshold,
        pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,
    )
    v["temperature_shutdown_c"] = read(
        "temperature_shutdown",
        pynvml.nvmlDeviceGetTemperatureThreshold,
        pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN,
    )
    v["power_usage_mw"] = read("power_usage", pynvml.nvmlDeviceGetPowerUsage)
    v["power_limit_mw"] = read("power_limit", pynvml.nvmlDeviceGetEnforcedPowerLimit)
    for kind, error_type in (
        ("corrected", pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
        ("uncorrected", pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
    ):
        for counter, counter_type in (
            ("volatile", pynvml.NVML_VOLATILE_ECC),
            ("aggregate", pynvml.NVML_AGGREGATE_ECC),
        ):
            key = f"ecc_{kind}_{counter}"
            v[key] = read(key, pynvml.nvmlDeviceGetTotalEccErrors, error_type, counter_type)
    for key, cause in (
        ("retired_pages_sbe", pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS),
        ("retired_pages_dbe", pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR),
    ):
        pages = read(key, pynvml.nvmlDeviceGetRetiredPages_v2, cause)
        v[key] = len(pages) if pages is not None else None
    pending = read("retired_pages_pending", pynvml.nvmlDeviceGetRetiredPagesPendingStatus)
    v["retired_pages_pending"] = bool(pending) if pending is not None else None
    rows = read("remapped_rows", pynvml.nvmlDeviceGetRemappedRows)
    v["remapped_rows_corrected"] = rows[0] if rows else None
    v["remapped_rows_uncorrected"] = rows[1] if rows else None
    v["remapped_rows_pending"] = bool(rows[2]) if rows else None
    v["remapped_rows_failure"] = bool(rows[3]) if rows else None
    links: list[bool | None] = []
    codes["nvlink"] = pynvml.NVML_ERROR_NOT_SUPPORTED
    for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
        try:
            links.append(bool(pynvml.nvmlDeviceGetNvLinkState(handle, link)))
            codes["nvlink"] = 0
        except pynvml.NVMLError as exc:
            if exc.value == pynvml.NVML_ERROR_INVALID_ARGUMENT:
                break
            links.append(None)
            if link == 0 and exc.value == pynvml.NVML_ERROR_NOT_SUPPORTED:
                links = []
                break
    v["nvlink_active"] = tuple(links)
    v["pcie_replay_counter"] = read("pcie_replay", pynvml.nvmlDeviceGetPcieReplayCounter)
    for key, fn in (
        ("pcie_link_gen", pynvml.nvmlDeviceGetCurrPcieLinkGeneration),
        ("pcie_link_gen_max", pynvml.nvmlDeviceGetMaxPcieLinkGeneration),
        ("pcie_link_width", pynvml.nvmlDeviceGetCurrPcieLinkWidth),
        ("pcie_link_width_max", pynvml.nvmlDeviceGetMaxPcieLinkWidth),
    ):
        v[key] = read(key, fn)
    # navarch reads the NVLink totals as fields; nvidia-ml-py reads each link's counter, and
    # the driver's total field must agree with their sum.
    for key, counter, total_field in (
        (
            "nvlink_replay_errors",
            pynvml.NVML_NVLINK_ERROR_DL_REPLAY,
            pynvml.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL,
        ),
        (
            "nvlink_recovery_errors",
            pynvml.NVML_NVLINK_ERROR_DL_RECOVERY,
            pynvml.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL,
        ),
        (
            "nvlink_crc_flit_errors",
            pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT,
            pynvml.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL,
        ),
        (
            "nvlink_crc_data_errors",
            pynvml.NVML_NVLINK_ERROR_DL_CRC_DATA,
            pynvml.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL,
        ),
    ):
        per_link = []
        for link in range(len(links) or 1):
            try:
                per_link.append(pynvml.nvmlDeviceGetNvLinkErrorCounter(handle, link, counter))
            except pynvml.NVMLError as exc:
                if link == 0 and exc.value == pynvml.NVML_ERROR_NOT_SUPPORTED and not links:
                    per_link = None  # type: ignore[assignment]
                    break
        (total,) = pynvml.nvmlDeviceGetFieldValues(handle, [total_field])
        codes[key] = total.nvmlReturn
        v[key] = total.value.ullVal if total.nvmlReturn == 0 else None
        if total.nvmlReturn == 0:
            assert v[key] == sum(per_link), key
        else:
            assert per_link is None, key
    v["clock_event_reasons"] = read(
        "clock_event_reasons", pynvml.nvmlDeviceGetCurrentClocksEventReasons
    )
    (field,) = pynvml.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])
    codes["recovery_action"] = field.nvmlReturn
    v["recovery_action"] = field.value.uiVal if field.nvmlReturn == 0 else None
    return v, codes


@pytest.mark.parametrize("variant", [(), ("FAKE_NO_REMAPPED_ROWS",)], ids=["full", "no-remap"])
def test_every_field_matches_nvidia_ml_py(
    variant: tuple[str, ...],
    make_fake_nvml: Callable[..., FakeNvml],
    backend: nvml.Backend,
    pynvml_for: Callable[[FakeNvml], Any],
) -> None:
    fake = make_fake_nvml(*variant)
    fake.reset(4)
    troubled(fake, 1)
    fake.set(2, nvlink_links=0, recovery_action=7)
    fake.fail("nvmlDeviceGetPowerUsage", Return.NOT_SUPPORTED, index=3)
    fake.fail("nvmlDeviceGetCurrPcieLinkWidth", Return.NOT_SUPPORTED, index=3)
    fake.fail("field:230", Return.NOT_SUPPORTED, index=3)
    pynvml = pynvml_for(fake)

    # The first sample learns each GPU's NVLink links through per-link calls; the second reads
    # them, like every value that NVML serves as a field, in one nvmlDeviceGetFieldValues call.
    with nvml.open_nvml(backend=backend) as session:
        samples = [session.sample(), session.sample()]

    assert pynvml.nvmlDeviceGetCount() == 4
    for gpus in samples:
        assert len(gpus) == 4
        for g in gpus:
            values, codes = _read_with_pynvml(pynvml, g.index)
            ours = attrs.asdict(g, recurse=False)
            assert {k: ours[k] for k in values} == values, f"GPU {g.index}"
            assert g.field_status == codes, f"GPU {g.index}"


def test_missing_symbol_fails_only_its_field(
    make_fake_nvml: Callable[..., FakeNvml], backend: nvml.Backend
) -> None:
    make_fake_nvml("FAKE_NO_REMAPPED_ROWS")
    with nvml.open_nvml(backend=backend) as session:
        g = session.sample()[0]
    assert g.field_status == {**OK, "remapped_rows": Return.FUNCTION_NOT_FOUND}
    assert g.remapped_rows_corrected is None
    assert g.remapped_rows_failure is None
    assert g.status == Return.SUCCESS
    assert g.temperature_c == 30


def test_older_driver_is_read_through_its_older_entry_points(
    make_fake_nvml: Callable[..., FakeNvml], backend: nvml.Backend
) -> None:
    fake = make_fake_nvml("FAKE_LEGACY")
    fake.set(0, power_management_limit=400_000, temperature=55, clock_event_reasons=0x40)
    with nvml.open_nvml(backend=backend) as session:
        g = session.sample()[0]

    # The driver has no nvmlDeviceGetFieldValues, which serves the NVLink counters too.
    fields = ["recovery_action", *(f for f in nvml.FIELDS if f.endswith("_errors"))]
    assert g.field_status == {**OK, **dict.fromkeys(fields, Return.FUNCTION_NOT_FOUND)}
    assert g.nvlink_replay_errors is None
    assert g.temperature_c == 55
    assert g.power_limit_mw == 400_000
    assert g.clock_event_reasons == nvml.ClockEventReason.HW_THERMAL_SLOWDOWN
    assert g.pci_bus_id == "0000:18:00.0"  # the 16-byte legacy form is all an old driver fills
    # Version 1 of GetMemoryInfo counts the driver's reserved memory as used.
    assert g.memory_used_bytes == (1 << 30) + (570 << 20)
    assert fake.calls("nvmlInit_v2") == 1
    assert fake.calls("nvmlDeviceGetTemperature") == 2
    assert fake.calls("nvmlEventSetWait") == 0


def test_newest_entry_points_win_where_the_driver_has_both(
    fake_nvml: FakeNvml, backend: nvml.Backend
) -> None:
    # Every value by its own call, the way a driver without nvmlDeviceGetFieldValues is read.
    with nvml.open_nvml(backend=backend, batched=False) as session:
        session.sample()
    for newer, older in [
        ("nvmlInitWithFlags", "nvmlInit_v2"),
        ("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"),
        ("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"),
        ("nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2"),
        ("nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo"),
        ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature"),
        ("nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit"),
        ("nvmlDeviceGetRetiredPages_v2", "nvmlDeviceGetRetiredPages"),
        ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"),
    ]:
        assert fake_nvml.calls(newer) > 0, newer
        assert fake_nvml.calls(older) == 0, older


def test_not_supported_fields_are_none_and_say_so(fake_nvml: FakeNvml, open_fake) -> None:
    fake_nvml.fail("nvmlDeviceGetPowerUsage", Return.NOT_SUPPORTED, index=1)
    fake_nvml.fail("nvmlDeviceGetTotalEccErrors", Return.NOT_SUPPORTED, index=1)
    fake_nvml.fail("field:230", Return.NOT_SUPPORTED, index=1)
    fake_nvml.set(1, nvlink_links=0)
    gpus = open_fake().sample()

    g = gpus[1]
    assert g.status == Return.SUCCESS
    unsupported = {
        "power_usage",
        "ecc_corrected_volatile",
        "ecc_uncorrected_volatile",
        "ecc_corrected_aggregate",
        "ecc_uncorrected_aggregate",
        "recovery_action",
        "nvlink",
        "nvlink_replay_errors",
        "nvlink_recovery_errors",
        "nvlink_crc_flit_errors",
        "nvlink_crc_data_errors",
    }
    assert g.field_status == {
        **OK,
        **dict.fromkeys(unsupported, Return.NOT_SUPPORTED),
    }
    assert g.power_usage_mw is None
    assert g.ecc_uncorrected_volatile is None
    assert g.recovery_action is None
    assert g.nvlink_active == ()
    assert g.power_limit_mw == 700_000
    assert gpus[0].field_status == OK
    # A GPU without NVLink is asked about link 0 only.
    assert fake_nvml.calls("nvmlDeviceGetNvLinkState") == 19 + 1


def test_lost_gpu_is_reported_and_not_asked_again(fake_nvml: FakeNvml, open_fake) -> None:
    session = open_fake()
    fake_nvml.lose(1)
    before = fake_nvml.calls("nvmlDeviceGetUUID")
    gpus = session.sample()

    assert gpus[0].status == Return.SUCCESS
    lost = gpus[1]
    assert lost.status == Return.GPU_IS_LOST
    assert lost.field_status == dict.fromkeys(nvml.FIELDS, Return.GPU_IS_LOST)
    assert lost.name is None
    assert lost.temperature_c is None
    assert lost.nvlink_active == ()
    # Sampling a lost GPU stops at its first failed call (the name).
    assert fake_nvml.calls("nvmlDeviceGetUUID") - before == 1


def test_gpu_lost_before_open_comes_back_when_the_driver_finds_it(
    fake_nvml: FakeNvml, open_fake
) -> None:
    fake_nvml.lose(0)
    session = open_fake()
    assert session.sample()[0].status == Return.GPU_IS_LOST
    assert session.sample()[0].field_status["temperature"] == Return.GPU_IS_LOST
    fake_nvml.lose(0, lost=False)
    assert session.sample()[0].status == Return.SUCCESS


def test_reset_required_marks_the_gpu_and_keeps_its_error_counters(
    fake_nvml: FakeNvml, open_fake
) -> None:
    fake_nvml.set(0, ecc_uncorrected_volatile=9)
    fake_nvml.fail("nvmlDeviceGetUtilizationRates", Return.RESET_REQUIRED, index=0)
    g = open_fake().sample()[0]
    assert g.status == Return.RESET_REQUIRED
    assert g.field_status["utilization"] == Return.RESET_REQUIRED
    assert g.utilization_gpu_pct is None
    assert g.ecc_uncorrected_volatile == 9


def test_nvml_starts_once_and_caches_handles(fake_nvml: FakeNvml, backend: nvml.Backend) -> None:
    fake_nvml.reset(3)
    session = nvml.open_nvml(backend=backend)
    for _ in range(3):
        session.sample()
    assert fake_nvml.calls("nvmlInitWithFlags") == 1
    assert fake_nvml.calls("nvmlDeviceGetHandleByIndex_v2") == 3
    assert fake_nvml.calls("nvmlShutdown") == 0
    session.close()
    session.close()
    assert fake_nvml.calls("nvmlShutdown") == 1
    with pytest.raises(nvml.Uninitialized):
        session.sample()


def test_no_gpus(fake_nvml: FakeNvml, open_fake) -> None:
    fake_nvml.reset(0)
    session = open_fake()
    assert session.device_count == 0
    assert session.sample() == ()


def test_missing_library_means_no_nvidia_gpus(
    backend: nvml.Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(nvml.LIBRARY_ENV, "/nonexistent/libnvidia-ml.so.1")
    with pytest.raises(nvml.LibraryNotFound) as caught:
        nvml.open_nvml(backend=backend)
    assert "/nonexistent/libnvidia-ml.so.1" in caught.value.detail

    found = nvml.inventory(backend=backend)
    assert found.gpus == ()
    assert found.unavailable is not None
    assert "/nonexistent/libnvidia-ml.so.1" in found.unavailable


def test_inventory_samples_every_gpu(fake_nvml: FakeNvml, backend: nvml.Backend) -> None:
    found = nvml.inventory(backend=backend)
    assert found.unavailable is None
    assert found.backend == backend
    assert [g.index for g in found.gpus] == [0, 1]
    assert fake_nvml.calls("nvmlShutdown") == 1


def test_failed_init_raises_its_error(fake_nvml: FakeNvml, backend: nvml.Backend) -> None:
    fake_nvml.fail("nvmlInitWithFlags", Return.DRIVER_NOT_LOADED)
    with pytest.raises(nvml.DriverNotLoaded) as caught:
        nvml.open_nvml(backend=backend)
    assert str(caught.value) == "NVML driver not loaded (code 9)"


def test_both_backends_return_identical_samples(fake_nvml: FakeNvml) -> None:
    if not nvml.cffi_available():
        pytest.skip("navarch._telemetry is not in use here")
    fake_nvml.reset(8)
    troubled(fake_nvml, 3)
    fake_nvml.set(4, nvlink_links=0)
    fake_nvml.fail("field:52", Return.UNKNOWN, index=4)
    fake_nvml.fail("nvmlDeviceGetMaxPcieLinkWidth", Return.NOT_SUPPORTED, index=6)
    fake_nvml.lose(5)
    fake_nvml.fail("nvmlDeviceGetTemperatureV", Return.RESET_REQUIRED, index=6)
    fake_nvml.fail("field:230", Return.NOT_SUPPORTED, index=7)
    with nvml.open_nvml(backend="cffi") as a, nvml.open_nvml(backend="python") as b:
        assert a.sample() == b.sample()


def test_errors_map_codes_to_classes() -> None:
    lost = nvml.NVMLError(15, "GPU 0000:3B:00.0")
    assert isinstance(lost, nvml.GpuIsLost)
    assert isinstance(lost, NavarchError)
    assert lost.code == Return.GPU_IS_LOST
    assert str(lost) == "NVML gpu is lost (code 15): GPU 0000:3B:00.0"
    assert type(nvml.NVMLError(Return.RESET_REQUIRED)) is nvml.ResetRequired
    assert type(nvml.NVMLError(10)) is nvml.Timeout

    future = nvml.NVMLError(1234)
    assert type(future) is nvml.NVMLError
    assert future.code == 1234
    assert future.code.name == "CODE_1234"

    copy = pickle.loads(pickle.dumps(lost))
    assert type(copy) is nvml.GpuIsLost
    assert copy.detail == "GPU 0000:3B:00.0"


def test_record_decoding_follows_the_record_and_the_sample() -> None:
    names = [name for name, _ in _nvml_record.GpuRecord._fields_]
    values = [name for name, _ in nvml_sample._VALUES]
    items = nvml_sample._ITEMS
    assert list(items[nvml_sample._FIRST_VALUE : nvml_sample._END_VALUES]) == values
    assert items[: nvml_sample._FIRST_VALUE] == ("index", "status", "identity")
    assert items[nvml_sample._END_VALUES :] == ("state",)
    assert names[2:5] == ["name", "uuid", "pci_bus_id"]
    assert names[-3:] == ["nvlink_count", "nvlink_state", "rc"]
    attributes = [a.name for a in attrs.fields(nvml.GpuSample)]
    assert len(attributes[5:-2]) == len(values)
    for attribute, value in zip(attributes[5:-2], values, strict=True):
        assert attribute.startswith(value), (attribute, value)
    assert nvml_sample._RECORD.size == ctypes.sizeof(_nvml_record.GpuRecord)


def test_python_reads_the_extension_record_layout() -> None:
    if _native.lib is None:
        pytest.skip("navarch._telemetry is not in use here")
    ffi, lib = _native.ffi, _native.lib
    record = _nvml_record.GpuRecord
    assert ffi.sizeof("navarch_nvml_gpu") == ctypes.sizeof(record)
    for name, _ in record._fields_:
        assert ffi.offsetof("navarch_nvml_gpu", name) == getattr(record, name).offset, name
    assert lib.NAVARCH_NVML_F_COUNT == len(nvml.FIELDS) == _nvml_record.F_COUNT
    assert nvml.FIELDS.index("recovery_action") == lib.NAVARCH_NVML_F_RECOVERY_ACTION
    assert lib.NAVARCH_NVML_MAX_LINKS == _nvml_record.MAX_LINKS


def test_a_field_nvml_cannot_serve_leaves_the_others(fake_nvml: FakeNvml, open_fake) -> None:
    fake_nvml.set_nvlink_errors(0, 1, replay=3, crc_flit=9)
    fake_nvml.fail(
        f"field:{_nvml_abi.FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL}", Return.NOT_SUPPORTED, index=0
    )
    fake_nvml.fail("nvmlDeviceGetCurrPcieLinkGeneration", Return.NOT_SUPPORTED, index=0)
    g = open_fake().sample()[0]
    assert g.field_status == {
        **OK,
        "nvlink_crc_flit_errors": Return.NOT_SUPPORTED,
        "pcie_link_gen": Return.NOT_SUPPORTED,
    }
    assert (g.nvlink_replay_errors, g.nvlink_crc_flit_errors) == (3, None)
    assert (g.pcie_link_gen, g.pcie_link_gen_max, g.pcie_link_width) == (None, 5, 16)


def test_the_top_pcie_link_is_asked_once_per_session(fake_nvml: FakeNvml, open_fake) -> None:
    fake_nvml.fail("nvmlDeviceGetMaxPcieLinkWidth", Return.UNKNOWN, index=1)
    session = open_fake()
    first = session.sample()
    assert first[1].field_status["pcie_link_width_max"] == Return.UNKNOWN
    assert first[1].pcie_link_width_max is None
    fake_nvml.fail("nvmlDeviceGetMaxPcieLinkWidth", Return.SUCCESS, index=1)
    for _ in range(3):
        gpus = session.sample()
    assert [g.pcie_link_width_max for g in gpus] == [16, 16]
    assert [g.pcie_link_gen_max for g in gpus] == [5, 5]
    # GPU 0 answered at once; GPU 1 once more after its failure, and never again.
    assert fake_nvml.calls("nvmlDeviceGetMaxPcieLinkGeneration") == 2
    assert fake_nvml.calls("nvmlDeviceGetMaxPcieLinkWidth") == 3
    assert fake_nvml.calls("nvmlDeviceGetCurrPcieLinkWidth") == 8


def test_samples_convert_to_json(fake_nvml: FakeNvml, open_fake) -> None:
    fake_nvml.set(0, **TROUBLED)
    fake_nvml.lose(1)
    g0, g1 = (g.to_json() for g in open_fake().sample())
    assert g0["status"] == "SUCCESS"
    assert g0["nvlink_active"][7] is None
    assert g0["field_status"]["nvlink"] == "SUCCESS"
    assert g1["status"] == "GPU_IS_LOST"
    assert g1["temperature_c"] is None
