"""The open commands of every node, and the long polls waiting for them.

Commands are delivered at least once: a command is handed to its node on the node's next
heartbeat or command poll, and handed out again every `redeliver_after` until the node acknowledges
it. A node therefore recognizes a command it already runs by its `command_id` and ignores the
repeat; the acknowledgement is applied once (`Commands.ack`).
"""

from __future__ import annotations

import attrs
import trio

from navarch.model import Command, CommandStatus

_PENDING = CommandStatus.PENDING
_DELIVERED = CommandStatus.DELIVERED


class CommandQueue:
    def __init__(self, redeliver_after: float) -> None:
        self._redeliver_after = redeliver_after
        # node id -> command id -> command, oldest first.
        self._open: dict[str, dict[str, Command]] = {}
        # command id -> node id, for the open commands.
        self._node_of: dict[str, str] = {}
        # command id -> trio time of the latest hand-out.
        self._handed_out: dict[str, float] = {}
        self._wakeups: dict[str, trio.Event] = {}
        self._closing = False

    def put(self, command: Command) -> None:
        """Adds or replaces an open command and wakes its node's long poll."""
        self._open.setdefault(command.node_id, {})[command.command_id] = command
        self._node_of[command.command_id] = command.node_id
        self._wake(command.node_id)

    def remove(self, command: Command) -> None:
        """Forgets a command that is finished."""
        commands = self._open.get(command.node_id, {})
        commands.pop(command.command_id, None)
        if not commands:
            self._open.pop(command.node_id, None)
        self._handed_out.pop(command.command_id, None)
        self._node_of.pop(command.command_id, None)

    def find(self, command_id: str) -> Command | None:
        node_id = self._node_of.get(command_id)
        return None if node_id is None else self._open[node_id][command_id]

    def open_commands(self, node_id: str) -> list[Command]:
        return list(self._open.get(node_id, {}).values())

    def take_due(self, node_id: str) -> tuple[list[Command], list[Command]]:
        """Hands out the node's commands that are due.

        Returns (the commands to send, the ones among them whose status just became DELIVERED).
        """
        commands = self._open.get(node_id)
        if not commands:
            return [], []
        now = trio.current_time()
        due, newly_delivered = [], []
        for command in list(commands.values()):
            handed_out = self._handed_out.get(command.command_id)
            if handed_out is not None and now - handed_out < self._redeliver_after:
                continue
            self._handed_out[command.command_id] = now
            if command.status is _PENDING:
                command = attrs.evolve(command, status=_DELIVERED)
                commands[command.command_id] = command
                newly_delivered.append(command)
            due.append(command)
        return due, newly_delivered

    def _next_due(self, node_id: str) -> float:
        times = [
            self._handed_out.get(command_id, -float("inf")) + self._redeliver_after
            for command_id in self._open.get(node_id, {})
        ]
        return min(times, default=float("inf"))

    async def wait(self, node_id: str, deadline: float) -> None:
        """Sleeps until a command for the node may be due, `deadline`, or shutdown."""
        if self._closing:
            await trio.lowlevel.checkpoint()
            return
        event = self._wakeups.get(node_id)
        if event is None:
            event = self._wakeups[node_id] = trio.Event()
        with trio.move_on_at(min(deadline, self._next_due(node_id))):
            await event.wait()

    async def until_due(self, node_id: str) -> None:
        """Sleeps until a command for the node is due, or shutdown: a long poll without a
        deadline, for a node in this process (`navarch.api.inprocess`)."""
        while not self._closing and self._next_due(node_id) > trio.current_time():
            await self.wait(node_id, float("inf"))

    def _wake(self, node_id: str) -> None:
        event = self._wakeups.pop(node_id, None)
        if event is not None:
            event.set()

    def close(self) -> None:
        """Ends every long poll now and every later one at once: the server is stopping."""
        self._closing = True
        for node_id in list(self._wakeups):
            self._wake(node_id)

    @property
    def closing(self) -> bool:
        return self._closing
