"""The writer that both stores share: each change is written under the lease it was queued
under, so a term's leftovers never go out under the next term's fencing token."""

from __future__ import annotations

from datetime import UTC, datetime

import trio

from navarch.model import Event
from navarch.store import Change
from navarch.store.group_commit import Fencing, GroupCommit, Heartbeats

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _change(event_id: str) -> Change:
    return Change(events=(Event(event_id=event_id, time=T0, kind="node.registered"),))


async def test_changes_queued_under_one_lease_are_written_under_it_after_a_new_term() -> None:
    written: list[tuple[list[str], Fencing, int]] = []

    async def write(
        changes: list[Change], heartbeats: Heartbeats, fencing: Fencing
    ) -> list[Exception | None]:
        written.append(([c.events[0].event_id for c in changes], fencing, len(heartbeats)))
        return [None] * len(changes)

    lease: Fencing = ("leader", 1)
    writer = GroupCommit("test", write, flush_interval=60.0, fencing=lambda: lease)
    writer.commit_soon(_change("old-1"))
    writer.commit_soon(_change("old-2"))
    # The term ends and the same process leads again, with the next token, before the writer
    # has written the first term's changes.
    lease = ("leader", 2)
    writer.commit_soon(_change("new-1"))
    writer.note_heartbeat("n1", T0, None)
    writer.close()
    await writer.run()
    assert written == [
        (["old-1", "old-2"], ("leader", 1), 0),
        (["new-1"], ("leader", 2), 0),
        # Heartbeats are soft state: they go, at close, under the lease held then.
        ([], ("leader", 2), 1),
    ]


async def test_heartbeats_alone_go_under_the_lease_held_now() -> None:
    written: list[tuple[int, Fencing]] = []

    async def write(
        changes: list[Change], heartbeats: Heartbeats, fencing: Fencing
    ) -> list[Exception | None]:
        written.append((len(heartbeats), fencing))
        return []

    writer = GroupCommit("test", write, flush_interval=60.0, fencing=lambda: ("leader", 7))
    writer.note_heartbeat("n1", T0, None)
    writer.close()
    with trio.fail_after(5):
        await writer.run()
    assert written == [(1, ("leader", 7))]
