"""The control plane's decision state: what verdicts and remediation keep across a restart.

Each value goes into the store (`navarch.store.DecisionState`) in the same `Change` as the event
that moved it, and comes back at start:

- `node.health`: the health judge's memory of a node and the action taken for its verdict, so
  that a restarted control plane judges the next report as the old one would have;
- `node.episode_intent`: an episode that a verdict or a lost heartbeat asked for, written with the
  node's UNHEALTHY commit and deleted by the episode's own commit; a control plane that stopped in
  between opens the episode at start;
- `pool.breaker`: the episodes that count toward a pool's circuit breaker, within its window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from attrs import frozen

from navarch.clock import Clock
from navarch.health import Action
from navarch.health.memory import JudgeMemory
from navarch.model import RemediationAction
from navarch.store import DecisionState, decisions

HEALTH = "node.health"
EPISODE_INTENT = "node.episode_intent"
BREAKER = "pool.breaker"


@frozen(kw_only=True)
class HealthMemory:
    judge: JudgeMemory
    # The most disruptive action taken for the node's current verdict.
    acted: Action = Action.NONE


@frozen(kw_only=True)
class EpisodeIntent:
    rule: str
    action: RemediationAction = RemediationAction.REPLACE
    gpu_index: int = -1


@frozen(kw_only=True)
class BreakerStart:
    at: datetime
    node_id: str


@frozen(kw_only=True)
class BreakerWindow:
    # Oldest first.
    starts: tuple[BreakerStart, ...] = ()


def intent_state(clock: Clock, node_id: str, intent: EpisodeIntent | None) -> DecisionState:
    return decisions.state(EPISODE_INTENT, node_id, intent, clock.now())


def breaker_state(clock: Clock, pool: str, starts: Sequence[tuple[float, str]]) -> DecisionState:
    """The pool's breaker window, from (trio time, node id) of each start; deleted when empty."""
    window = BreakerWindow(
        starts=tuple(
            BreakerStart(at=decisions.wall_time(clock, at), node_id=node_id)
            for at, node_id in starts
        )
    )
    return decisions.state(BREAKER, pool, window if starts else None, clock.now())


def breaker_starts(clock: Clock, window: BreakerWindow) -> list[tuple[float, str]]:
    return [(decisions.trio_time(clock, s.at), s.node_id) for s in window.starts]
