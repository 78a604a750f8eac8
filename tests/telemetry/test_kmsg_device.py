"""KmsgReader on the real /dev/kmsg: the tests write their own records, so they need root.

Marked `kmsg`; deselect with `-m "not kmsg"`. Each test skips when /dev/kmsg cannot be read or
written here. Lines written from userspace land in facility 1 (user), never 0, which is why the
reader's test switch exists.
"""

from __future__ import annotations

import os
import uuid
from contextlib import aclosing
from types import ModuleType

import pytest
import trio
import trio.testing
from support.kmsg import ENGINES, kmsg_readable, kmsg_ring_size, use_engine, write_kmsg

from navarch.telemetry.kmsg import KmsgReader, KmsgRecord
from navarch.telemetry.xid import XidEvent

pytestmark = [
    pytest.mark.kmsg,
    pytest.mark.skipif(not kmsg_readable(), reason="/dev/kmsg is not readable here"),
]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return use_engine(request.param, monkeypatch)


@pytest.fixture
def name() -> str:
    """A process name no other test or program writes, to pick this test's records out."""
    return f"nv{uuid.uuid4().hex[:12]}"


def user_xid(name: str, code: int = 79) -> bytes:
    return (
        b"<3>NVRM: Xid (PCI:0000:3b:00): %d, pid=1234, name=%s, GPU has fallen off the bus.\n"
        % (
            code,
            name.encode(),
        )
    )


def codes(events: list[XidEvent], name: str) -> list[int]:
    return [e.code for e in events if e.process_name == name]


def xids(records: list[KmsgRecord]) -> list[XidEvent]:
    return [r.xid for r in records if r.xid is not None]


def test_user_facility_xid_is_seen_only_with_the_test_switch(engine: ModuleType, name: str) -> None:
    with KmsgReader() as production, KmsgReader(trust_user_facility=True) as trusting:
        write_kmsg(user_xid(name))
        mine = [r for r in production.read_available() if name in r.text]
        assert len(mine) == 1
        assert mine[0].facility == 1
        assert mine[0].xid is None
        assert codes(xids(production.read_available(only_xid=True)), name) == []
        assert codes(xids(trusting.read_available(only_xid=True)), name) == [79]


async def test_waits_for_new_records(engine: ModuleType, name: str) -> None:
    got: list[XidEvent] = []
    with KmsgReader(trust_user_facility=True) as reader:

        async def consume() -> None:
            async with aclosing(reader.xid_events()) as events:
                async for event in events:
                    if event.process_name == name:
                        got.append(event)
                        return

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                await trio.testing.wait_all_tasks_blocked()
                assert got == []
                write_kmsg(user_xid(name))
        assert [(e.code, e.source) for e in got] == [(79, "kmsg")]
        assert reader.position is not None and got[0].seq is not None
        assert reader.position.seq >= got[0].seq


def test_starts_at_the_end_unless_asked_for_the_whole_ring(engine: ModuleType, name: str) -> None:
    write_kmsg(b"<6>%s\n" % name.encode())
    with KmsgReader() as reader:
        assert not [r for r in reader.read_available() if name in r.text]
    with KmsgReader(from_start=True) as reader:
        assert len([r for r in reader.read_available() if name in r.text]) == 1


def test_resume_after_a_restart_neither_misses_nor_repeats(engine: ModuleType, name: str) -> None:
    with KmsgReader(trust_user_facility=True) as first:
        write_kmsg(user_xid(name, 13))
        assert codes(xids(first.read_available(only_xid=True)), name) == [13]
        saved = first.position
    assert saved is not None
    write_kmsg(user_xid(name, 31))  # logged while the daemon is down
    with KmsgReader(resume=saved, trust_user_facility=True) as second:
        assert codes(xids(second.read_available(only_xid=True)), name) == [31]
        assert second.stats.skipped > 0


def test_records_the_kernel_overwrote_are_counted_lost(engine: ModuleType, name: str) -> None:
    with KmsgReader(trust_user_facility=True) as reader:
        write_kmsg(b"<6>%s start\n" % name.encode())
        reader.read_available()
        # Twice the ring's size in new records overwrites the reader's position.
        filler = b"<6>" + b"f" * 900 + b"\n"
        for _ in range(2 * kmsg_ring_size() // len(filler) + 10):
            write_kmsg(filler)
        write_kmsg(user_xid(name))
        records = reader.read_available()
        assert reader.stats.overruns >= 1
        assert reader.stats.lost >= 1
        assert codes(xids(records), name) == [79]


def test_a_record_larger_than_the_read_buffer_is_skipped(engine: ModuleType, name: str) -> None:
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.lseek(fd, 0, os.SEEK_END)
        drain = engine.Drain(fd, engine.MODE_DEVICE)
        drain.read_size = 128
        write_kmsg(b"<6>a\n")
        assert drain.drain(64)[0] == engine.AGAIN
        write_kmsg(b"<6>" + b"L" * 500 + b"\n")
        assert drain.drain(64) == (engine.AGAIN, [])
        assert drain.stats().oversized == 1
        write_kmsg(b"<6>%s\n" % name.encode())
        status, records = drain.drain(64)
        assert status == engine.AGAIN
        assert [r.text for r in records if name in r.text] == [name]
        assert drain.stats().lost >= 1
    finally:
        os.close(fd)
