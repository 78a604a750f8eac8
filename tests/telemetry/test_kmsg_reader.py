"""KmsgReader on files and pipes of kmsg records, in both engines."""

from __future__ import annotations

import os
from contextlib import aclosing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
import trio.testing
from support.kmsg import BOOT, ENGINES, FORMATS, record, use_engine, xid_line

from navarch.errors import NavarchError
from navarch.telemetry.kmsg import KmsgReader, KmsgStats, ResumePosition


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return use_engine(request.param, monkeypatch)


def log_file(tmp_path: Path, *lines: bytes) -> Path:
    path = tmp_path / "kmsg.log"
    path.write_bytes(b"".join(lines))
    return path


def open_log(path: Path, **kwargs: Any) -> KmsgReader:
    return KmsgReader(path, boot_id=BOOT, **kwargs)


def numbered(n: int, xid_every: int = 3) -> list[bytes]:
    """Records 1..n; every `xid_every`-th one is an XID line naming its sequence number."""
    return [
        record(seq, xid_line(13, f"seq {seq}") if seq % xid_every == 0 else f"plain {seq}")
        for seq in range(1, n + 1)
    ]


def test_reads_every_record_of_a_file(engine: ModuleType, tmp_path: Path) -> None:
    path = log_file(
        tmp_path,
        b"6,344,1381472,-,caller=T1;EXT4-fs (vda): mounted filesystem\n",
        b" SUBSYSTEM=block\n",
        b" DEVICE=b254:0\n",
        b"\n",
        b"12,345,1381500,c;continued\r\n",
        record(346, xid_line(79, "GPU has fallen off the bus.")),
    )
    with open_log(path) as reader:
        assert reader.backend == engine.BACKEND
        records = reader.read_available()
        assert [(r.seq, r.ts_usec, r.facility, r.level, r.flag) for r in records] == [
            (344, 1381472, 0, 6, "-"),
            (345, 1381500, 1, 4, "c"),
            (346, 1346000, 0, 4, "-"),
        ]
        assert records[0].text == "EXT4-fs (vda): mounted filesystem"
        assert records[1].text == "continued"
        assert records[0].xid is None and records[1].xid is None
        event = records[2].xid
        assert event is not None
        assert (event.code, event.source, event.seq, event.ts_usec) == (79, "kmsg", 346, 1346000)
        assert (event.pid, event.process_name) == (1234, "python3")
        assert reader.stats == KmsgStats(
            records=3, xids=1, lost=0, overruns=0, malformed=0, oversized=0, skipped=0
        )
        assert reader.position == ResumePosition(boot_id=BOOT, seq=346)


def test_every_driver_format_is_an_xid_in_a_kernel_record(
    engine: ModuleType, tmp_path: Path
) -> None:
    cases = list(FORMATS.values())
    path = log_file(
        tmp_path,
        *(record(seq, line) + b" SUBSYSTEM=pci\n" for seq, (line, _) in enumerate(cases, 1)),
    )
    with open_log(path) as reader:
        events = [r.xid for r in reader.read_available(only_xid=True)]
    assert len(events) == len(cases)
    for event, (line, expected) in zip(events, cases, strict=True):
        assert event is not None, line
        assert {key: getattr(event, key) for key in expected} == expected
        assert event.source == "kmsg"


async def test_xids_count_only_from_the_kernel_facility(engine: ModuleType, tmp_path: Path) -> None:
    lines = [record(1, xid_line(79)), record(2, xid_line(48), facility=1)]
    lines += [record(3, xid_line(31), facility=3), record(4, xid_line(13), facility=0, level=0)]
    path = log_file(tmp_path, *lines)
    with open_log(path) as reader:
        assert [e.code async for e in reader.xid_events()] == [79, 13]
        assert reader.stats.xids == 2
    with open_log(path, trust_user_facility=True) as reader:
        assert [e.code async for e in reader.xid_events()] == [79, 48, 31, 13]


async def test_records_iteration_ends_at_the_end_of_a_file(
    engine: ModuleType, tmp_path: Path
) -> None:
    path = log_file(tmp_path, *numbered(600))
    with open_log(path) as reader:
        seqs = [r.seq async for r in reader.records()]
    assert seqs == list(range(1, 601))


