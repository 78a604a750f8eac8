"""The values NVML also serves as fields, read in one nvmlDeviceGetFieldValues call per GPU, and
the per-value calls that take over where an entry fails or the driver lacks the call."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from test_nvml_sample import OK, troubled

from navarch.telemetry import nvml
from navarch.telemetry.nvml import Return
from navarch.testing import FakeNvml

# The entry points whose values the batch serves once it has learned a GPU's links.
BATCHED_CALLS = (
    "nvmlDeviceGetTotalEccErrors",
    "nvmlDeviceGetRetiredPages_v2",
    "nvmlDeviceGetRetiredPagesPendingStatus",
    "nvmlDeviceGetRemappedRows",
    "nvmlDeviceGetPcieReplayCounter",
    "nvmlDeviceGetNvLinkState",
)
# What only nvmlDeviceGetFieldValues serves.
FIELD_ONLY = (
    "recovery_action",
    "nvlink_replay_errors",
    "nvlink_recovery_errors",
    "nvlink_crc_flit_errors",
    "nvlink_crc_data_errors",
)
ECC = (
    "ecc_corrected_volatile",
    "ecc_uncorrected_volatile",
    "ecc_corrected_aggregate",
    "ecc_uncorrected_aggregate",
)


def samples(
    backend: nvml.Backend, batched: bool, times: int = 3
) -> list[tuple[nvml.GpuSample, ...]]:
    with nvml.open_nvml(backend=backend, batched=batched) as session:
        return [session.sample() for _ in range(times)]


def calls(fake: FakeNvml) -> dict[str, int]:
    return {name: fake.calls(name) for name in (*BATCHED_CALLS, "nvmlDeviceGetFieldValues")}


@pytest.mark.parametrize(
    "variant",
    [(), ("FAKE_NO_REMAPPED_ROWS",), ("FAKE_NO_FIELD_VALUES",), ("FAKE_LEGACY",)],
    ids=["full", "no-remap", "no-field-values", "legacy"],
)
def test_batched_samples_equal_samples_read_call_by_call(
    variant: tuple[str, ...], make_fake_nvml: Callable[..., FakeNvml], backend: nvml.Backend
) -> None:
    fake = make_fake_nvml(*variant)
    fake.reset(5)
    troubled(fake, 1)
    fake.set(2, nvlink_links=0, recovery_action=7)
    fake.fail("nvmlDeviceGetTotalEccErrors", Return.NOT_SUPPORTED, index=3)
    fake.fail("field:230", Return.NOT_SUPPORTED, index=3)
    fake.fail("field:5", Return.NOT_SUPPORTED, index=4)
    fake.set(4, nvlink_sleep_mask=0b100)

    assert samples(backend, batched=True) == samples(backend, batched=False)


def test_one_call_per_gpu_replaces_the_per_value_calls(
    fake_nvml: FakeNvml, backend: nvml.Backend
) -> None:
    troubled(fake_nvml, 1)
    with nvml.open_nvml(backend=backend) as session:
        first = session.sample()
        before = calls(fake_nvml)
        second = session.sample()
        after = calls(fake_nvml)

    assert first == second
    assert second[1].nvlink_active == (True,) * 4 + (False, True, True, None) + (True,) * 4
    assert second[1].remapped_rows_corrected == 7
    assert second[1].ecc_corrected_aggregate == 2**40
    assert {name: after[name] - before[name] for name in after} == {
        **dict.fromkeys(BATCHED_CALLS, 0),
        # GPU 1 has a link that answers no query, so its 12 links keep their own calls, and
        # the 13th call finds where the list ends.
        "nvmlDeviceGetNvLinkState": 13,
        "nvmlDeviceGetFieldValues": 2,
    }


def test_an_entry_the_driver_cannot_serve_falls_back_to_its_own_call(
    fake_nvml: FakeNvml, backend: nvml.Backend
) -> None:
    fake_nvml.set(0, ecc_corrected_volatile=9)
    fake_nvml.fail("field:3", Return.NOT_SUPPORTED, index=0)
    with nvml.open_nvml(backend=backend) as session:
        gpus = [session.sample()[0] for _ in range(3)]

    for g in gpus:
        assert g.field_status == OK
        assert g.ecc_corrected_volatile == 9
    # Once its own call has answered, only that value is read by it: once a sample.
    assert fake_nvml.calls("nvmlDeviceGetTotalEccErrors") == 3


def test_a_failure_both_ways_report_is_trusted_from_the_batch(
    fake_nvml: FakeNvml, backend: nvml.Backend
) -> None:
    fake_nvml.fail("nvmlDeviceGetTotalEccErrors", Return.NOT_SUPPORTED, index=0)
    with nvml.open_nvml(backend=backend) as session:
        gpus = [session.sample()[0] for _ in range(3)]

    for g in gpus:
        assert g.field_status == {**OK, **dict.fromkeys(ECC, Return.NOT_SUPPORTED)}
        assert g.ecc_corrected_volatile is None
    # The first sample asks each ECC counter's own call once, to learn that it fails alike.
    assert fake_nvml.calls("nvmlDeviceGetTotalEccErrors") == 4


def test_a_driver_without_field_values_is_read_call_by_call(
    make_fake_nvml: Callable[..., FakeNvml], backend: nvml.Backend
) -> None:
    fake = make_fake_nvml("FAKE_NO_FIELD_VALUES")
    with nvml.open_nvml(backend=backend) as session:
        g = session.sample()[0]

    assert g.field_status == {**OK, **dict.fromkeys(FIELD_ONLY, Return.FUNCTION_NOT_FOUND)}
    assert g.nvlink_active == (True,) * 18
    assert fake.calls("nvmlDeviceGetTotalEccErrors") == 2 * 4


def test_a_sleeping_link_is_read_by_its_own_call(
    fake_nvml: FakeNvml, backend: nvml.Backend
) -> None:
    fake_nvml.set(0, nvlink_sleep_mask=1 << 3)
    with nvml.open_nvml(backend=backend) as session:
        gpus = [session.sample()[0] for _ in range(3)]

    for g in gpus:
        assert g.field_status == OK
        assert g.nvlink_active == (True,) * 18


def test_a_gpu_lost_mid_session_fails_every_batched_value(
    fake_nvml: FakeNvml, backend: nvml.Backend
) -> None:
    with nvml.open_nvml(backend=backend) as session:
        session.sample()
        session.sample()
        fake_nvml.lose(0)
        lost = session.sample()[0]
        fake_nvml.lose(0, False)
        back = session.sample()[0]

    assert lost.status == Return.GPU_IS_LOST
    assert set(lost.field_status.values()) == {Return.GPU_IS_LOST}
    assert back.field_status == OK
    assert back.nvlink_active == (True,) * 18
