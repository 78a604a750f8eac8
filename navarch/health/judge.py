"""Judging a node's health: each event against the policy's rules, the node over a window.

Per event, the rules run in file order and the first whose condition is true gives the event its
result and action; an event no rule matches is healthy. A rule whose condition fails at run time
(a missing map key, a type mismatch) or gives something other than true or false is skipped for
that event, and the failure is returned and counted, never raised.

Per node, the verdict is the worst (result, then action) of the matches within the window, so one
healthy report does not erase an XID 79: the node stays unhealthy until the window has passed
since the last bad event. The judge keeps, per node, the history the rules can count over
(bounded by the policy's history window and `HISTORY_LIMIT`) and the latest match for each
(result, action) pair of each GPU, which is all the window needs. A GPU reset or a reboot clears
a fault, so the judge forgets what it held of the GPU or the node (`forget`). What it holds of a
node outlives a restart through `memory` and `restore` (`navarch.health.memory`).

Time is the caller's: `now` is `trio.current_time()` in the control plane, virtual time in the
simulator, and the events' own timestamps in `navarch policy test`.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import cel
from attrs import frozen

from navarch.health.memory import JudgeMemory, KeptMatch, SeenEvent
from navarch.health.policy import Action, Policy, Result, Rule
from navarch.health.variables import Seen, event_map, helper_functions, seen
from navarch.model import HealthEvent, HealthStatus

# The most events of one node that `history` holds; older ones are dropped first.
HISTORY_LIMIT = 256


@frozen
class RuleError:
    """A rule skipped for one event because its condition failed at run time."""

    rule: str
    message: str


@frozen
class Match:
    """How the policy judged one event."""

    event: HealthEvent
    at: float  # the caller's clock when the event was judged
    result: Result
    action: Action
    rule: str = ""  # the matching rule; empty when no rule matched
    errors: tuple[RuleError, ...] = ()


@frozen
class Verdict:
    """A node's health at one moment, with the matches of the events just judged."""

    node_id: str
    health: Result
    action: Action
    # The match that decides `health` and `action`: the worst within the window, the latest
    # of equals. None when nothing within the window asked for more than healthy and no action.
    cause: Match | None
    matches: tuple[Match, ...] = ()

    @property
    def rule(self) -> str:
        return self.cause.rule if self.cause else ""

    @property
    def health_status(self) -> HealthStatus:
        return self.health.health_status

    @property
    def errors(self) -> tuple[RuleError, ...]:
        return tuple(e for m in self.matches for e in m.errors)


class _NodeState:
    __slots__ = ("history", "worst")

    def __init__(self) -> None:
        self.history: collections.deque[Seen] = collections.deque(maxlen=HISTORY_LIMIT)
        # (result, action, GPU index) -> the latest match; per GPU, so that forgetting one GPU
        # keeps what the others did.
        self.worst: dict[tuple[Result, Action, int], Match] = {}


