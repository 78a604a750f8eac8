"""Events: the timed actions of a scenario, and the failures inject_failure can cause."""

from __future__ import annotations

from datetime import timedelta

from attrs import field, frozen

from navarch.sim.scenario import validators
from navarch.sim.scenario.conditions import Condition

COMMANDS = ("cordon", "uncordon", "drain", "terminate", "run_diagnostic")
# What inject_failure can do to a node. The first group acts on one GPU.
GPU_FAILURES = ("xid", "thermal", "ecc", "remap_failure", "nvlink_down", "gpu_lost")
# A preemption: the provider takes the machine back, after `notice` of warning to its daemon.
NODE_FAILURES = ("boot_failure", "network_partition", "heartbeat_stop", "preemption")
FAILURES = GPU_FAILURES + NODE_FAILURES


@frozen(kw_only=True)
class Event:
    """One timed action. `index` is its place in the file, for messages."""

    at: timedelta
    action: str
    index: int = 0
    node: str = ""
    pool: str = ""
    failure: str | None = field(default=None, validator=validators.one_of(FAILURES))
    xid: int | None = None
    gpu: int | None = None
    celsius: float = 95.0
    corrected: int = 0
    uncorrected: int = 1
    link: int = 0
    message: str = ""
    # A preemption's warning: how long before the machine goes its daemon hears of it (0: none).
    notice: timedelta = field(default=timedelta(minutes=2), validator=validators.not_negative)
    command: str | None = field(default=None, validator=validators.one_of(COMMANDS))
    args: dict[str, str] = field(factory=dict)
    utilization: float | None = None
    depth: int | None = None
    condition: Condition | None = None
    timeout: timedelta = timedelta(minutes=5)

    def describe(self) -> str:
        match self.action:
            case "inject_failure":
                what = f"xid {self.xid}" if self.failure == "xid" else self.failure
                gpu = f" gpu {self.gpu}" if self.gpu is not None else ""
                target = self.node or f"a node of pool {self.pool}"
                return f"inject {what} on {target}{gpu}"
            case "recover_failure":
                return f"recover {self.failure or 'all failures'} on {self.node}"
            case "issue_command":
                return f"{self.command} {self.node}"
            case "wait_for" | "assert":
                assert self.condition is not None
                return f"{self.action} {self.condition.describe()}"
            case "log":
                return self.message
            case "set_utilization":
                target = self.node or (f"pool {self.pool}" if self.pool else "every node")
                return f"utilization {self.utilization:g}% on {target}"
            case "set_queue_depth":
                return f"queue depth {self.depth} for pool {self.pool}"
            case _:
                return f"{self.action} {self.node}".strip()


# action -> (required keys, optional keys), besides `at` and `action`.
ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "start_fleet": ((), ()),
    "stop_fleet": ((), ()),
    "start_node": (("node",), ()),
    "stop_node": (("node",), ()),
    # On `node`, or on the first running node (by id) of `pool`: one that a provider made.
    "inject_failure": (
        ("failure",),
        (
            *("node", "pool", "xid", "gpu", "celsius", "corrected", "uncorrected", "link"),
            *("message", "notice"),
        ),
    ),
    "recover_failure": (("node",), ("failure",)),
    "issue_command": (("node", "command"), ("args",)),
    "set_utilization": (("utilization",), ("node", "pool")),
    "set_queue_depth": (("pool", "depth"), ()),
    "wait_for": (("check",), ("timeout",)),
    "assert": (("check",), ()),
    "log": (("message",), ()),
}