async def test_xid_events_span_many_batches(engine: ModuleType, tmp_path: Path) -> None:
    path = log_file(tmp_path, *numbered(3000))
    with open_log(path) as reader:
        events = [e async for e in reader.xid_events()]
        assert [e.seq for e in events] == list(range(3, 3001, 3))
        assert all(e.message == f"seq {e.seq}" for e in events)
        assert reader.stats.records == 3000
        assert reader.position == ResumePosition(boot_id=BOOT, seq=3000)
    with open_log(path) as reader:
        assert len(reader.read_available(only_xid=True)) == 1000


async def test_a_pipe_waits_for_records_and_joins_split_lines(
    engine: ModuleType, tmp_path: Path
) -> None:
    fifo = tmp_path / "kmsg.fifo"
    os.mkfifo(fifo)
    got: list[int] = []
    with open_log(fifo) as reader:
        writer = os.open(fifo, os.O_WRONLY)

        async def consume() -> None:
            async for event in reader.xid_events():
                got.append(event.code)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            data = record(1, xid_line(79)) + record(2, "plain") + record(3, xid_line(13))
            os.write(writer, data[:30])
            await trio.testing.wait_all_tasks_blocked()
            assert got == []
            os.write(writer, data[30:])
            await trio.testing.wait_all_tasks_blocked()
            assert got == [79, 13]
            os.write(writer, record(4, xid_line(48))[:-1])
            os.close(writer)
        assert got == [79, 13, 48]
        assert reader.position == ResumePosition(boot_id=BOOT, seq=4)


async def test_resume_neither_misses_nor_repeats(engine: ModuleType, tmp_path: Path) -> None:
    path = log_file(tmp_path, *numbered(700, xid_every=100))
    state = tmp_path / "kmsg-position.json"
    handled: list[int | None] = []

    async def run_daemon(stop_after: int | None) -> None:
        with open_log(path, resume=ResumePosition.load(state)) as reader:
            async with aclosing(reader.xid_events()) as events:
                async for event in events:
                    handled.append(event.seq)
                    position = reader.position
                    assert position is not None
                    position.save(state)
                    if len(handled) == stop_after:
                        return

    await run_daemon(stop_after=2)
    assert ResumePosition.load(state) == ResumePosition(boot_id=BOOT, seq=200)
    await run_daemon(stop_after=5)
    await run_daemon(stop_after=None)
    await run_daemon(stop_after=None)
    assert handled == [100, 200, 300, 400, 500, 600, 700]


def test_resume_skips_what_was_handled_and_counts_it(engine: ModuleType, tmp_path: Path) -> None:
    path = log_file(tmp_path, *numbered(10))
    with open_log(path, resume=ResumePosition(boot_id=BOOT, seq=6)) as reader:
        assert reader.position == ResumePosition(boot_id=BOOT, seq=6)
        assert [r.seq for r in reader.read_available()] == [7, 8, 9, 10]
        assert (reader.stats.skipped, reader.stats.records, reader.stats.lost) == (6, 4, 0)


def test_resume_from_another_boot_reads_everything(engine: ModuleType, tmp_path: Path) -> None:
    path = log_file(tmp_path, *numbered(10))
    earlier_boot = ResumePosition(boot_id="another-boot", seq=6)
    with open_log(path, resume=earlier_boot) as reader:
        assert reader.position is None
        assert [r.seq for r in reader.read_available()] == list(range(1, 11))
        assert reader.stats.skipped == 0


def test_records_overwritten_while_down_are_counted_lost(
    engine: ModuleType, tmp_path: Path
) -> None:
    path = log_file(tmp_path, *[record(seq, f"r{seq}") for seq in range(20, 25)])
    with open_log(path, resume=ResumePosition(boot_id=BOOT, seq=10)) as reader:
        assert [r.seq for r in reader.read_available()] == [20, 21, 22, 23, 24]
        assert reader.stats.lost == 9


def test_sequence_gaps_are_counted_lost(engine: ModuleType, tmp_path: Path) -> None:
    path = log_file(tmp_path, *[record(seq, "x") for seq in (1, 2, 5, 6, 10, 10, 3)])
    with open_log(path) as reader:
        assert [r.seq for r in reader.read_available()] == [1, 2, 5, 6, 10, 10, 3]
        assert reader.stats.lost == 5
        assert reader.position == ResumePosition(boot_id=BOOT, seq=10)


