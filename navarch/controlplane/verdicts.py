"""Health reports and what they decide: the node's health, its status, and the action taken.

Each ReportHealth is judged by the health policy (`navarch.health`); the node's health is the
verdict's. An unhealthy verdict takes an active or cordoned node out of service (status UNHEALTHY,
the rule as the reason), and the verdict's action is taken once per verdict: a repeated report of
the same fault does not act again. A node's health recovers once its bad events leave the policy's
window; its status does not, since a node that went bad returns to service only by an operator's
word, or by a remediation episode whose GPU reset or reboot cleared the fault (`cleared`).

`replace` opens a remediation episode in a pool with `auto_replace`, and `reset_gpu` and `reboot`
open one in a pool with `auto_recover` (the defaults). Otherwise the node is cordoned and drained
and `health.action_required` says that it waits for an operator.

What the judge holds of a node and the action taken for its verdict are stored with the report
that changed them (`navarch.controlplane.memory`), and so is the episode a verdict asks for, before
it is opened: a restarted control plane judges and acts as the old one would have.
"""

from __future__ import annotations

import logging

import attrs
import trio

from navarch.controlplane import lifecycle
from navarch.controlplane.book import NodeBook
from navarch.controlplane.commands import Commands
from navarch.controlplane.memory import HEALTH, HealthMemory
from navarch.controlplane.remediation import Remediator
from navarch.errors import DomainError
from navarch.health import Action, HealthJudge, Result, Verdict
from navarch.model import (
    Event,
    HealthEvent,
    HealthEventType,
    HealthStatus,
    Node,
    NodeStatus,
    RemediationAction,
)
from navarch.store import Change, DecisionState, HealthReport, StoredState, decisions

log = logging.getLogger("navarch.controlplane")

_BAD_HEALTH = (HealthStatus.DEGRADED, HealthStatus.UNHEALTHY)
_NEEDS = {
    Action.RESET_GPU: "a GPU reset (auto_recover is off for its pool)",
    Action.REBOOT: "a reboot (auto_recover is off for its pool)",
    Action.REPLACE: "replacement (auto_replace is off for its pool)",
}
_RECOVERY = {Action.RESET_GPU: RemediationAction.RESET_GPU, Action.REBOOT: RemediationAction.REBOOT}


def _report(verdict: Verdict) -> dict[str, str]:
    """The details of a `health.reported` event: how many events of which types, the XIDs as
    `gpu:xid` pairs, the rules the events matched, and the rule behind the node's verdict, so the
    dashboard shows each report with the rules that judged it."""
    events = [match.event for match in verdict.matches]
    details = {
        "count": str(len(events)),
        "types": ",".join(sorted({event.type.value for event in events})),
    }
    xids = dict.fromkeys(f"{e.gpu_index}:{e.xid}" for e in events if e.type is HealthEventType.XID)
    rules = dict.fromkeys(match.rule for match in verdict.matches if match.rule)
    if xids:
        details["xids"] = ",".join(xids)
    if rules:
        details["rules"] = ",".join(rules)
    if verdict.rule:
        details["rule"] = verdict.rule
    return details


