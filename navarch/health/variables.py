"""What a policy rule sees: the event as a CEL map, the node's recent history, helper functions.

Every rule is evaluated with two variables and a few functions:

- `event`: the event being judged (see `EVENT_FIELDS`).
- `history`: the node's events within the policy's history window, oldest first, ending with
  `event` itself; each entry has the same fields as `event`.
- `repeats(seconds)`: how many events in `history`, `event` included, have the same type, GPU
  index and XID code as `event` and are at most `seconds` old.
- `repeat_pids(seconds)`: the distinct process ids of those events, leaving out events whose
  process is unknown.
- The functions of `cel.stdlib` (`distinct`, `math.bitAnd`, `lowerAscii`, ...), which cel-go
  users expect and the Rust CEL core lacks.

`repeats` and `repeat_pids` are plain Python, linear in the history. The same counts written in
CEL over `history` (`history.filter(...)`) give the same answers but cost far more: cel-rust
builds a filtered list by copying it once per kept element.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import cel.stdlib
from attrs import frozen

from navarch.model import HealthEvent, HealthEventType
from navarch.telemetry.xid_catalog import lookup

# The keys of `event` and of every `history` entry, with what each holds (the docs list these).
EVENT_FIELDS: dict[str, str] = {
    "type": 'the event type in lowercase without its prefix: "xid", "thermal", "gpu_lost", ...',
    "time": "when the daemon saw it, a timestamp",
    "gpu_index": "the GPU's index on the node; -1 for a node-level event",
    "gpu_uuid": "the GPU's UUID, or an empty string",
    "xid": "the XID code; 0 when the event is not an XID",
    "xid_name": "the XID's name in NVIDIA's catalog, or an empty string",
    "xid_bucket": (
        'the catalog\'s Immediate resolution bucket ("RESET_GPU", "RESTART_APP", ...), or an '
        "empty string when the catalog gives none or does not list the code"
    ),
    "message": "the text the daemon sent",
    "metrics": "a map of numeric readings (doubles), such as temperature_c",
    "details": "a map of textual details (strings), such as pid or pci_bus_id",
    "pid": 'the process id from details.pid, or "" when the daemon did not know it',
    "recovery_action": (
        'the driver\'s recovery action: "" when the event carries none, else "NONE", '
        '"GPU_RESET", "NODE_REBOOT", "DRAIN_P2P", "DRAIN_AND_RESET", "RECOVER_IMEX_DOMAIN", '
        '"BUS_RESET", "SYSTEM_REBOOT" or "UNKNOWN"'
    ),
    "age_seconds": "seconds since the control plane received it; 0 for `event` itself",
}

HELPER_FUNCTIONS = ("repeats", "repeat_pids")

# Names a condition may call or refer to; anything else is reported when the policy is loaded,
# because cel-rust only finds an unknown name when a rule reaches it at run time.
NATIVE_FUNCTIONS = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double",
        "string", "bytes", "timestamp", "duration", "type", "dyn", "getFullYear", "getMonth",
        "getDate", "getDayOfMonth", "getDayOfYear", "getDayOfWeek", "getHours", "getMinutes",
        "getSeconds", "getMilliseconds",
    }
)  # fmt: skip
_STDLIB: dict[str, Callable[..., object]] = {
    name: fn for library in cel.stdlib.EXTENSIONS.values() for name, fn in library.items()
}
KNOWN_FUNCTIONS = (
    NATIVE_FUNCTIONS | {name.rpartition(".")[2] for name in _STDLIB} | set(HELPER_FUNCTIONS)
)
# `math.greatest(...)` reaches the parser as a call on a variable named `math`.
KNOWN_VARIABLES = frozenset(
    {"event", "history"} | {n.partition(".")[0] for n in _STDLIB if "." in n}
)

_UNKNOWN_PIDS = frozenset({"", "-1", "<unknown>", "'<unknown>'"})
# NVML's GPU recovery action values (nvmlDeviceGetFieldValues field 230, and XID 154's text).
# Judging health should not depend on the NVML binding's module, so the names live here too;
# a test checks them against navarch.telemetry.nvml.RecoveryAction.
RECOVERY_ACTIONS = {
    0: "NONE",
    1: "GPU_RESET",
    2: "NODE_REBOOT",
    3: "DRAIN_P2P",
    4: "DRAIN_AND_RESET",
    5: "RECOVER_IMEX_DOMAIN",
    6: "BUS_RESET",
    7: "SYSTEM_REBOOT",
}
# XID 154's text: "GPU recovery action changed from 0x4 (Drain and Reset) to 0x1 (GPU Reset ...)".
_XID_154_TARGET = re.compile(r"\bto 0x([0-9a-fA-F]{1,8})\b")


def _text(value: str) -> str:
    """`value` with lone surrogates replaced: JSON may carry them and CEL refuses them."""
    if value.isascii():
        return value
    return value.encode("utf-8", "replace").decode("utf-8")


def event_pid(event: HealthEvent) -> str:
    pid = _text(event.details.get("pid", "").strip())
    return "" if pid in _UNKNOWN_PIDS else pid


def recovery_action(event: HealthEvent) -> str:
    """The NVML recovery action an event carries, by name; "" when it carries none.

    The daemon may send it as details["recovery_action"] (a name such as "GPU_RESET", or a
    number) or metrics["recovery_action"] (a number); an XID 154 also names it in its text.
    """
    raw = event.details.get("recovery_action", "").strip()
    if raw:
        upper = raw.upper()
        if upper in RECOVERY_ACTIONS.values():
            return upper
        try:
            return RECOVERY_ACTIONS.get(int(raw, 0), "UNKNOWN")
        except ValueError:
            return "UNKNOWN"
    number = event.metrics.get("recovery_action")
    if number is not None:
        if number != number or number in (float("inf"), float("-inf")):
            return "UNKNOWN"
        whole = int(number)
        return RECOVERY_ACTIONS.get(whole, "UNKNOWN") if whole == number else "UNKNOWN"
    if event.type is HealthEventType.XID and event.xid == 154:
        match = _XID_154_TARGET.search(event.message)
        return RECOVERY_ACTIONS.get(int(match.group(1), 16), "UNKNOWN") if match else "UNKNOWN"
    return ""


@frozen
class Seen:
    """An event as the judge keeps it in a node's history."""

    at: float  # the caller's clock when the event was judged
    event: HealthEvent
    pid: str

    @property
    def key(self) -> tuple[HealthEventType, int, int]:
        return (self.event.type, self.event.gpu_index, self.event.xid)


