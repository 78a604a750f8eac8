"""Judging the events of the daemon's health checks with the default health policy."""

from __future__ import annotations

from collections.abc import Sequence

from navarch.health import HealthJudge, Match, Verdict, load_policy
from navarch.model import HealthEvent

POLICY = load_policy(None)


def judge_each(events: Sequence[HealthEvent]) -> list[Match]:
    """Each event judged on its own, by a judge that has seen nothing else."""
    return [HealthJudge(POLICY).evaluate("n", [e], 0.0).matches[0] for e in events]


def verdict(batches: Sequence[tuple[float, Sequence[HealthEvent]]]) -> Verdict:
    """One node's verdict after its batches of events, each judged at its time in seconds."""
    judge = HealthJudge(POLICY)
    result = None
    for at, events in batches:
        result = judge.evaluate("n", events, at)
    assert result is not None
    return result
