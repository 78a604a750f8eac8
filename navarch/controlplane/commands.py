"""Commands: issuing them, handing them to their nodes, and applying the nodes' answers.

Cordon and uncordon change only the control plane's own bookkeeping, so they are carried out at
once and recorded as commands that already succeeded. Drain, terminate, run_diagnostic,
reset_gpu and reboot are queued for the node (`CommandQueue`), which picks them up on its next
heartbeat or command poll and acknowledges each with its outcome; a drain or termination that
succeeded moves the node on. Whoever needs a command's outcome (remediation, for a reset) awaits
`finished`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import attrs
import trio

from navarch.controlplane import lifecycle
from navarch.controlplane.book import NodeBook
from navarch.controlplane.queue import CommandQueue
from navarch.errors import InvalidArgument, NotFound
from navarch.model import Command, CommandResult, CommandStatus, CommandType, Event, Node
from navarch.store import Change

_QUEUED_ACTION = {
    CommandType.DRAIN: "drain",
    CommandType.TERMINATE: "terminate",
    CommandType.RUN_DIAGNOSTIC: "run_diagnostic",
    CommandType.RESET_GPU: "reset_gpu",
    CommandType.REBOOT: "reboot",
}


# How often `finished` looks again at a command that may have ended without an acknowledgement
# (cancelled with its node), in seconds.
FINISHED_POLL = 5.0


def _flag(parameters: Mapping[str, str], name: str) -> bool:
    value = parameters.get(name, "false")
    if value not in ("true", "false"):
        raise InvalidArgument(f'parameters.{name}: expected "true" or "false", got {value!r}')
    return value == "true"


class Commands:
    def __init__(self, book: NodeBook, queue: CommandQueue, longest_poll: timedelta) -> None:
        self._book = book
        self.queue = queue
        self._longest_poll = longest_poll
        # command id -> set once the command's acknowledgement is committed.
        self._acked: dict[str, trio.Event] = {}

    async def issue(
        self,
        node_id: str,
        kind: CommandType,
        reason: str,
        parameters: Mapping[str, str],
        actor: str,
    ) -> tuple[Command, Node]:
        """Issues a command; returns it and the node as the command left it."""
        node = self._book.require(node_id)
        if kind is CommandType.CORDON:
            return await self._cordon(node, reason, parameters, actor)
        if kind is CommandType.UNCORDON:
            return await self._uncordon(node, reason, parameters, actor)
        return await self._queue(node, kind, reason, parameters, actor)

    async def cordon(self, node_id: str, reason: str) -> None:
        """Takes an active node out of service, for the health policy or a remediation."""
        node = self._book.require(node_id)
        if node.status is lifecycle.ACTIVE:
            await self._cordon(node, reason, {}, "admin")

    async def drain(self, node_id: str, reason: str, actor: str = "admin") -> None:
        """Asks the node to drain; a drain under way or done is left as it is."""
        node = self._book.require(node_id)
        if node.status in (lifecycle.DRAINED, lifecycle.TERMINATED):
            return
        await self._queue(node, CommandType.DRAIN, reason, {}, actor)

    async def get(self, command_id: str) -> Command:
        command = self.queue.find(command_id)
        if command is None:
            command = await self._book.store.get_command(command_id)
        if command is None:
            raise NotFound(f"command {command_id} not found")
        return command

    async def finished(self, command_id: str) -> Command:
        """Waits until the command ends (acknowledged or cancelled) and returns it as it ended;
        bound the wait with a cancel scope."""
        while True:
            command = await self.get(command_id)
            if command.status.finished:
                self._acked.pop(command_id, None)
                return command
            acked = self._acked.setdefault(command_id, trio.Event())
            with trio.move_on_after(FINISHED_POLL):
                await acked.wait()

    async def issued_since(
        self, node_id: str, kind: CommandType, since: datetime
    ) -> Command | None:
        """The newest command of `kind` issued to the node at or after `since`, open or ended;
        found in the event log, so that a restarted control plane finds it too."""
        issued = await self._book.store.list_events(
            node_id=node_id, kinds=("command.issued",), limit=100, before=""
        )
        for event in issued:
            if event.time < since:
                break
            if event.details.get("type") == kind.value:
                return await self.get(event.details["commandId"])
        return None

    async def poll(self, node_id: str, wait: timedelta) -> list[Command]:
        """The node's commands that are due, waiting up to `wait` (at most the configured
        longest poll) while none is."""
        self._book.require(node_id)
        wait = min(wait, self._longest_poll)
        deadline = trio.current_time() + wait.total_seconds()
        while True:
            commands, delivered = self.queue.take_due(node_id)
            if commands or trio.current_time() >= deadline or self.queue.closing:
                break
            await self.queue.wait(node_id, deadline)
        if delivered:
            self._book.store.commit_soon(Change(commands=tuple(delivered)))
        return commands

    async def ack(
        self, node_id: str, command_id: str, result: CommandResult, message: str, actor: str
    ) -> Command:
        """Applies the node's answer to a command; a repeated answer changes nothing."""
        book = self._book
        node = book.require(node_id)
        command = self.queue.find(command_id)
        if command is None:
            command = await book.store.get_command(command_id)
        if command is None or command.node_id != node_id:
            raise NotFound(f"command {command_id} not found for node {node_id}")
        if command.status.finished:
            # A repeated acknowledgement changes nothing; it still waits until the first one is
            # durable, so both answers mean the same thing.
            await book.store.commit(Change())
            return command
        succeeded = result is CommandResult.SUCCEEDED
        finished = attrs.evolve(
            command,
            status=CommandStatus.SUCCEEDED if succeeded else CommandStatus.FAILED,
            completed_at=book.clock.now(),
            result_message=message,
        )
        self.queue.remove(command)
        commands = [finished]
        events = [
            book.event(
                "command.acked",
                node.node_id,
                actor,
                message,
                details={
                    "commandId": command.command_id,
                    "type": command.type.value,
                    "result": result.value,
                },
            )
        ]
        after = self._apply_ack(node, finished, succeeded)
        if after is not node:
            if after.status is not node.status:
                events.append(book.status_event(node, after, actor, commandId=command.command_id))
            if after.status is lifecycle.TERMINATED:
                commands += self.cancel_open(after.node_id, "node terminated")
                book.forget(after.node_id)
            book.put(after)
        change = Change(
            nodes=(after,) if after is not node else (),
            commands=tuple(commands),
            events=tuple(events),
        )
        await book.commit(change)
        acked = self._acked.pop(command_id, None)
        if acked is not None:
            acked.set()
        return finished

    def cancel_open(self, node_id: str, why: str, only: CommandType | None = None) -> list[Command]:
        """Cancels the node's open commands (of one type, or all); returns them, to commit."""
        cancelled = []
        for command in self.queue.open_commands(node_id):
            if only is not None and command.type is not only:
                continue
            self.queue.remove(command)
            cancelled.append(
                attrs.evolve(
                    command,
                    status=CommandStatus.CANCELLED,
                    completed_at=self._book.clock.now(),
                    result_message=why,
                )
            )
        return cancelled

    def _apply_ack(self, node: Node, command: Command, succeeded: bool) -> Node:
        """The node after an acknowledged command; `node` itself when nothing changes."""
        kind = command.type
        if kind is CommandType.DRAIN and node.status is lifecycle.DRAINING:
            if succeeded:
                status = lifecycle.next_status("drain_succeeded", node.node_id, node.status)
                return attrs.evolve(node, status=status, status_reason=command.reason or "drained")
            return attrs.evolve(node, status_reason=f"drain failed: {command.result_message}")
        if kind is CommandType.TERMINATE and node.status is not lifecycle.TERMINATED:
            if succeeded:
                status = lifecycle.next_status("terminate_succeeded", node.node_id, node.status)
                return attrs.evolve(
                    node, status=status, status_reason=command.reason or "terminated"
                )
            return attrs.evolve(node, status_reason=f"terminate failed: {command.result_message}")
        return node

    def _new_command(
        self,
        node_id: str,
        kind: CommandType,
        reason: str,
        parameters: Mapping[str, str],
        actor: str,
        *,
        done: str | None,
    ) -> Command:
        """A command record; `done` is the result message of one applied here and now."""
        now = self._book.clock.now()
        return Command(
            command_id=self._book.ids.new(),
            node_id=node_id,
            type=kind,
            status=CommandStatus.PENDING if done is None else CommandStatus.SUCCEEDED,
            reason=reason,
            parameters=dict(parameters),
            issued_at=now,
            issued_by=actor,
            completed_at=None if done is None else now,
            result_message=done or "",
        )

    def _issued_event(self, command: Command) -> Event:
        return self._book.event(
            "command.issued",
            command.node_id,
            command.issued_by,
            command.reason,
            details={"commandId": command.command_id, "type": command.type.value},
        )

    async def _apply_directly(
        self,
        node: Node,
        after: Node,
        kind: CommandType,
        reason: str,
        parameters: Mapping[str, str],
        actor: str,
        extra_commands: list[Command],
    ) -> tuple[Command, Node]:
        """Records a command the control plane carries out itself, and its effect."""
        book = self._book
        verb = "cordoned" if kind is CommandType.CORDON else "uncordoned"
        done = (
            verb if after.status is not node.status else f"no change: node is {node.status.value}"
        )
        command = self._new_command(node.node_id, kind, reason, parameters, actor, done=done)
        events = [self._issued_event(command)]
        if after.status is not node.status:
            events.append(book.status_event(node, after, actor, commandId=command.command_id))
            book.put(after)
        change = Change(
            nodes=(after,) if after is not node else (),
            commands=(command, *extra_commands),
            events=tuple(events),
        )
        await book.commit(change)
        return command, book.full(after)

    async def _cordon(
        self, node: Node, reason: str, parameters: Mapping[str, str], actor: str
    ) -> tuple[Command, Node]:
        status = lifecycle.next_status("cordon", node.node_id, node.status)
        after = node
        if status is not node.status:
            after = attrs.evolve(node, status=status, status_reason=reason or "cordoned")
        return await self._apply_directly(
            node, after, CommandType.CORDON, reason, parameters, actor, []
        )

    async def _uncordon(
        self, node: Node, reason: str, parameters: Mapping[str, str], actor: str
    ) -> tuple[Command, Node]:
        force = _flag(parameters, "force")
        action = "force_uncordon" if force else "uncordon"
        status = lifecycle.next_status(action, node.node_id, node.status)
        after, cancelled = node, []
        if status is not node.status:
            after = attrs.evolve(node, status=status, status_reason="")
            cancelled = self.cancel_open(node.node_id, "cancelled by uncordon", CommandType.DRAIN)
            if node.status is lifecycle.UNHEALTHY:
                # Back in service by the operator's word: watch it afresh, with a full timeout.
                self._book.silent.discard(node.node_id)
                self._book.monitor.seen(node.node_id)
        return await self._apply_directly(
            node, after, CommandType.UNCORDON, reason, parameters, actor, cancelled
        )

    async def _queue(
        self,
        node: Node,
        kind: CommandType,
        reason: str,
        parameters: Mapping[str, str],
        actor: str,
    ) -> tuple[Command, Node]:
        book = self._book
        action = _QUEUED_ACTION[kind]
        status = lifecycle.next_status(action, node.node_id, node.status)
        if action == "drain" and node.status is lifecycle.DRAINED:
            command = self._new_command(
                node.node_id, kind, reason, parameters, actor, done="no change: node is drained"
            )
            await book.commit(Change(commands=(command,), events=(self._issued_event(command),)))
            return command, book.full(node)
        # Asking again for a drain or termination already under way reuses that command.
        existing = next(
            (
                c
                for c in self.queue.open_commands(node.node_id)
                if c.type is kind and action != "run_diagnostic"
            ),
            None,
        )
        command = existing or self._new_command(
            node.node_id, kind, reason, parameters, actor, done=None
        )
        events = [self._issued_event(command)] if existing is None else []
        after = node
        if status is not node.status:
            after = attrs.evolve(node, status=status, status_reason=reason or "draining")
            events.append(book.status_event(node, after, actor, commandId=command.command_id))
            book.put(after)
            book.silent.discard(node.node_id)
        if existing is None:
            self.queue.put(command)
        await book.commit(
            Change(
                nodes=(after,) if after is not node else (),
                commands=(command,) if existing is None else (),
                events=tuple(events),
            )
        )
        return command, book.full(after)
