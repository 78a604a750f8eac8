"""Decision state in the store's format: what its owners keep so that a restart decides alike.

An owner (the health verdicts, remediation's circuit breaker, a pool's scaling loop) keeps its
memory as a frozen attrs value, and puts it in the `Change` of the event that moved it, as a
`DecisionState` made by `state`. At start it reads its entries back from `StoredState.decisions`
with `decode`. An entry that does not read is logged and left out: its owner starts without it,
as every control plane did before the state was kept.

Times inside a value are wall-clock times. The owners count in trio's time, which starts over
with every process, so `wall_time` and `trio_time` convert at the moment of writing and of
loading: a control plane that was down for a while finds its windows that much older.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import TypeVar

from navarch.clock import Clock
from navarch.store import rows
from navarch.store.protocol import DecisionState, StoreError

T = TypeVar("T")

log = logging.getLogger("navarch.store")


def state(scope: str, key: str, value: object | None, at: datetime) -> DecisionState:
    """The entry (scope, key) holding `value` (an attrs value), or deleting it when None."""
    return DecisionState(
        scope=scope,
        key=key,
        value=None if value is None else rows.to_json(value),
        updated_at=at,
    )


def decode(
    decisions: Iterable[DecisionState], scope: str, cls: type[T], location: str
) -> Iterator[tuple[str, T]]:
    """(key, value) of every readable entry of `scope`; the others are logged and skipped."""
    reader = rows.RowReader(location)
    for decision in decisions:
        if decision.scope != scope or decision.value is None:
            continue
        try:
            yield decision.key, reader.value(decision.value, cls, f"{scope} {decision.key!r}")
        except StoreError as exc:
            log.error("%s; starting without it", exc)


def wall_time(clock: Clock, at: float) -> datetime:
    """The wall-clock time of the trio time `at`."""
    return clock.now() - timedelta(seconds=clock.monotonic() - at)


def trio_time(clock: Clock, at: datetime) -> float:
    """The trio time of the wall-clock time `at`; before this process started, it is negative."""
    return clock.monotonic() - (clock.now() - at).total_seconds()
