"""What a daemon remembers: its node token, the command it runs, and how finished commands ended.

The control plane delivers a command until the node acknowledges it, so a command can arrive
twice (an acknowledgement lost on the way, a control plane restarted in between). The ledger makes
each command run at most once: a command seen again is answered with the outcome already recorded.
With a state directory the ledger outlives the process, so a daemon restarted after finishing a
command, but before the acknowledgement went through, does not run it again.

The command being run is recorded before it starts, with the process group of its subprocess
before that subprocess runs anything (`navarch.daemon.processes`). A daemon that finds one
recorded at start was stopped in the middle of it: it ends what is left of the process group and
reports the command failed, instead of running it a second time beside the first.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import attrs
import trio
from attrs import frozen

from navarch.api.wire import CommandResult

STATE_FILE = "daemon-state.json"
# Outcomes kept for redelivered commands; the control plane stops redelivering once acknowledged.
KEEP_OUTCOMES = 256


@frozen
class Outcome:
    result: CommandResult
    message: str


@frozen
class Running:
    """The command being run, and the process group of its subprocess once it has one."""

    command_id: str
    # 0 until a subprocess starts; the group's id is its first process's pid.
    process_group: int = 0
    # The kernel's boot id when the group started: after a reboot the number means nothing.
    boot_id: str = ""


class DaemonState:
    """The node token, the running command and command outcomes, saved to `state_dir` if given."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        self._path = Path(state_dir) / STATE_FILE if state_dir else None
        self.node_id = ""
        self.node_token = ""
        self.running: Running | None = None
        self._outcomes: OrderedDict[str, Outcome] = OrderedDict()

    def load(self) -> None:
        """Reads the saved state; a missing or unreadable file leaves a fresh state."""
        if self._path is None:
            return
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            self.node_id = str(data.get("node_id", ""))
            self.node_token = str(data.get("node_token", ""))
            running = data.get("running")
            if running:
                self.running = Running(
                    str(running["id"]),
                    int(running.get("process_group", 0)),
                    str(running.get("boot_id", "")),
                )
            for item in data.get("commands", [])[-KEEP_OUTCOMES:]:
                self._outcomes[str(item["id"])] = Outcome(
                    CommandResult(item["result"]), str(item.get("message", ""))
                )
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self._outcomes.clear()

    def outcome(self, command_id: str) -> Outcome | None:
        return self._outcomes.get(command_id)

    async def begin(self, command_id: str) -> None:
        """Records that the command is about to run."""
        self.running = Running(command_id)
        await self.save()

    async def process_started(self, process_group: int, boot_id: str) -> None:
        """Records the process group of the running command's subprocess."""
        if self.running is not None:
            self.running = attrs.evolve(self.running, process_group=process_group, boot_id=boot_id)
            await self.save()

    async def record(self, command_id: str, outcome: Outcome) -> None:
        """Records how the command ended; it is no longer running."""
        self._outcomes[command_id] = outcome
        while len(self._outcomes) > KEEP_OUTCOMES:
            self._outcomes.popitem(last=False)
        if self.running is not None and self.running.command_id == command_id:
            self.running = None
        await self.save()

    async def set_token(self, node_id: str, token: str) -> None:
        if (node_id, token) != (self.node_id, self.node_token):
            self.node_id, self.node_token = node_id, token
            await self.save()

    async def save(self) -> None:
        if self._path is None:
            return
        running = self.running
        data = {
            "node_id": self.node_id,
            "node_token": self.node_token,
            "running": None
            if running is None
            else {
                "id": running.command_id,
                "process_group": running.process_group,
                "boot_id": running.boot_id,
            },
            "commands": [
                {"id": cid, "result": o.result.value, "message": o.message}
                for cid, o in self._outcomes.items()
            ],
        }
        await trio.to_thread.run_sync(_write_private, self._path, json.dumps(data, indent=1))


def _write_private(path: Path, text: str) -> None:
    """Writes atomically, readable by the owner only: the file holds a credential."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