class Verdicts:
    def __init__(
        self, book: NodeBook, commands: Commands, remediation: Remediator, judge: HealthJudge
    ) -> None:
        self._book = book
        self._commands = commands
        self._remediation = remediation
        self.judge = judge
        # node id -> the most disruptive action taken for its current verdict, so a repeated
        # report does not act again; forgotten when the verdict asks for nothing.
        self._acted: dict[str, Action] = {}
        # Nodes whose latest verdict asks for replacement.
        self._replace: set[str] = set()
        # node id -> (health, trio time): a node stored with bad health and no judge memory (a
        # store written before the memory was kept) keeps its health for one window unless new
        # events judge it worse.
        self._floor: dict[str, tuple[HealthStatus, float]] = {}

    def load(self, state: StoredState) -> None:
        book = self._book
        now = trio.current_time()
        location = book.store.location
        remembered = set()
        for node_id, memory in decisions.decode(state.decisions, HEALTH, HealthMemory, location):
            remembered.add(node_id)
            self.judge.restore(
                node_id, memory.judge, lambda at: decisions.trio_time(book.clock, at)
            )
            verdict = self.judge.verdict(node_id, now)
            if verdict.action is not Action.NONE and memory.acted is not Action.NONE:
                self._acted[node_id] = memory.acted
            if verdict.action is Action.REPLACE:
                self._replace.add(node_id)
        until = now + self.judge.window
        for node in state.nodes:
            if (
                node.health in _BAD_HEALTH
                and node.status is not lifecycle.TERMINATED
                and node.node_id not in remembered
            ):
                self._floor[node.node_id] = (node.health, until)

    def _memory(self, node_id: str) -> DecisionState:
        """The judge's memory of the node and the action taken, to store; deletes it when empty."""
        clock = self._book.clock
        judged = self.judge.memory(node_id, lambda at: decisions.wall_time(clock, at))
        memory = (
            None
            if judged is None
            else HealthMemory(judge=judged, acted=self._acted.get(node_id, Action.NONE))
        )
        return decisions.state(HEALTH, node_id, memory, clock.now())

    def judged_for_replacement(self) -> set[str]:
        """Nodes whose health verdict asks for replacement by remediation."""
        settings = self._remediation.settings
        return {
            node_id
            for node_id in self._replace
            if settings(self._book.require(node_id).pool).auto_replace
        }

    async def report(
        self, node_id: str, events: tuple[HealthEvent, ...], actor: str
    ) -> tuple[NodeStatus, HealthStatus]:
        """Judges a node's health report; returns the node's status and health after it."""
        book = self._book
        node = book.require(node_id)
        if node.status is lifecycle.TERMINATED:
            return node.status, node.health
        verdict = self.judge.evaluate(node_id, events, trio.current_time())
        for error in verdict.errors:
            log.warning("node=%s rule=%r skipped: %s", node_id, error.rule, error.message)
        health = self._judged(node_id, verdict.health_status)
        after = attrs.evolve(node, health=health, last_health_events=events)
        changes = []
        reports: tuple[HealthReport, ...] = ()
        if events:
            reports = (HealthReport(report_id=book.ids.new(), node_id=node_id, events=events),)
            changes.append(book.event("health.reported", node_id, actor, details=_report(verdict)))
        if health is not node.health:
            changes.append(self._health_event(node, health, actor, verdict))
        if verdict.health is Result.UNHEALTHY and node.status in (
            lifecycle.ACTIVE,
            lifecycle.CORDONED,
        ):
            after = attrs.evolve(
                after,
                status=lifecycle.next_status("health_failed", node_id, node.status),
                status_reason=f"health rule {verdict.rule}",
            )
            changes.append(book.status_event(node, after, "health-policy", rule=verdict.rule))
        # Known before the commit yields, so that a pool's round in between already counts the
        # node as leaving and its successor as coming.
        if verdict.action is Action.REPLACE:
            self._replace.add(node_id)
        else:
            self._replace.discard(node_id)
        # The action to take is settled before the commit, and stored with it: the judge's
        # memory, the action taken, and the episode it opens, which a restart opens if this
        # process stops before it does.
        kept: list[DecisionState] = []
        act = self._to_act(node_id, verdict)
        acted = self._acted.get(node_id)
        if act:
            self._acted[node_id] = verdict.action
            intent = self._intent(after, verdict)
            if intent is not None:
                kept.append(intent)
        if events or act:
            kept.append(self._memory(node_id))
        # A report that changes nothing of the node (its usual one) leaves its row alone.
        if after == node:
            after = node
        book.put(after)
        try:
            await book.commit(
                Change(
                    nodes=(after,) if after is not node else (),
                    events=tuple(changes),
                    health_reports=reports,
                    decisions=tuple(kept),
                )
            )
        except BaseException:
            if act:  # not taken: the next report takes it
                self._acted.pop(node_id, None)
                if acted is not None:
                    self._acted[node_id] = acted
            raise
        if act:
            await self._take_action(node_id, verdict)
        current = book.require(node_id)
        return current.status, current.health

    def _judged(self, node_id: str, health: HealthStatus) -> HealthStatus:
        floor = self._floor.get(node_id)
        if floor is None:
            return health
        if trio.current_time() >= floor[1]:
            del self._floor[node_id]
            return health
        return floor[0] if floor[0].rank > health.rank else health

    def _health_event(
        self, node: Node, health: HealthStatus, actor: str, verdict: Verdict
    ) -> Event:
        details = {"from": node.health.value, "to": health.value}
        if verdict.rule:
            details["rule"] = verdict.rule
        return self._book.event("node.health_changed", node.node_id, actor, details=details)

    def _to_act(self, node_id: str, verdict: Verdict) -> bool:
        """Whether the verdict's action is to be taken: none as disruptive was taken for it."""
        action = verdict.action
        if action is Action.NONE:
            self._acted.pop(node_id, None)
            return False
        return action.rank > self._acted.get(node_id, Action.NONE).rank

    def _intent(self, node: Node, verdict: Verdict) -> DecisionState | None:
        """The episode the verdict opens, to store before it is opened; None when it opens none."""
        settings = self._remediation.settings(node.pool)
        action = verdict.action
        if action is Action.REPLACE and settings.auto_replace:
            return self._remediation.intend(node, verdict.rule, RemediationAction.REPLACE)
        if action in _RECOVERY and settings.auto_recover:
            return self._remediation.intend(node, verdict.rule, _RECOVERY[action], _gpu(verdict))
        return None

    async def _take_action(self, node_id: str, verdict: Verdict) -> None:
        """Takes the verdict's action, which `_to_act` allowed."""
        action = verdict.action
        book = self._book
        node = book.require(node_id)
        reason = f"health rule {verdict.rule}"
        details = {"rule": verdict.rule, "action": action.value}
        try:
            if action is Action.ALERT:
                event = book.event(
                    "health.alert", node_id, "health-policy", reason, details=details
                )
                await book.commit(Change(events=(event,)))
                return
            remediation = self._remediation
            settings = remediation.settings(node.pool)
            if action is Action.REPLACE and settings.auto_replace:
                await remediation.open_intended(node, verdict.rule, RemediationAction.REPLACE)
                return
            if action in _RECOVERY and settings.auto_recover:
                await remediation.open_intended(
                    node, verdict.rule, _RECOVERY[action], _gpu(verdict)
                )
                return
            await self._commands.cordon(node_id, reason)
            if action is Action.CORDON:
                return
            await self._commands.drain(node_id, reason)
            if action in _NEEDS:
                # This pool neither recovers nor replaces the node on its own: it waits, drained,
                # for an operator to act and uncordon it.
                event = book.event(
                    "health.action_required",
                    node_id,
                    "health-policy",
                    f"the node needs {_NEEDS[action]} ({reason}); it is drained and held for an "
                    "operator",
                    details=details,
                )
                await book.commit(Change(events=(event,)))
        except DomainError as exc:
            # The node changed under the action (an operator terminated it): nothing to do.
            log.info("node=%s action=%s not taken: %s", node_id, action.value, exc)

    async def cleared(self, node_id: str, gpu_index: int) -> bool:
        """A GPU reset (`gpu_index`) or a reboot (-1) clears the node's fault: forgets what the
        judge held of the GPU or the node and the action taken for it. After a reset the node's
        health is judged afresh. Returns whether nothing the judge still holds keeps the node out
        of service."""
        self.judge.forget(node_id, gpu_index)
        self._floor.pop(node_id, None)
        self._acted.pop(node_id, None)
        verdict = self.judge.verdict(node_id, trio.current_time())
        if verdict.action is not Action.REPLACE:
            self._replace.discard(node_id)
        memory = self._memory(node_id)
        if gpu_index >= 0:
            await self._set_health(node_id, verdict.health_status, verdict, memory)
        else:
            await self._book.commit(Change(decisions=(memory,)))
        return verdict.health is not Result.UNHEALTHY and verdict.action.rank < Action.CORDON.rank

    async def unknown_until_reported(self, node_id: str) -> None:
        """The node registered again after a reboot: its health is unknown until it reports."""
        self._floor.pop(node_id, None)
        verdict = self.judge.verdict(node_id, trio.current_time())
        await self._set_health(node_id, HealthStatus.UNKNOWN, verdict)

    async def _set_health(
        self,
        node_id: str,
        health: HealthStatus,
        verdict: Verdict,
        memory: DecisionState | None = None,
    ) -> None:
        book = self._book
        node = book.require(node_id)
        kept = () if memory is None else (memory,)
        if health is not node.health:
            after = attrs.evolve(node, health=health)
            book.put(after)
            event = self._health_event(node, health, "remediation", verdict)
            await book.commit(Change(nodes=(after,), events=(event,), decisions=kept))
        elif kept:
            await book.commit(Change(decisions=kept))

    async def recheck_forever(self) -> None:
        interval = min(60.0, max(1.0, self.judge.window / 10))
        while True:
            await trio.sleep(interval)
            await self.recheck()

    async def recheck(self) -> None:
        """Lets a node's health recover once its bad events leave the window; the status stays."""
        book = self._book
        now = trio.current_time()
        nodes, events = [], []
        kept: list[DecisionState] = []
        for node in list(book.nodes()):
            if node.status is lifecycle.TERMINATED or node.health not in _BAD_HEALTH:
                continue
            verdict = self.judge.verdict(node.node_id, now)
            if verdict.action is Action.NONE:
                self._acted.pop(node.node_id, None)
            health = self._judged(node.node_id, verdict.health_status)
            if health is node.health:
                continue
            after = attrs.evolve(node, health=health)
            book.put(after)
            nodes.append(after)
            events.append(self._health_event(node, health, "health-policy", verdict))
            kept.append(self._memory(node.node_id))
        if nodes:
            await book.commit(
                Change(nodes=tuple(nodes), events=tuple(events), decisions=tuple(kept))
            )


def _gpu(verdict: Verdict) -> int:
    return verdict.cause.event.gpu_index if verdict.cause is not None else -1