def seen(event: HealthEvent, at: float) -> Seen:
    return Seen(at=at, event=event, pid=event_pid(event))


def event_map(item: Seen, now: float) -> dict[str, object]:
    event = item.event
    entry = lookup(event.xid) if event.xid else None
    return {
        "type": event.type.value,
        "time": _timestamp(event.time),
        "gpu_index": event.gpu_index,
        "gpu_uuid": _text(event.gpu_uuid),
        "xid": event.xid,
        "xid_name": entry.name if entry else "",
        "xid_bucket": (entry.immediate or "") if entry else "",
        "message": _text(event.message),
        "metrics": {_text(k): float(v) for k, v in event.metrics.items()},
        "details": {_text(k): _text(v) for k, v in event.details.items()},
        "pid": item.pid,
        "recovery_action": recovery_action(event),
        "age_seconds": max(0.0, now - item.at),
    }


def _timestamp(value: datetime) -> datetime:
    # CEL timestamps are UTC instants; a naive datetime from Python callers is taken as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def helper_functions(
    history: Iterable[Seen], current: Seen, now: float
) -> dict[str, Callable[..., object]]:
    """`repeats` and `repeat_pids` bound to one event and its node's history."""
    key = current.key

    def same(seconds: float) -> list[Seen]:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"expected a number of seconds, got {type(seconds).__name__}")
        return [s for s in history if s.key == key and now - s.at <= seconds]

    def repeats(seconds: float) -> int:
        return len(same(seconds))

    def repeat_pids(seconds: float) -> list[str]:
        return sorted({s.pid for s in same(seconds) if s.pid})

    return {**_STDLIB, "repeats": repeats, "repeat_pids": repeat_pids}
