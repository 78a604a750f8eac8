"""Remediation: a node the health policy judges for replacement is taken out and replaced, and
one whose GPU needs a reset, or that needs a reboot, is recovered or else replaced.

Each judgment opens one episode, keyed by its own id, that moves through fixed steps. What the
episode sets out to do is its action: `replace`, `reset_gpu` or `reboot`.

```
                                 replace
PENDING ──▶ CORDON ──▶ DRAIN ───────────────────────────────▶ TERMINATE ──▶ DONE
 (paused)                │ │ reset_gpu                          ▲   │ no replacer, or it
                         │ ├────────▶ RESET_GPU ── passed ──▶ DONE  │   │ keeps failing
                         │ │ reboot       │ failed, timed out       │   ▼
                         │ └────────▶ REBOOT ──▶ RECOVER ── healthy ──▶ DONE
                         │ drain timeout  │          │ unhealthy, timed out
                         ▼ with "hold"    ▼          ▼
                        HELD ◀────── (the pool does not replace nodes)
                                                          any open step ──▶ CANCELLED
```

TERMINATE hands the node to the `Replacer` (the pool manager), which terminates the node's
instance through its provider and asks the node's pool for a successor. RESET_GPU, REBOOT and
RECOVER are `navarch.controlplane.recovery`'s: a reset or reboot that fails, or does not finish in
time, escalates to TERMINATE, or to HELD where the node's pool does not replace nodes. A GPU that
needs its `reset_limit`-th reset within `reset_window` (counted from the stored episodes, so a
restart forgets none) gets a `replace` episode instead.

A machine the cloud takes back (spot, preemptible) gets an episode too. One whose daemon heard the
cloud's notice (rule `preemption-notice`) asks its pool for a successor at once, then cordons and
drains while the machine still runs; one the provider already lists as preempted (rule
`preempted`) skips the drain, as does a noticed one whose machine goes before its drain ends.
Preemptions neither count toward nor wait for the circuit breaker: a spot market taking back a
zone's machines is the market, not a fault to investigate, and the machines go either way.

A node of a pool with `auto_replace` that loses its heartbeat gets an episode with the rule
`heartbeat-lost`. It skips the drain (a silent node cannot run one; the move from CORDON to
TERMINATE records why) and its TERMINATE only terminates the instance (`Replacer.terminate`): the
pool already provisions past an unhealthy node to hold `min_nodes`, so asking for a successor too
would leave the pool one node over. A node whose heartbeats resume stays unhealthy and its
episode goes on: a node that went silent once is not trusted with work again on its own.

An episode records a step before it carries the step out, and every record is committed with its
event; a control plane that restarts loads the open episodes and carries each out again from the
step it recorded, so every step must be safe to repeat (cordon and drain are; the `Replacer` must
treat a repeated request for a node as one). Steps only move forward: a
late or repeated message (a duplicate health report, a daemon's acknowledgement after the node is
gone) finds the episode ended and changes nothing. A held episode waits for an operator, who
cancels it after acting by hand.

An operator's pause stops episodes at their next step, and each pool's circuit breaker holds the
episode that would take too much of the pool into remediation at once
(`navarch.controlplane.switches`).

An episode that a verdict or a lost heartbeat asks for is stored as an intent in the commit that
makes the node unhealthy (`intend`), and the episode's own commit deletes it; a control plane that
stopped in between opens the episode at start (`navarch.controlplane.memory`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

import attrs
import trio

from navarch.config import PoolHealthConfig
from navarch.controlplane import memory
from navarch.controlplane.book import NodeBook
from navarch.controlplane.commands import Commands
from navarch.controlplane.memory import EPISODE_INTENT, EpisodeIntent
from navarch.controlplane.recovery import Recovery
from navarch.controlplane.remediation_counts import RemediationCounts
from navarch.controlplane.switches import Switches
from navarch.durations import format_duration
from navarch.errors import Conflict, NotFound
from navarch.model import (
    HEARTBEAT_LOST_RULE,
    PREEMPTED_RULE,
    PREEMPTION_NOTICE_RULE,
    PREEMPTION_RULES,
    Event,
    Node,
    NodeStatus,
    Remediation,
    RemediationAction,
    RemediationStep,
)
from navarch.store import Change, DecisionState, StoredState, decisions

log = logging.getLogger("navarch.remediation")

Step = RemediationStep
PENDING = Step.PENDING
CORDON = Step.CORDON
DRAIN = Step.DRAIN
RESET_GPU = Step.RESET_GPU
REBOOT = Step.REBOOT
RECOVER = Step.RECOVER
TERMINATE = Step.TERMINATE
DONE = Step.DONE
HELD = Step.HELD
CANCELLED = Step.CANCELLED

_RANK = {
    PENDING: 0,
    CORDON: 1,
    DRAIN: 2,
    RESET_GPU: 3,
    REBOOT: 3,
    RECOVER: 4,
    TERMINATE: 5,
    HELD: 6,
    DONE: 7,
    CANCELLED: 7,
}
# The step after the drain, by the episode's action.
_AFTER_DRAIN = {
    RemediationAction.REPLACE: (TERMINATE, "drained; terminating the node"),
    RemediationAction.RESET_GPU: (RESET_GPU, "drained; resetting GPU {gpu}"),
    RemediationAction.REBOOT: (REBOOT, "drained; rebooting the node"),
}
ENDED = (DONE, CANCELLED)
ACTOR = "remediation"
# How often a draining node is looked at, and how a failing replacer is retried.
DRAIN_POLL = 1.0
RETRY_DELAYS = (30.0, 60.0, 120.0)


class Replacer(Protocol):
    """What remediation needs from the pool manager (`navarch.pools.manager.PoolManager`)."""

    async def replace(self, node_id: str, reason: str) -> None:
        """Terminates the node's instance through its provider and asks the node's pool for a
        successor, from the provider the pool's `replacement` setting says.

        A control-plane restart may repeat the call for the same node; the pool manager acts
        once. An exception counts as a failed attempt; `NotFound` says that the node belongs to
        no configured pool, which no retry changes.
        """

    async def terminate(self, node_id: str, reason: str) -> None:
        """Terminates the node's instance through its provider and asks for no successor (the
        pool's own rounds replace a node that went silent). Repeating it for the same node
        changes nothing; errors count as in `replace`."""

    async def provision_successor(self, node_id: str, reason: str) -> None:
        """Asks the node's pool for its successor now, before the node leaves (a preemption
        notice); the later `replace` asks for no second one."""

    async def reboot(self, node_id: str, reason: str) -> bool:
        """Asks the provider of the node's instance to reboot the machine; True once it accepted,
        False when it cannot (it implements no `RebootingProvider`, or navarch did not make the
        instance). Errors count as in `replace`."""
        ...


def may_move(current: RemediationStep, to: RemediationStep) -> bool:
    """Whether an episode at `current` may move to `to`: only forward, and a held one only to
    cancelled."""
    if current is HELD:
        return to is CANCELLED
    return _RANK[to] > _RANK[current]


class Remediator:
    """Owns the episodes; runs each open episode as a task."""

    def __init__(
        self,
        book: NodeBook,
        commands: Commands,
        mark_terminated: Callable[[str, str, str], Awaitable[None]],
        pools: Mapping[str, PoolHealthConfig],
        replacer: Replacer | None,
    ) -> None:
        self._book = book
        self._commands = commands
        self._mark_terminated = mark_terminated
        self._pools = pools
        self.replacer = replacer
        self._now = book.clock.now
        # Open episodes (held ones included) by episode id.
        self._episodes: dict[str, Remediation] = {}
        self._scopes: dict[str, trio.CancelScope] = {}
        self.switches = Switches(book, self.settings)
        # Nodes in an episode whose machine the cloud has taken back: no drain can finish.
        self._gone: set[str] = set()
        # node id -> the episode stored as intended for it and not yet opened.
        self._intents: dict[str, EpisodeIntent] = {}
        self._nursery: trio.Nursery | None = None
        self.recovery = Recovery(book, commands, self)
        # What `/metrics` shows of the episodes.
        self.counts = RemediationCounts()

    def load(self, state: StoredState) -> None:
        for episode in state.open_remediations:
            self._episodes[episode.episode_id] = episode
        self.switches.load(state)
        self._intents.update(
            decisions.decode(
                state.decisions, EPISODE_INTENT, EpisodeIntent, self._book.store.location
            )
        )

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Carries out the open episodes, and the ones opened later, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for episode in self._episodes.values():
                if episode.step is not HELD:
                    nursery.start_soon(self._drive, episode.episode_id)
            for node_id, intent in list(self._intents.items()):
                node = self._book.get(node_id)
                if node is None or node.status is NodeStatus.TERMINATED:
                    await self._drop_intent(node_id)
                else:
                    await self.open_intended(node, intent.rule, intent.action, intent.gpu_index)
            task_status.started()
            await trio.sleep_forever()

    def open_episodes(self) -> list[Remediation]:
        return list(self._episodes.values())

    def pool_names(self) -> list[str]:
        return list(self._pools)

    def settings(self, pool: str) -> PoolHealthConfig:
        return self._pools.get(pool) or PoolHealthConfig()

    def check_pool(self, pool: str) -> None:
        """Raises NotFound for a pool that is neither configured nor has nodes."""
        if pool in self._pools or any(n.pool == pool for n in self._book.nodes()):
            return
        raise NotFound(f"pool {pool!r} is not configured and has no nodes")

    async def silent(self, nodes: Sequence[Node]) -> None:
        """Opens an episode for each node that went silent in a pool that replaces nodes; the
        episode skips the drain and asks for no successor (see the module's docstring)."""
        for node in nodes:
            if self.replaceable(node):
                await self.start(node, HEARTBEAT_LOST_RULE)

    def silent_intents(self, nodes: Sequence[Node]) -> tuple[DecisionState, ...]:
        """The episodes `silent` will open, to store with the nodes' UNHEALTHY commit."""
        intended = (
            self.intend(node, HEARTBEAT_LOST_RULE) for node in nodes if self.replaceable(node)
        )
        return tuple(intent for intent in intended if intent is not None)

    def intend(
        self,
        node: Node,
        rule: str,
        action: RemediationAction = RemediationAction.REPLACE,
        gpu_index: int = -1,
    ) -> DecisionState | None:
        """Records that an episode is to open for `node`, for the caller to store with the change
        that decides it; None when the node has an open episode already."""
        if self.open_episode(node.node_id) is not None:
            return None
        intent = EpisodeIntent(rule=rule, action=action, gpu_index=gpu_index)
        self._intents[node.node_id] = intent
        return memory.intent_state(self._book.clock, node.node_id, intent)

    async def open_intended(
        self,
        node: Node,
        rule: str,
        action: RemediationAction = RemediationAction.REPLACE,
        gpu_index: int = -1,
    ) -> Remediation:
        """Opens the episode `intend` recorded (or returns the node's open one)."""
        existing = self.open_episode(node.node_id)
        if existing is not None:
            await self._drop_intent(node.node_id)
            return existing
        if action is RemediationAction.REPLACE:
            return await self.start(node, rule)
        return await self.recovery.open(node, rule, action, gpu_index)

    async def _drop_intent(self, node_id: str) -> None:
        if self._intents.pop(node_id, None) is not None:
            intent = memory.intent_state(self._book.clock, node_id, None)
            await self._book.commit(Change(decisions=(intent,)))

    def open_episode(self, node_id: str) -> Remediation | None:
        return next((e for e in self._episodes.values() if e.node_id == node_id), None)

    async def start(
        self,
        node: Node,
        rule: str,
        detail: str = "",
        *,
        action: RemediationAction = RemediationAction.REPLACE,
        gpu_index: int = -1,
    ) -> Remediation:
        """Opens an episode for `node` (or returns its open one) and starts carrying it out."""
        existing = self.open_episode(node.node_id)
        if existing is not None:
            await self._drop_intent(node.node_id)
            return existing
        now = self._now()
        episode = Remediation(
            episode_id=self._book.ids.new(),
            node_id=node.node_id,
            pool=node.pool,
            step=PENDING,
            rule=rule,
            action=action,
            gpu_index=gpu_index,
            detail=detail or f"judged for replacement by rule {rule}",
            started_at=now,
            updated_at=now,
        )
        events = [self._event("remediation.started", episode, episode.detail)]
        kept: list[DecisionState] = []
        if self._intents.pop(node.node_id, None) is not None:
            kept.append(memory.intent_state(self._book.clock, node.node_id, None))
        # A preempted machine goes whatever the breaker says (see the module's docstring).
        held, breaker = (
            ("", Change()) if rule in PREEMPTION_RULES else self.switches.admit(node, now)
        )
        events.extend(breaker.events)
        if held:
            episode = attrs.evolve(episode, step=HELD, detail=held)
            events.append(self._event("remediation.held", episode, held))
        self._episodes[episode.episode_id] = episode
        await self._book.commit(
            Change(
                remediations=(episode,),
                events=tuple(events),
                remediation_switches=breaker.remediation_switches,
                decisions=(*kept, *breaker.decisions),
            )
        )
        self.counts.opened(episode)
        if episode.step is not HELD and self._nursery is not None:
            self._nursery.start_soon(self._drive, episode.episode_id)
        return episode

    def replaceable(self, node: Node) -> bool:
        """Whether remediation can replace the node: it is in a pool that replaces nodes."""
        return (
            self.replacer is not None
            and node.pool in self._pools
            and self.settings(node.pool).auto_replace
        )

    def cannot_replace(self, episode: Remediation) -> str:
        """Why navarch cannot replace the episode's node; "" when it can try."""
        if self.replacer is None:
            return "no pools are configured"
        if not episode.pool:
            return "it has no pool"
        if episode.rule not in PREEMPTION_RULES and not self.settings(episode.pool).auto_replace:
            return f"pool {episode.pool} does not replace nodes (auto_replace is off)"
        return ""

    def gone(self, node_id: str) -> bool:
        return node_id in self._gone

    def machine_gone(self, node_id: str) -> bool:
        """Records that the cloud took the node's machine back while its episode is open, so a
        drain stops waiting; False when the node has no open episode or was already known."""
        if self.open_episode(node_id) is None or node_id in self._gone:
            return False
        self._gone.add(node_id)
        return True

    async def cancel(self, episode_id: str, reason: str, actor: str) -> Remediation:
        episode = self._episodes.get(episode_id)
        if episode is None:
            ended = [
                e
                for e in await self._book.store.list_remediations(
                    pool="", node_id="", limit=1_000_000
                )
                if e.episode_id == episode_id
            ]
            if not ended:
                raise NotFound(f"remediation episode {episode_id} not found")
            raise Conflict(f"remediation episode {episode_id} has ended ({ended[0].step.value})")
        scope = self._scopes.pop(episode_id, None)
        if scope is not None:
            scope.cancel()
        return await self._move(episode, CANCELLED, reason or "cancelled by an operator", actor)

    async def _drive(self, episode_id: str) -> None:
        with trio.CancelScope() as scope:
            self._scopes[episode_id] = scope
            try:
                while True:
                    episode = self._episodes.get(episode_id)
                    if episode is None or episode.step is HELD:
                        return
                    await self.switches.wait_unpaused(episode.pool)
                    episode = self._episodes.get(episode_id)
                    if episode is None:
                        return
                    await self._carry_out(episode)
            finally:
                if self._scopes.get(episode_id) is scope:
                    del self._scopes[episode_id]

    async def _carry_out(self, episode: Remediation) -> None:
        """Carries out the episode's step and records the next one."""
        node_id = episode.node_id
        if episode.step is PENDING:
            await self._move(episode, CORDON, "cordoning the node")
        elif episode.step is CORDON:
            await self._commands.cordon(node_id, self._reason(episode))
            if episode.rule == PREEMPTION_NOTICE_RULE and self.replacer is not None:
                try:
                    await self.replacer.provision_successor(node_id, self._reason(episode))
                except Exception as exc:  # TERMINATE asks again
                    log.warning("node=%s cannot ask for a successor early: %s", node_id, exc)
            if episode.rule == HEARTBEAT_LOST_RULE:
                await self._move(
                    episode,
                    TERMINATE,
                    "cordoned; drain skipped: the node lost its heartbeat and cannot run a drain; "
                    "terminating the node",
                )
            elif episode.rule == PREEMPTED_RULE or node_id in self._gone:
                await self._move(
                    episode,
                    TERMINATE,
                    "cordoned; drain skipped: the cloud took the machine back; terminating the "
                    "node",
                )
            else:
                await self._move(episode, DRAIN, "cordoned; draining the node")
        elif episode.step is DRAIN:
            await self._drain(episode)
        elif episode.step is RESET_GPU:
            await self.recovery.reset_gpu(episode)
        elif episode.step is REBOOT:
            await self.recovery.reboot(episode)
        elif episode.step is RECOVER:
            await self.recovery.recover(episode)
        elif episode.step is TERMINATE:
            why = self.cannot_replace(episode)
            if why or self.replacer is None:
                await self._move(
                    episode,
                    HELD,
                    f"navarch cannot replace the node: {why}; terminate its machine by hand, then "
                    "cancel this episode",
                )
                return
            silent = episode.rule == HEARTBEAT_LOST_RULE
            # The pool provisions past a silent node on its own; a second successor is one too
            # many.
            act = self.replacer.terminate if silent else self.replacer.replace
            if await self._attempt(episode, act, node_id, self._reason(episode)):
                # The pool manager marks the node terminated; this covers a replacer that does not.
                await self._mark_terminated(node_id, self._reason(episode), ACTOR)
                done = (
                    f"terminated; pool {episode.pool} provisions past the lost node on its own"
                    if silent
                    else f"terminated; a replacement is requested from pool {episode.pool}"
                )
                await self._move(episode, DONE, done)

    async def _drain(self, episode: Remediation) -> None:
        settings = self.settings(episode.pool)
        await self._commands.drain(episode.node_id, self._reason(episode))
        with trio.move_on_after(settings.drain_timeout.total_seconds()):
            while self._book.status(episode.node_id) not in (
                NodeStatus.DRAINED,
                NodeStatus.TERMINATED,
            ):
                if episode.node_id in self._gone:
                    gone = "the cloud took the machine back during the drain"
                    if episode.action is RemediationAction.REPLACE:
                        await self._move(episode, TERMINATE, f"{gone}; terminating the node")
                    else:
                        await self.recovery.escalate(episode, gone)
                    return
                await trio.sleep(DRAIN_POLL)
            step, detail = _AFTER_DRAIN[episode.action]
            await self._move(episode, step, detail.format(gpu=episode.gpu_index))
            return
        timeout = format_duration(settings.drain_timeout)
        if settings.on_drain_timeout == "hold":
            await self._move(
                episode,
                HELD,
                f"the drain did not finish within {timeout}; the node stays cordoned for an "
                "operator",
            )
        elif episode.action is RemediationAction.REPLACE:
            await self._move(
                episode, TERMINATE, f"the drain did not finish within {timeout}; terminating anyway"
            )
        else:
            await self.recovery.escalate(episode, f"the drain did not finish within {timeout}")

    async def reboot_by_provider(self, episode: Remediation) -> bool:
        if self.replacer is None:
            return False
        try:
            return await self.replacer.reboot(episode.node_id, self._reason(episode))
        except Exception as exc:  # the daemon's reboot command is tried instead
            message = f"the provider could not reboot the machine: {exc}; asking the daemon"
            log.warning("episode=%s node=%s %s", episode.episode_id, episode.node_id, message)
            await self._book.commit(
                Change(events=(self._event("remediation.step_failed", episode, message),))
            )
            return False

    async def _attempt(
        self, episode: Remediation, fn: Callable[..., Awaitable[None]], *args: str
    ) -> bool:
        """Calls the replacer, retrying with growing delays; holds the episode when it gives up."""
        for attempt, delay in enumerate((*RETRY_DELAYS, None), start=1):
            try:
                await fn(*args)
                return True
            except Exception as exc:  # a failing provider must not end the control plane
                if isinstance(exc, NotFound):
                    await self._move(episode, HELD, f"navarch cannot replace the node: {exc}")
                    return False
                message = f"terminating and replacing failed (attempt {attempt}): {exc}"
                log.warning("episode=%s node=%s %s", episode.episode_id, episode.node_id, message)
                await self._book.commit(
                    Change(events=(self._event("remediation.step_failed", episode, message),))
                )
                if delay is None:
                    await self._move(episode, HELD, f"gave up: {message}")
                    return False
                await trio.sleep(delay)
        return False

    def _reason(self, episode: Remediation) -> str:
        return f"remediation {episode.episode_id}: {episode.rule}"

    async def move(
        self, episode: Remediation, to: RemediationStep, detail: str, *, at: datetime | None = None
    ) -> Remediation:
        return await self._move(episode, to, detail, at=at)

    async def _move(
        self,
        episode: Remediation,
        to: RemediationStep,
        detail: str,
        actor: str = ACTOR,
        *,
        at: datetime | None = None,
    ) -> Remediation:
        current = self._episodes.get(episode.episode_id, episode)
        if not may_move(current.step, to):
            return current
        moved = attrs.evolve(current, step=to, detail=detail, updated_at=at or self._now())
        if to in ENDED:
            self._episodes.pop(moved.episode_id, None)
            self._gone.discard(moved.node_id)
        else:
            self._episodes[moved.episode_id] = moved
        kind = {
            DONE: "remediation.completed",
            HELD: "remediation.held",
            CANCELLED: "remediation.cancelled",
        }.get(to, "remediation.step")
        event = self._event(kind, moved, detail, actor)
        await self._book.commit(Change(remediations=(moved,), events=(event,)))
        self.counts.reached(moved, moved.updated_at)
        return moved

    def _event(self, kind: str, episode: Remediation, reason: str, actor: str = ACTOR) -> Event:
        return self._book.event(
            kind,
            episode.node_id,
            actor,
            reason,
            details={
                "episode": episode.episode_id,
                "step": episode.step.value,
                "pool": episode.pool,
                "rule": episode.rule,
            },
        )
