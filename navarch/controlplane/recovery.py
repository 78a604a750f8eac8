"""Recovery: the steps of remediation episodes that reset a GPU or reboot a node.

The health policy's `reset_gpu` and `reboot` actions open episodes (`Remediator.recover`) in pools
with `auto_recover`. They cordon and drain the node as a replacement does, then:

- RESET_GPU issues the daemon's `reset_gpu` command for the verdict's GPU and waits up to the
  pool's `reset_timeout` for its acknowledgement. The daemon acknowledges success only once the GPU
  is back and the node's checks pass; the judge then forgets the GPU's events, the node returns to
  service (a forced uncordon) and the episode is done.
- REBOOT asks the node's provider to reboot the machine (`Replacer.reboot`) or, where it cannot,
  issues the daemon's `reboot` command. RECOVER then waits up to `reboot_timeout` for the node to
  register again and report a health verdict: one that is not unhealthy returns the node to
  service, an unhealthy one (a GPU that stays lost) escalates.

A reset or reboot that fails or runs out of time escalates (`escalate`): the node is
replaced, or the episode is held where the node's pool does not replace nodes. A restarted control
plane resumes each step: it finds the command the step issued in the event log and waits for it
again rather than issuing a second one, and RECOVER looks for a registration since the reboot was
asked for. Only a provider's reboot is asked for again, when the control plane stopped between
asking and recording RECOVER.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

import trio

from navarch.config import PoolHealthConfig
from navarch.controlplane.book import NodeBook
from navarch.controlplane.commands import Commands
from navarch.durations import format_duration
from navarch.errors import DomainError
from navarch.model import (
    Command,
    CommandStatus,
    CommandType,
    HealthStatus,
    Node,
    NodeStatus,
    Remediation,
    RemediationAction,
    RemediationStep,
)
from navarch.store import Change

log = logging.getLogger("navarch.remediation")

ACTOR = "remediation"
# How often a step that waits looks at the node and the event log, in seconds.
POLL = 1.0
# A registration since the reboot was asked for says that the rebooted machine is back.
_REGISTERED = ("node.registered", "node.reregistered", "node.taken_over")
# The most stored episodes of one node looked at to count its GPU's resets.
MAX_EPISODES = 1000


class Episodes(Protocol):
    """What the recovery steps need of the remediator that owns the episodes."""

    def settings(self, pool: str) -> PoolHealthConfig: ...

    def gone(self, node_id: str) -> bool:
        """Whether the cloud took the node's machine back while its episode is open."""
        ...

    async def move(
        self, episode: Remediation, to: RemediationStep, detail: str, *, at: datetime | None = None
    ) -> Remediation:
        """Records the episode's next step; `at` stands for now as its time."""
        ...

    def cannot_replace(self, episode: Remediation) -> str:
        """Why navarch cannot replace the episode's node; "" when it can try."""
        ...

    async def reboot_by_provider(self, episode: Remediation) -> bool:
        """Asks the node's provider to reboot its machine; False when it cannot."""
        ...

    def open_episode(self, node_id: str) -> Remediation | None: ...

    async def start(
        self,
        node: Node,
        rule: str,
        detail: str = "",
        *,
        action: RemediationAction = RemediationAction.REPLACE,
        gpu_index: int = -1,
    ) -> Remediation:
        """Opens an episode for the node (or returns its open one)."""
        ...


class Judgments(Protocol):
    """What the recovery steps tell the health verdicts (`Verdicts`)."""

    async def cleared(self, node_id: str, gpu_index: int) -> bool:
        """A reset of the GPU, or a reboot (-1), clears the node's fault; returns whether
        nothing else keeps the node out of service."""
        ...

    async def unknown_until_reported(self, node_id: str) -> None:
        """The node is back from a reboot; its health is unknown until it reports."""


class _NoJudgments:
    async def cleared(self, node_id: str, gpu_index: int) -> bool:
        await trio.lowlevel.checkpoint()
        return True

    async def unknown_until_reported(self, node_id: str) -> None:
        await trio.lowlevel.checkpoint()


