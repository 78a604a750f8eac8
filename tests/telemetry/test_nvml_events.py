"""NVML events through the real dlopen path: XIDs and ECC events reach the async iterator."""

from __future__ import annotations

import pytest
import trio

from navarch.telemetry import nvml
from navarch.telemetry.nvml import EventType, Return
from navarch.testing import FakeNvml


async def test_injected_xid_arrives_as_a_typed_event(fake_nvml: FakeNvml, open_fake) -> None:
    session = open_fake()
    async with session.watch_events() as events:
        assert events.registered == {0: nvml.DEFAULT_EVENTS, 1: nvml.DEFAULT_EVENTS}
        assert fake_nvml.inject(1, EventType.XID, 79) == 1
        with trio.fail_after(5):
            event = await events.__anext__()

    assert event == nvml.NvmlEvent(
        type=EventType.XID,
        gpu_index=1,
        uuid="GPU-fa4e0001-fake-4000-8000-000000000001",
        data=79,
        gpu_instance_id=None,
        compute_instance_id=None,
    )
    assert event.xid == 79


async def test_ecc_and_recovery_events_keep_their_order(fake_nvml: FakeNvml, open_fake) -> None:
    session = open_fake()
    async with session.watch_events() as events:
        fake_nvml.inject(0, EventType.SINGLE_BIT_ECC)
        fake_nvml.inject(0, EventType.DOUBLE_BIT_ECC)
        fake_nvml.inject(1, EventType.GPU_RECOVERY_ACTION, nvml.RecoveryAction.GPU_RESET)
        received = []
        with trio.fail_after(5):
            async for event in events:
                received.append((event.type, event.gpu_index, event.data, event.xid))
                if len(received) == 3:
                    break

    assert received == [
        (EventType.SINGLE_BIT_ECC, 0, 0, None),
        (EventType.DOUBLE_BIT_ECC, 0, 0, None),
        (EventType.GPU_RECOVERY_ACTION, 1, 1, None),
    ]


async def test_only_asked_types_are_registered(fake_nvml: FakeNvml, open_fake) -> None:
    session = open_fake()
    async with session.watch_events(EventType.XID) as events:
        assert events.registered == {0: EventType.XID, 1: EventType.XID}
        assert fake_nvml.inject(0, EventType.SINGLE_BIT_ECC) == 0
        assert fake_nvml.inject(0, EventType.XID, 13) == 1


async def test_unsupported_types_are_left_out_per_gpu(fake_nvml: FakeNvml, open_fake) -> None:
    fake_nvml.set(1, supported_events=EventType.XID | EventType.DOUBLE_BIT_ECC)
    # GPU 0's driver cannot list its event types, so navarch registers them one by one.
    fake_nvml.set(0, supported_events=EventType.XID | EventType.SINGLE_BIT_ECC)
    fake_nvml.fail("nvmlDeviceGetSupportedEventTypes", Return.NOT_SUPPORTED, index=0)
    session = open_fake()
    async with session.watch_events() as events:
        assert events.registered == {
            0: EventType.XID | EventType.SINGLE_BIT_ECC,
            1: EventType.XID | EventType.DOUBLE_BIT_ECC,
        }


async def test_cancelling_the_wait_returns_at_once(fake_nvml: FakeNvml, open_fake) -> None:
    session = open_fake()

    def waits_started() -> int:
        return fake_nvml.calls("nvmlEventSetWait_v2")

    # A wait far longer than the test may take: only abandoning the thread can end it in time.
    async with session.watch_events(wait_timeout=5) as events:
        with trio.fail_after(1):
            async with trio.open_nursery() as nursery:

                async def consume() -> None:
                    async for _ in events:
                        pytest.fail("no event was injected")

                nursery.start_soon(consume)
                while not waits_started():
                    await trio.sleep(0.001)
                nursery.cancel_scope.cancel()
    # The abandoned wait is still blocked in NVML; it frees the event set once it returns.
    assert waits_started() == 1
    assert fake_nvml.calls("nvmlEventSetFree") == 0
    fake_nvml.inject(0, EventType.XID, 31)
    with trio.fail_after(5):
        while fake_nvml.calls("nvmlEventSetFree") == 0:
            await trio.sleep(0.001)


async def test_event_received_after_a_cancelled_wait_is_kept(
    fake_nvml: FakeNvml, open_fake
) -> None:
    session = open_fake()
    async with session.watch_events(wait_timeout=0.2) as events:
        with trio.move_on_after(0.01):
            await events.__anext__()
        fake_nvml.inject(0, EventType.XID, 48)
        with trio.fail_after(5):
            event = await events.__anext__()
    assert (event.type, event.xid) == (EventType.XID, 48)


async def test_gpu_lost_while_watching_is_reported_once(fake_nvml: FakeNvml, open_fake) -> None:
    session = open_fake()
    async with session.watch_events(wait_timeout=0.05) as events:
        fake_nvml.lose(1)
        fake_nvml.lose(1)
        fake_nvml.inject(0, EventType.XID, 94)
        with trio.fail_after(5):
            lost = await events.__anext__()
            after = await events.__anext__()
    assert (lost.type, lost.gpu_index, lost.uuid) == (
        EventType.GPU_UNAVAILABLE,
        1,
        "GPU-fa4e0001-fake-4000-8000-000000000001",
    )
    assert (after.type, after.gpu_index, after.xid) == (EventType.XID, 0, 94)


async def test_nvml_stays_up_until_the_last_watcher_closes(
    fake_nvml: FakeNvml, backend: nvml.Backend
) -> None:
    session = nvml.open_nvml(backend=backend)
    async with session.watch_events(wait_timeout=0.05) as events:
        session.close()
        assert fake_nvml.calls("nvmlShutdown") == 0
        fake_nvml.inject(0, EventType.XID, 43)
        with trio.fail_after(5):
            assert (await events.__anext__()).xid == 43
    assert fake_nvml.calls("nvmlEventSetFree") == 1
    assert fake_nvml.calls("nvmlShutdown") == 1
    with pytest.raises(StopAsyncIteration):
        await events.__anext__()


async def test_watching_needs_an_open_session(fake_nvml: FakeNvml, backend: nvml.Backend) -> None:
    session = nvml.open_nvml(backend=backend)
    session.close()
    with pytest.raises(nvml.Uninitialized):
        async with session.watch_events():
            pass


async def test_event_set_failure_raises(fake_nvml: FakeNvml, open_fake) -> None:
    fake_nvml.fail("nvmlEventSetCreate", Return.NO_PERMISSION)
    session = open_fake()
    with pytest.raises(nvml.NoPermission):
        async with session.watch_events():
            pass
    session.sample()