class HealthJudge:
    """Applies one policy to the events of many nodes and keeps what the window needs.

    The control plane calls `evaluate(node_id, request.events, trio.current_time())` for each
    ReportHealth, `verdict(node_id, now)` to see a node's health without new events (a bad
    event ages out of the window), and `forget(node_id)` when a node is gone or rebooted
    (`forget(node_id, gpu)` when one GPU was reset).
    """

    def __init__(self, policy: Policy, window: timedelta | float = timedelta(minutes=10)) -> None:
        self.policy = policy
        self.window = window.total_seconds() if isinstance(window, timedelta) else float(window)
        if self.window <= 0:
            raise ValueError(f"window must be positive, got {self.window}s")
        self._history_window = policy.history_window.total_seconds()
        self._nodes: dict[str, _NodeState] = {}
        # Counters for metrics and logs: events each rule matched, and its run-time failures.
        self.rule_matches: collections.Counter[str] = collections.Counter()
        self.rule_errors: collections.Counter[str] = collections.Counter()

    def evaluate(self, node_id: str, events: Iterable[HealthEvent], now: float) -> Verdict:
        """Judges `events` (in order, each seeing the ones before it in `history`) and returns
        the node's verdict at `now`."""
        state = self._nodes.get(node_id)
        if state is None:
            state = self._nodes[node_id] = _NodeState()
        matches = []
        for event in events:
            item = seen(event, now)
            history = state.history
            while history and now - history[0].at > self._history_window:
                history.popleft()
            history.append(item)
            match = self._judge(item, history, now)
            matches.append(match)
            if match.result is not Result.HEALTHY or match.action is not Action.NONE:
                state.worst[(match.result, match.action, event.gpu_index)] = match
        return self._verdict(node_id, state, now, tuple(matches))

    def verdict(self, node_id: str, now: float) -> Verdict:
        state = self._nodes.get(node_id)
        if state is None:
            return Verdict(node_id=node_id, health=Result.HEALTHY, action=Action.NONE, cause=None)
        return self._verdict(node_id, state, now, ())

    def forget(self, node_id: str, gpu_index: int = -1) -> None:
        """Forgets the node's events, or only those of one GPU (a reset cleared its fault)."""
        if gpu_index < 0:
            self._nodes.pop(node_id, None)
            return
        state = self._nodes.get(node_id)
        if state is None:
            return
        kept = [s for s in state.history if s.event.gpu_index != gpu_index]
        state.history.clear()
        state.history.extend(kept)
        for key in [k for k in state.worst if k[2] == gpu_index]:
            del state.worst[key]

    def memory(self, node_id: str, wall: Callable[[float], datetime]) -> JudgeMemory | None:
        """What the judge holds of the node, with `wall` turning its times into wall-clock ones;
        None when it holds nothing."""
        state = self._nodes.get(node_id)
        if state is None:
            return None
        return JudgeMemory(
            history=tuple(SeenEvent(at=wall(s.at), event=s.event) for s in state.history),
            worst=tuple(
                KeptMatch(
                    at=wall(m.at), event=m.event, result=m.result, action=m.action, rule=m.rule
                )
                for m in state.worst.values()
            ),
        )

    def restore(
        self, node_id: str, memory: JudgeMemory, trio_time: Callable[[datetime], float]
    ) -> None:
        """Takes back what `memory` gave out; `trio_time` turns its times into the judge's."""
        state = self._nodes[node_id] = _NodeState()
        state.history.extend(seen(s.event, trio_time(s.at)) for s in memory.history)
        for kept in memory.worst:
            match = Match(
                event=kept.event,
                at=trio_time(kept.at),
                result=kept.result,
                action=kept.action,
                rule=kept.rule,
            )
            state.worst[(match.result, match.action, match.event.gpu_index)] = match

    def _verdict(
        self, node_id: str, state: _NodeState, now: float, matches: tuple[Match, ...]
    ) -> Verdict:
        for key in [k for k, m in state.worst.items() if now - m.at >= self.window]:
            del state.worst[key]
        cause = max(
            state.worst.values(),
            key=lambda m: (m.result.rank, m.action.rank, m.at),
            default=None,
        )
        if cause is None and not any(now - s.at <= self._history_window for s in state.history):
            del self._nodes[node_id]  # nothing left to remember; keeps memory bounded by activity
        return Verdict(
            node_id=node_id,
            health=cause.result if cause else Result.HEALTHY,
            action=cause.action if cause else Action.NONE,
            cause=cause,
            matches=matches,
        )

    def _judge(self, item: Seen, history: collections.deque[Seen], now: float) -> Match:
        errors: list[RuleError] = []
        try:
            context = cel.Context(
                {"event": event_map(item, now)}, helper_functions(history, item, now)
            )
        except BaseException as exc:
            if not _is_evaluation_error(exc):
                raise
            # An event CEL cannot represent is judged by no rule; the error says why.
            errors.append(RuleError("", f"the event cannot be given to the rules: {exc}"))
            self.rule_errors[""] += 1
            return _no_match(item, now, errors)
        history_given = False
        for rule in self.policy.rules:
            try:
                if rule.uses_history and not history_given:
                    context.add_variable("history", [event_map(s, now) for s in history])
                    history_given = True
                if rule.program is None:
                    raise ValueError("the rule's condition was not compiled")
                value = rule.program.execute(context)
            except BaseException as exc:
                if not _is_evaluation_error(exc):
                    raise
                errors.append(RuleError(rule.name, _describe(exc)))
                self.rule_errors[rule.name] += 1
                continue
            if value is True:
                self.rule_matches[rule.name] += 1
                return _match(item, now, rule, errors)
            if value is not False:
                errors.append(
                    RuleError(rule.name, f"condition gave {_show(value)}, not true or false")
                )
                self.rule_errors[rule.name] += 1
        return _no_match(item, now, errors)


def _match(item: Seen, now: float, rule: Rule, errors: list[RuleError]) -> Match:
    return Match(
        event=item.event,
        at=now,
        result=rule.result,
        action=rule.action,
        rule=rule.name,
        errors=tuple(errors),
    )


def _no_match(item: Seen, now: float, errors: list[RuleError]) -> Match:
    return Match(
        event=item.event, at=now, result=Result.HEALTHY, action=Action.NONE, errors=tuple(errors)
    )


def _is_evaluation_error(exc: BaseException) -> bool:
    # A panic inside the Rust CEL library arrives as pyo3's PanicException, a BaseException.
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, KeyError):
        return f"no key {text} in the map"
    return text.splitlines()[0]


def _show(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