class Recovery:
    def __init__(self, book: NodeBook, commands: Commands, episodes: Episodes) -> None:
        self._book = book
        self._commands = commands
        self._episodes = episodes
        # The health verdicts, set by the service.
        self.judgments: Judgments = _NoJudgments()

    async def open(
        self, node: Node, rule: str, action: RemediationAction, gpu_index: int
    ) -> Remediation:
        """Opens an episode that resets the GPU `gpu_index` or reboots the node (or returns the
        node's open one). A GPU at its `reset_limit` within `reset_window` is replaced instead,
        and a reset that names no GPU is a reboot."""
        episodes = self._episodes
        existing = episodes.open_episode(node.node_id)
        if existing is not None:
            return existing
        if action is RemediationAction.RESET_GPU and gpu_index < 0:
            detail = f"rule {rule} asks for a GPU reset but names no GPU; rebooting the node"
            return await episodes.start(node, rule, detail, action=RemediationAction.REBOOT)
        if action is RemediationAction.REBOOT:
            detail = f"judged for a reboot by rule {rule}"
            return await episodes.start(node, rule, detail, action=action)
        settings = episodes.settings(node.pool)
        window = settings.reset_window
        resets = 1 + await self._resets_since(
            node.node_id, gpu_index, self._book.clock.now() - window
        )
        if resets >= settings.reset_limit:
            detail = (
                f"GPU {gpu_index} needs its reset number {resets} within "
                f"{format_duration(window)}, and reset_limit is {settings.reset_limit}; "
                f"replacing the node instead (rule {rule})"
            )
            action = RemediationAction.REPLACE
        else:
            detail = f"GPU {gpu_index} judged for a reset by rule {rule}"
        return await episodes.start(node, rule, detail, action=action, gpu_index=gpu_index)

    async def escalate(self, episode: Remediation, why: str) -> None:
        """A reset or reboot failed: the node is replaced, or held where it cannot be."""
        cannot = self._episodes.cannot_replace(episode)
        if cannot:
            await self._episodes.move(
                episode,
                RemediationStep.HELD,
                f"{why}; navarch cannot replace the node: {cannot}; repair or replace it by hand, "
                "then cancel this episode",
            )
        else:
            await self._episodes.move(
                episode, RemediationStep.TERMINATE, f"{why}; replacing the node"
            )

    async def _resets_since(self, node_id: str, gpu_index: int, since: datetime) -> int:
        """The node's episodes that set out to reset the GPU since `since`, from the store."""
        stored = await self._book.store.list_remediations(
            pool="", node_id=node_id, limit=MAX_EPISODES
        )
        return sum(
            1
            for e in stored
            if e.action is RemediationAction.RESET_GPU
            and e.gpu_index == gpu_index
            and e.started_at is not None
            and e.started_at >= since
        )

    async def reset_gpu(self, episode: Remediation) -> None:
        """Carries out RESET_GPU: the daemon resets the GPU and checks the node."""
        node_id, gpu = episode.node_id, episode.gpu_index
        timeout = self._episodes.settings(episode.pool).reset_timeout
        assert episode.updated_at is not None
        try:
            command = await self._commands.issued_since(
                node_id, CommandType.RESET_GPU, episode.updated_at
            )
            if command is None:
                command, _ = await self._commands.issue(
                    node_id,
                    CommandType.RESET_GPU,
                    _reason(episode),
                    {"gpu": str(gpu)},
                    ACTOR,
                )
        except DomainError as exc:
            await self.escalate(episode, f"GPU {gpu} cannot be reset: {exc}")
            return
        ended: Command | None = None
        gone = False
        with trio.move_on_after(timeout.total_seconds()):
            ended = await self._outcome(episode, command)
            gone = ended is None
        if gone:
            await self.escalate(episode, "the cloud took the machine back during the GPU reset")
        elif ended is None:
            waited = format_duration(timeout)
            await self._cancel(command, f"not acknowledged within {waited}")
            await self.escalate(
                episode, f"the reset of GPU {gpu} was not acknowledged within {waited}"
            )
        elif ended.status is not CommandStatus.SUCCEEDED:
            why = ended.result_message or ended.status.value
            await self.escalate(episode, f"the reset of GPU {gpu} failed: {why}")
        elif await self.judgments.cleared(node_id, gpu):
            why = f"GPU {gpu} was reset and the node's checks passed"
            if await self._back_in_service(episode, why):
                await self._episodes.move(
                    episode, RemediationStep.DONE, f"{why}; the node is back in service"
                )
        else:
            await self._episodes.move(
                episode,
                RemediationStep.DONE,
                f"GPU {gpu} was reset; the node stays out of service: its health verdict still "
                "asks for action, which its next health report takes",
            )

    async def reboot(self, episode: Remediation) -> None:
        """Carries out REBOOT: the provider, or else the daemon, reboots the machine."""
        node_id = episode.node_id
        assert episode.updated_at is not None
        command = await self._commands.issued_since(node_id, CommandType.REBOOT, episode.updated_at)
        if command is None:
            asked_at = self._book.clock.now()
            # What the judge held describes the machine before the reboot.
            await self.judgments.cleared(node_id, -1)
            if await self._episodes.reboot_by_provider(episode):
                node = self._book.get(node_id)
                provider = node.provider if node is not None and node.provider else "the provider"
                detail = f"{provider} is rebooting the machine"
            else:
                try:
                    command, _ = await self._commands.issue(
                        node_id, CommandType.REBOOT, _reason(episode), {}, ACTOR
                    )
                except DomainError as exc:
                    await self.escalate(episode, f"the node cannot be rebooted: {exc}")
                    return
                detail = "the daemon's reboot command is issued"
        else:
            asked_at = command.issued_at or episode.updated_at
            detail = "the daemon's reboot command is issued"
        await self._episodes.move(
            episode,
            RemediationStep.RECOVER,
            f"{detail}; waiting for the node to register again and report its health",
            at=asked_at,
        )

    async def recover(self, episode: Remediation) -> None:
        """Carries out RECOVER: waits for the rebooted node to register and report its health."""
        timeout = self._episodes.settings(episode.pool).reboot_timeout
        deadline = trio.current_time() + timeout.total_seconds()
        waited = format_duration(timeout)
        failed = f"the node did not register again within {waited} of the reboot"
        with trio.move_on_at(deadline):
            failed = await self._registered_again(episode)
        if not failed:
            await self.judgments.unknown_until_reported(episode.node_id)
            failed = f"the node did not report its health within {waited} of the reboot"
            with trio.move_on_at(deadline):
                failed = await self._reported(episode)
        if failed:
            await self.escalate(episode, failed)
            return
        health = self._book.require(episode.node_id).health
        why = f"the node rebooted and reported {health.value}"
        if await self._back_in_service(episode, why):
            await self._episodes.move(
                episode, RemediationStep.DONE, f"{why}; it is back in service"
            )

    async def _registered_again(self, episode: Remediation) -> str:
        """Waits until the node registered since the reboot was asked for; returns "" then, or
        why the reboot failed."""
        node_id, since = episode.node_id, episode.updated_at
        assert since is not None
        command = await self._commands.issued_since(node_id, CommandType.REBOOT, since)
        while True:
            if self._went(node_id):
                return "the machine went during the reboot"
            if command is not None:
                command = await self._commands.get(command.command_id)
                if command.status in (CommandStatus.FAILED, CommandStatus.CANCELLED):
                    why = command.result_message or command.status.value
                    return f"the daemon could not reboot the node: {why}"
            found = await self._book.store.list_events(
                node_id=node_id, kinds=_REGISTERED, limit=1, before=""
            )
            if found and found[0].time >= since:
                return ""
            await trio.sleep(POLL)

    async def _reported(self, episode: Remediation) -> str:
        """Waits until the rebooted node reported its health; returns "" when it is not
        unhealthy, or why the reboot failed."""
        while True:
            if self._went(episode.node_id):
                return "the machine went during the reboot"
            health = self._book.require(episode.node_id).health
            if health is HealthStatus.UNHEALTHY:
                return "the node registered again after the reboot but is unhealthy"
            if health is not HealthStatus.UNKNOWN:
                return ""
            await trio.sleep(POLL)

    def _went(self, node_id: str) -> bool:
        return self._episodes.gone(node_id) or self._book.status(node_id) in (
            None,
            NodeStatus.TERMINATED,
        )

    async def _outcome(self, episode: Remediation, command: Command) -> Command | None:
        """The command as it ended; None when the node's machine went first."""
        while True:
            if self._episodes.gone(episode.node_id):
                return None
            with trio.move_on_after(POLL):
                return await self._commands.finished(command.command_id)

    async def _cancel(self, command: Command, why: str) -> None:
        cancelled = self._commands.cancel_open(command.node_id, why, command.type)
        if cancelled:
            await self._book.commit(Change(commands=tuple(cancelled)))

    async def _back_in_service(self, episode: Remediation, why: str) -> bool:
        """Returns the node to service, as an operator's forced uncordon does; escalates and
        returns False when its status no longer allows it."""
        try:
            await self._commands.issue(
                episode.node_id,
                CommandType.UNCORDON,
                f"{_reason(episode)}: {why}",
                {"force": "true"},
                ACTOR,
            )
        except DomainError as exc:
            await self.escalate(episode, f"the node cannot return to service: {exc}")
            return False
        return True


def _reason(episode: Remediation) -> str:
    return f"remediation {episode.episode_id}: {episode.rule}"
