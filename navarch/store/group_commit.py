"""Group commit, as both stores write: one writer task, and callers that wait for their change.

Every change goes through a trio memory channel to a single writer task, which drains whatever has
queued up and hands it to the store's `WriteBatch` to write in one transaction: under load, many
requests share one commit (measured 30 times faster than a commit each). Heartbeats wait in memory
and go with the next write after about `flush_interval` seconds; a later heartbeat of a node
replaces its earlier one. A change whose write fails fails its own callers alone, with a
`StoreError`; a batch that a PostgreSQL store refuses because another control plane took its lease
fails each of its callers with `Deposed`. The writer itself never stops for one change.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Awaitable, Callable
from datetime import datetime

import attrs
import trio

from navarch.clock import format_timestamp
from navarch.model import GpuMetrics, NodeMetrics
from navarch.store import rows
from navarch.store.protocol import Change, Deposed, StoreError

log = logging.getLogger("navarch.store")

# A batch this large is written even if more changes are waiting, to bound one transaction.
_MAX_BATCH = 2000

# node id -> (time of its last heartbeat, its metrics as the store's JSON text), as written.
Heartbeats = dict[str, tuple[str, str | None]]
# The same until the flush, with the time as it came: only a node's last heartbeat before a flush
# is written, so only that one's time is formatted. The metrics are text rather than objects: the
# collector would otherwise walk a second's worth of every node's metrics objects, promoted to its
# oldest generation by a busy server before they are written. (A datetime is no container, so
# the collector does not track it.)
_Pending = dict[str, tuple[datetime, str | None]]


# How many encoded readings the writer keeps; past it, it starts again.
_ENCODED = 1024
_NODE_FIELDS = tuple(a.name for a in attrs.fields(NodeMetrics) if a.name != "gpus")
_GPU_FIELDS = operator.attrgetter(*(a.name for a in attrs.fields(GpuMetrics)))


def _metrics_key(metrics: NodeMetrics) -> tuple[object, ...]:
    """Every number of the metrics, flat: a key the collector stops tracking, where the metrics
    objects themselves would be walked by every collection for as long as the cache kept them."""
    key: list[object] = [getattr(metrics, name) for name in _NODE_FIELDS]
    for gpu in metrics.gpus:
        key += _GPU_FIELDS(gpu)
    return tuple(key)


_NOTHING = Change()


class Outcome:
    """How the write of a change ended, for the caller that waits for it."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: StoreError | None = None


# The lease a change was queued under, (name, fencing token), or None where no lease is held.
Fencing = tuple[str, int] | None
# A queued change, its outcome when a caller waits for it, and the lease it was queued under:
# a change of a term that has ended is written under that term's token (and refused), never
# under the next term's.
Queued = tuple[Change, Outcome | None, Fencing]
# Writes the changes and heartbeats under the fencing; returns each change's error. Raises when
# all failed.
WriteBatch = Callable[[list[Change], Heartbeats, Fencing], Awaitable[list[Exception | None]]]


