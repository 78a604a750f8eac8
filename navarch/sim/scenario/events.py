"""Events: the timed actions of a scenario, and the failures inject_failure can cause."""

from __future__ import annotations

from datetime import timedelta

from attrs import field, frozen

from navarch.sim.scenario import validators
from navarch.sim.scenario.conditions import Condition

COMMANDS = ("cordon", "uncordon", "drain", "terminate", "run_diagnostic")
# What inject_failure can do to a node. The first group acts on one GPU.
GPU_FAILURES = (
    "xid",
    "thermal",
    "ecc",
    "remap_failure",
    "nvlink_down",
    "gpu_lost",
    "recovery_action",
    "nvlink_errors",
    "pcie_downgrade",
)
# A preemption: the provider takes the machine back, after `notice` of warning to its daemon.
NODE_FAILURES = (
    "boot_failure",
    "network_partition",
    "heartbeat_stop",
    "preemption",
    "ib_port_down",
    "diagnostic_failure",
)
FAILURES = GPU_FAILURES + NODE_FAILURES
# What a GPU reset does to a GPU failure (the simulated GPUs' reset outcomes): the GPU comes
# back clean, the reset fails, or the GPU does not come back.
RESET_OUTCOMES = ("clean", "fails", "lost")
# What a reboot does to a GPU failure: it clears it, the failure stays, or the GPU does not come
# back from the reboot (it is lost).
REBOOT_OUTCOMES = ("clean", "stays", "lost")
# The driver's recovery actions a `recovery_action` failure can ask for (NVML's names).
RECOVERY_ACTIONS = ("GPU_RESET", "NODE_REBOOT", "DRAIN_AND_RESET", "BUS_RESET", "SYSTEM_REBOOT")


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
    # A GPU failure's fate when remediation resets the GPU, and when it reboots the machine.
    reset: str = field(default="clean", validator=validators.one_of(RESET_OUTCOMES))
    reboot: str = field(default="clean", validator=validators.one_of(REBOOT_OUTCOMES))
    # The recovery action a `recovery_action` failure asks for.
    recovery: str = field(default="NODE_REBOOT", validator=validators.one_of(RECOVERY_ACTIONS))
    # The NVLink errors an `nvlink_errors` failure adds (replays and CRC errors each).
    errors: int = field(default=100, validator=validators.at_least(1))
    # The PCIe lanes a `pcie_downgrade` leaves the GPU's link (of 16).
    lanes: int = field(default=8, validator=validators.between(1, 15))
    # The InfiniBand port (device mlx5_N) an `ib_port_down` takes down.
    port: int = field(default=0, validator=validators.between(0, 7))
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
            *("message", "notice", "reset", "reboot", "recovery", "errors", "lanes", "port"),
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
