"""What remediation counts for `/metrics`: episodes started, and how they ended and how long they
took.

The `Remediator` owns one `RemediationCounts` and counts into it once an episode's record is
committed; the metrics renderer (`navarch.api.metrics`) reads it. An episode ends as `completed`
(DONE), `held` (HELD, waiting for an operator) or `cancelled`; a held episode that an operator
cancels later counts once as held and once as cancelled, each with its time since it started.
"""

from __future__ import annotations

import bisect
import collections
from datetime import datetime

from navarch.model import Remediation, RemediationAction, RemediationStep

OUTCOMES = {
    RemediationStep.DONE: "completed",
    RemediationStep.HELD: "held",
    RemediationStep.CANCELLED: "cancelled",
}
ACTIONS = tuple(action.value for action in RemediationAction)
# Seconds from an episode's start to its end: a reset takes a minute, a drain up to its timeout
# (10 minutes by default), a replacement as long as the provider takes to answer.
DURATION_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0)


class Durations:
    """A histogram of durations with fixed buckets: counts per bucket (the last is +Inf) and the
    sum."""

    def __init__(self) -> None:
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, count at or below it) pairs as Prometheus writes them, +Inf last."""
        pairs, seen = [], 0
        for bound, count in zip((*map(str, DURATION_BUCKETS), "+Inf"), self.buckets, strict=True):
            seen += count
            pairs.append((bound, seen))
        return pairs


class RemediationCounts:
    """Counts since the control plane started."""

    def __init__(self) -> None:
        # (pool, action) -> episodes opened
        self.started: collections.Counter[tuple[str, str]] = collections.Counter()
        # (pool, outcome) -> episodes that reached the outcome
        self.ended: collections.Counter[tuple[str, str]] = collections.Counter()
        # outcome -> time from start to outcome
        self.durations = {outcome: Durations() for outcome in OUTCOMES.values()}

    def opened(self, episode: Remediation) -> None:
        self.started[episode.pool, episode.action.value] += 1
        if episode.step in OUTCOMES:
            self.reached(episode, episode.started_at)

    def reached(self, episode: Remediation, at: datetime | None) -> None:
        """Counts an episode that moved to DONE, HELD or CANCELLED at `at`."""
        outcome = OUTCOMES.get(episode.step)
        if outcome is None:
            return
        self.ended[episode.pool, outcome] += 1
        if at is not None and episode.started_at is not None:
            self.durations[outcome].observe(max((at - episode.started_at).total_seconds(), 0.0))