class GroupCommit:
    """The queue of changes and heartbeats, and the task that writes them."""

    def __init__(
        self,
        location: str,
        write: WriteBatch,
        flush_interval: float,
        fencing: Callable[[], Fencing] = lambda: None,
    ) -> None:
        """`fencing` gives the lease that changes queued now belong to."""
        self._location = location
        self._fencing = fencing
        self._write = write
        self._flush_interval = flush_interval
        self._send, self._receive = trio.open_memory_channel[Queued](10_000)
        self._heartbeats: _Pending = {}
        self._encoded: dict[tuple[object, ...], str] = {}
        self.failed_changes = 0
        self.deposed_writes = 0

    async def commit(self, change: Change) -> None:
        outcome = Outcome()
        await self._send.send((change, outcome, self._fencing()))
        await outcome.done.wait()
        if outcome.error is not None:
            raise outcome.error

    def commit_soon(self, change: Change) -> None:
        try:
            self._send.send_nowait((change, None, self._fencing()))
        except trio.WouldBlock:
            # The writer is far behind; dropping state that may be lost is the cheaper choice.
            pass

    def note_heartbeat(self, node_id: str, at: datetime, metrics: NodeMetrics | None) -> None:
        text = None if metrics is None else self._encode(metrics)
        if text is None and node_id in self._heartbeats:
            text = self._heartbeats[node_id][1]
        self._heartbeats[node_id] = (at, text)

    def _encode(self, metrics: NodeMetrics) -> str:
        """Metrics as the store's JSON text; nodes under the same load send equal metrics, and a
        node whose readings hold still sends equal ones heartbeat after heartbeat."""
        key = _metrics_key(metrics)
        text = self._encoded.get(key)
        if text is None:
            text = rows.to_json(metrics)
            if len(self._encoded) >= _ENCODED:
                self._encoded.clear()
            self._encoded[key] = text
        return text

    def _take_heartbeats(self) -> Heartbeats:
        """The heartbeats noted since the last flush, as written; the next flush starts empty."""
        pending, self._heartbeats = self._heartbeats, {}
        return {node_id: (format_timestamp(at), text) for node_id, (at, text) in pending.items()}

    def close(self) -> None:
        self._send.close()

    async def run(self) -> None:
        """Writes until `close`, then writes everything still queued, heartbeats included."""
        next_flush = trio.current_time() + self._flush_interval
        try:
            while True:
                batch: list[Queued] = []
                with trio.move_on_at(next_flush):
                    try:
                        batch.append(await self._receive.receive())
                    except trio.EndOfChannel:
                        break
                self._take_queued(batch)
                heartbeats: Heartbeats = {}
                if trio.current_time() >= next_flush:
                    heartbeats = self._take_heartbeats()
                    next_flush = trio.current_time() + self._flush_interval
                if batch or heartbeats:
                    await self._write_batch(batch, heartbeats)
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await self._write_everything_left()
            raise
        await self._write_everything_left()

    def _take_queued(self, batch: list[Queued]) -> None:
        while len(batch) < _MAX_BATCH:
            try:
                batch.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return

    async def _write_everything_left(self) -> None:
        while True:
            batch: list[Queued] = []
            self._take_queued(batch)
            heartbeats = self._take_heartbeats()
            if not batch and not heartbeats:
                return
            await self._write_batch(batch, heartbeats)

    async def _write_batch(self, batch: list[Queued], heartbeats: Heartbeats) -> None:
        """Writes the batch in runs of one lease each, in order; heartbeats go with the last run
        (they are soft state, under the lease held now)."""
        start = 0
        for end in range(1, len(batch) + 1):
            if end == len(batch) or batch[end][2] != batch[start][2]:
                last = end == len(batch)
                await self._write_run(batch[start:end], heartbeats if last else {}, batch[start][2])
                start = end
        if not batch:
            await self._write_run([], heartbeats, self._fencing())

    async def _write_run(
        self, batch: list[Queued], heartbeats: Heartbeats, fencing: Fencing
    ) -> None:
        changes = [change for change, _, _ in batch]
        deposed: Deposed | None = None
        try:
            if heartbeats or fencing is not None or any(c != _NOTHING for c in changes):
                errors = await self._write(changes, heartbeats, fencing)
            else:
                # Changes that write nothing (a caller waiting for what came before it, which
                # earlier runs wrote) need no transaction, unless a lease must be checked.
                await trio.lowlevel.checkpoint()
                errors = [None] * len(changes)
        except Deposed as exc:
            log.warning("store=%s write refused: %s", self._location, exc)
            deposed = exc
            errors = [exc] * len(changes)
        except Exception as exc:
            log.error("store=%s write failed: %r", self._location, exc)
            errors = [exc] * len(changes)
        for (_, outcome, _), error in zip(batch, errors, strict=True):
            if deposed is not None:
                self.deposed_writes += 1
            elif error is not None:
                self.failed_changes += 1
                # repr, because the problem may hold the very text that could not be encoded.
                log.error("store=%s change not written: %r", self._location, error)
            if outcome is not None:
                if deposed is not None:
                    outcome.error = deposed
                elif error is not None:
                    outcome.error = StoreError(f"{self._location}: write failed: {error!r}")
                outcome.done.set()