async def test_leaving_a_loop_early_keeps_the_rest_for_the_next_one(
    engine: ModuleType, tmp_path: Path
) -> None:
    path = log_file(tmp_path, *numbered(9))
    with open_log(path) as reader:
        async with aclosing(reader.records()) as records:
            async for r in records:
                if r.seq == 4:
                    break
        assert reader.position == ResumePosition(boot_id=BOOT, seq=4)
        assert [r.seq async for r in reader.records()] == [5, 6, 7, 8, 9]


def test_hostile_input_is_counted_and_skipped(engine: ModuleType, tmp_path: Path) -> None:
    long_message = b"y" * 1100 + xid_line(48).encode()
    path = log_file(
        tmp_path,
        record(1, xid_line(13)),
        b"6,2,3," + b"z" * 100_000 + b";NVRM: Xid (PCI:0000:3b:00): 79, huge line\n",
        b"\x00\xff\xfe garbage \x01\x02;;;,,,\n",
        b"6,3,300,-\n",
        b"6,4,400,-;NVRM: Xid (PCI:0000:3b\n",
        record(5, rb"NVRM: Xid (PCI:0000:3b:00): 31, pid=9, name=a\x0ab, C\x00" + b"\x00\xffnul"),
        record(6, xid_line(74, "z" * 1200)),
        record(7, long_message),
        b"6,18446744073709551616,1,-;seq too large\n",
        b"6,8,9,-- bad flag;x\n",
        b"99999999999,8,9,-;prio too large\n",
        record(8, xid_line(94)),
    )
    with open_log(path) as reader:
        records = reader.read_available()
        assert [r.seq for r in records] == [1, 4, 5, 6, 7, 8]
        assert reader.stats.oversized == 1
        assert reader.stats.malformed == 5
        events = {r.seq: r.xid for r in records if r.xid is not None}
        assert {seq: e.code for seq, e in events.items()} == {1: 13, 5: 31, 6: 74, 7: 48, 8: 94}
        assert events[5].process_name == r"a\x0ab"
        assert events[5].message == "C\\x00\x00\ufffdnul"
        by_seq = {r.seq: r for r in records}
        assert by_seq[6].truncated and len(by_seq[6].text) == 1023
        assert events[6].message == "z" * (1023 - len(xid_line(74, "")))
        assert by_seq[7].truncated and events[7].message == ""


def test_line_length_limit(engine: ModuleType, tmp_path: Path) -> None:
    """Lines up to NAVARCH_KMSG_BUF_LEN - 1 bytes are read; longer ones are skipped."""

    def line_of(seq: int, length: int) -> bytes:
        head = record(seq, b"")[:-1]
        return head + b"m" * (length - len(head)) + b"\n"

    path = log_file(
        tmp_path, line_of(1, 16383), line_of(2, 16384), line_of(3, 10), line_of(4, 16383)
    )
    with open_log(path) as reader:
        assert [r.seq for r in reader.read_available()] == [1, 3, 4]
        assert reader.stats.oversized == 1


def test_a_last_line_without_newline_counts(engine: ModuleType, tmp_path: Path) -> None:
    path = log_file(tmp_path, record(1, "a"), record(2, xid_line(79))[:-1])
    with open_log(path) as reader:
        records = reader.read_available()
        assert [r.seq for r in records] == [1, 2]
        assert records[1].xid is not None


def test_saved_positions(tmp_path: Path) -> None:
    state = tmp_path / "position.json"
    assert ResumePosition.load(state) is None
    ResumePosition(boot_id=BOOT, seq=2**64 - 1).save(state)
    assert ResumePosition.load(state) == ResumePosition(boot_id=BOOT, seq=2**64 - 1)
    assert not (tmp_path / "position.json.tmp").exists()
    for bad in [
        "",
        "[]",
        '{"boot_id": "b"}',
        '{"boot_id": "", "seq": 1}',
        '{"boot_id": "b", "seq": -1}',
        '{"boot_id": "b", "seq": true}',
        '{"boot_id": 1, "seq": 1}',
        '{"boot_id": "b", "seq": 1.0}',
    ]:
        state.write_text(bad)
        with pytest.raises(NavarchError, match=r"position\.json: expected a kmsg position"):
            ResumePosition.load(state)


def test_missing_source_raises(engine: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_log(tmp_path / "nope")
