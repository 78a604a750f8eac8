"""Scenario files: the fleet, the control plane under test, timed events, chaos and assertions.

A scenario is TOML. `load_scenario` reads and checks one and raises `ConfigError` listing every
problem with its key path (`events[3].xid: expected an integer, got "79"`), so a scenario either
runs as written or not at all. `--set KEY=VALUE` overrides (`apply_overrides`) change the raw
table before the checks, which is how the test suite runs stress scenarios at a reduced size.
"""

from __future__ import annotations

import difflib
import random
import tomllib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
from attrs import field, frozen

from navarch.config import Config, config_from_data
from navarch.daemon.gpu import NVLINKS
from navarch.durations import format_duration
from navarch.errors import ConfigError, ConfigValueError, read_config_file
from navarch.plugins.settings import structure

STATUSES = ("active", "cordoned", "draining", "drained", "unhealthy", "terminated")
HEALTHS = ("healthy", "degraded", "unhealthy", "unknown")
COMMANDS = ("cordon", "uncordon", "drain", "terminate", "run_diagnostic")
# What inject_failure can do to a node. The first group acts on one GPU.
GPU_FAILURES = ("xid", "thermal", "ecc", "remap_failure", "nvlink_down", "gpu_lost")
NODE_FAILURES = ("boot_failure", "network_partition", "heartbeat_stop")
FAILURES = GPU_FAILURES + NODE_FAILURES
REMEDIATION_OUTCOMES = ("completed", "held", "cancelled", "open")
STARTUP_PATTERNS = ("instant", "linear", "exponential", "wave")
SCOPES = ("node", "rack", "zone", "region", "provider", "fleet")
OUTAGE_SCOPES = ("zone", "region", "provider")
DEFAULT_GPU_TYPE = "NVIDIA H100 80GB HBM3"


def _at_least(low: float) -> Any:
    def check(_inst: Any, attribute: attrs.Attribute, value: float | None) -> None:
        if value is not None and value < low:
            raise ConfigValueError(f"{attribute.name}: expected {low:g} or more, got {value:g}")

    return check


def _fraction(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigValueError(f"{attribute.name}: expected a number from 0 to 1, got {value:g}")


def _one_of(choices: Sequence[str]) -> Any:
    """A key that takes one of `choices`; None stands for a key that was not given."""

    def check(_inst: Any, attribute: attrs.Attribute, value: str | None) -> None:
        if value is not None and value not in choices:
            raise ConfigValueError(
                f"{attribute.name}: expected one of {', '.join(choices)}, got {value!r}"
            )

    return check


def _weights(_inst: Any, attribute: attrs.Attribute, value: Mapping[str, float]) -> None:
    for key, weight in value.items():
        if weight < 0:
            raise ConfigValueError(f"{attribute.name}.{key}: expected 0 or more, got {weight:g}")
    if value and not any(value.values()):
        raise ConfigValueError(f"{attribute.name}: at least one weight must be above 0")


# The fleet.


@frozen(kw_only=True)
class NodeSpec:
    """One simulated machine: where it is and what it has."""

    id: str
    provider: str = "sim"
    region: str = "local"
    zone: str = "local-a"
    rack: str = ""
    instance_type: str = "sim-8x"
    gpu_count: int = field(default=8, validator=_at_least(1))
    gpu_type: str = DEFAULT_GPU_TYPE
    pool: str = ""
    labels: dict[str, str] = field(factory=dict)


@frozen(kw_only=True)
class Template:
    name: str
    weight: float = field(default=1.0, validator=_at_least(0))
    gpu_count: int = field(default=8, validator=_at_least(1))
    gpu_type: str = DEFAULT_GPU_TYPE
    instance_type: str = ""
    labels: dict[str, str] = field(factory=dict)


@frozen(kw_only=True)
class FleetGen:
    """A fleet made from weighted templates, providers, regions and zones."""

    total_nodes: int = field(validator=_at_least(1))
    templates: tuple[Template, ...] = field()
    providers: dict[str, float] = field(factory=lambda: {"sim": 1.0}, validator=_weights)
    regions: dict[str, float] = field(factory=lambda: {"local": 1.0}, validator=_weights)
    # Zones of each region; a region not listed has zones REGION-a, REGION-b and REGION-c.
    zones: dict[str, tuple[str, ...]] = field(factory=dict)
    # Machines per rack: a rack is the unit a cascade with scope "rack" stays in.
    rack_size: int = field(default=16, validator=_at_least(1))
    pool: str = ""
    # Generated ids are PREFIX-00001, PREFIX-00002, ...
    id_prefix: str = "node"

    @templates.validator
    def _some(self, _attribute: attrs.Attribute, value: tuple[Template, ...]) -> None:
        if not value:
            raise ConfigValueError("templates: expected at least one template")


@frozen(kw_only=True)
class Startup:
    """How `start_fleet` brings the machines up."""

    pattern: str = field(default="instant", validator=_one_of(STARTUP_PATTERNS))
    # Over how long the machines start (not used by "instant").
    duration: timedelta = timedelta(minutes=1)
    # Machines per wave ("wave" only).
    batch_size: int = field(default=100, validator=_at_least(1))
    jitter_percent: float = field(default=0.0, validator=_at_least(0))


# Chaos.


@frozen(kw_only=True)
class Cascade:
    probability: float = field(default=0.0, validator=_fraction)
    max_depth: int = field(default=2, validator=_at_least(1))
    min_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(seconds=60)
    scope: str = field(default="rack", validator=_one_of(("node", "rack", "zone")))
    # At most this share of the scope's other nodes fail in one step of a cascade.
    max_affected_percent: float = field(default=10.0, validator=_at_least(0))


@frozen(kw_only=True)
class Correlated:
    """When a failure of type `trigger` happens, `response` follows with `probability`."""

    trigger: str = field(validator=_one_of(FAILURES))
    response: str = field(validator=_one_of(FAILURES))
    probability: float = field(default=1.0, validator=_fraction)
    delay: timedelta = timedelta(seconds=10)
    scope: str = field(default="node", validator=_one_of(("node", "rack", "zone", "fleet")))
    # For xid triggers: only these codes trigger (empty: any); the response's XID code.
    trigger_xids: tuple[int, ...] = ()
    response_xid: int = 79


@frozen(kw_only=True)
class Outage:
    """Every node in a zone, region or provider fails at `start` and recovers `duration` later."""

    name: str
    start: timedelta
    duration: timedelta
    scope: str = field(validator=_one_of(OUTAGE_SCOPES))
    target: str
    failure: str = field(default="network_partition", validator=_one_of(FAILURES))
    xid: int = 79
    # A provider outage also refuses to provision while it lasts.
    provisioning: bool = True


@frozen(kw_only=True)
class Recovery:
    """Failures that can recover do so with `probability`, after about `mean`."""

    probability: float = field(default=0.0, validator=_fraction)
    mean: timedelta = timedelta(minutes=5)
    stddev: timedelta | None = None
    minimum: timedelta = timedelta(seconds=10)


@frozen(kw_only=True)
class Chaos:
    # Failures per 1,000 nodes per minute (a Poisson process over the running nodes).
    failure_rate: float = field(default=0.0, validator=_at_least(0))
    start: timedelta = timedelta(0)
    stop: timedelta | None = None
    failure_types: dict[str, float] = field(factory=lambda: {"xid": 1.0}, validator=_weights)
    # XID code (as a string key, as TOML requires) -> weight.
    xids: dict[str, float] = field(factory=dict, validator=_weights)
    cascade: Cascade = Cascade()
    correlated: tuple[Correlated, ...] = ()
    outages: tuple[Outage, ...] = ()
    recovery: Recovery = Recovery()

    @failure_types.validator
    def _types(self, _attribute: attrs.Attribute, value: Mapping[str, float]) -> None:
        for name in value:
            if name not in FAILURES:
                raise ConfigValueError(
                    f"failure_types.{name}: unknown failure type (expected one of "
                    f"{', '.join(FAILURES)})"
                )

    @xids.validator
    def _codes(self, _attribute: attrs.Attribute, value: Mapping[str, float]) -> None:
        for code in value:
            if not code.isdigit() or not 0 < int(code) < 1000:
                raise ConfigValueError(f"xids.{code}: expected an XID code from 1 to 999")


# Conditions: what wait_for waits for and what assert and [[assertions]] check.

_COUNT_KEYS = ("equals", "min", "max")
# check -> (required keys, optional keys)
CHECKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "node_status": (("node", "status"), ()),
    "node_health": (("node", "health"), ()),
    "count": ((), ("status", "health", "pool", "provider", *_COUNT_KEYS)),
    "pool_size": (("pool",), _COUNT_KEYS),
    "event": (("kind",), ("node", *_COUNT_KEYS)),
    "remediation": (("outcome",), ("node", "pool", *_COUNT_KEYS)),
    "no_lost_instances": ((), ()),
}


@frozen(kw_only=True)
class Condition:
    check: str = field(validator=_one_of(tuple(CHECKS)))
    node: str = ""
    status: str | None = field(default=None, validator=_one_of(STATUSES))
    health: str | None = field(default=None, validator=_one_of(HEALTHS))
    pool: str = ""
    provider: str = ""
    kind: str = ""
    outcome: str | None = field(default=None, validator=_one_of(REMEDIATION_OUTCOMES))
    equals: int | None = field(default=None, validator=_at_least(0))
    min: int | None = field(default=None, validator=_at_least(0))
    max: int | None = field(default=None, validator=_at_least(0))

    def describe(self) -> str:
        bounds = self._bounds()
        where = f" in pool {self.pool}" if self.pool else ""
        if self.provider:
            where += f" from provider {self.provider}"
        match self.check:
            case "node_status":
                return f"node {self.node} is {self.status}"
            case "node_health":
                return f"node {self.node} health is {self.health}"
            case "count":
                what = self.status or self.health or "all"
                return f"nodes {what}{where}: {bounds}"
            case "pool_size":
                return f"pool {self.pool} size: {bounds}"
            case "event":
                of = f" for node {self.node}" if self.node else ""
                return f"events {self.kind}{of}: {bounds}"
            case "remediation":
                of = f" of node {self.node}" if self.node else where
                return f"remediations {self.outcome}{of}: {bounds}"
            case _:
                return "no instance was lost"

    def _bounds(self) -> str:
        parts = []
        if self.equals is not None:
            parts.append(f"= {self.equals}")
        if self.min is not None:
            parts.append(f">= {self.min}")
        if self.max is not None:
            parts.append(f"<= {self.max}")
        return ", ".join(parts) or ">= 1"

    def holds(self, value: int) -> bool:
        if self.equals is None and self.min is None and self.max is None:
            return value >= 1
        return (
            (self.equals is None or value == self.equals)
            and (self.min is None or value >= self.min)
            and (self.max is None or value <= self.max)
        )


# Events.


@frozen(kw_only=True)
class Event:
    """One timed action. `index` is its place in the file, for messages."""

    at: timedelta
    action: str
    index: int = 0
    node: str = ""
    pool: str = ""
    failure: str | None = field(default=None, validator=_one_of(FAILURES))
    xid: int | None = None
    gpu: int | None = None
    celsius: float = 95.0
    corrected: int = 0
    uncorrected: int = 1
    link: int = 0
    message: str = ""
    command: str | None = field(default=None, validator=_one_of(COMMANDS))
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
                return f"inject {what} on {self.node}{gpu}"
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
    "inject_failure": (
        ("node", "failure"),
        ("xid", "gpu", "celsius", "corrected", "uncorrected", "link", "message"),
    ),
    "recover_failure": (("node",), ("failure",)),
    "issue_command": (("node", "command"), ("args",)),
    "set_utilization": (("utilization",), ("node", "pool")),
    "set_queue_depth": (("pool", "depth"), ()),
    "wait_for": (("check",), ("timeout",)),
    "assert": (("check",), ()),
    "log": (("message",), ()),
}
_EVENT_FIELDS = {f.name for f in attrs.fields(Event)} - {"index", "condition"}
_CONDITION_FIELDS = {f.name for f in attrs.fields(Condition)}


@frozen(kw_only=True)
class Scenario:
    name: str
    description: str = ""
    source: str = "<scenario>"
    seed: int = 1
    # How long the run lasts; unset: until the last event is done.
    duration: timedelta | None = None
    # Every how long the report samples the fleet.
    sample_interval: timedelta = timedelta(seconds=10)
    fleet: tuple[NodeSpec, ...] = ()
    startup: Startup = Startup()
    config: Config = field(factory=Config)
    events: tuple[Event, ...] = ()
    chaos: Chaos | None = None
    assertions: tuple[Condition, ...] = ()
    # Provider names that the fleet and the pools use, each run as a simulated provider.
    providers: tuple[str, ...] = ()

    def node(self, node_id: str) -> NodeSpec | None:
        return next((n for n in self.fleet if n.id == node_id), None)


@frozen(kw_only=True)
class _Head:
    """The scalar keys of a scenario, structured first."""

    name: str
    description: str = ""
    seed: int = 1
    duration: timedelta | None = None
    sample_interval: timedelta = field(default=timedelta(seconds=10))


_TOP_KEYS = (
    "name",
    "description",
    "seed",
    "duration",
    "sample_interval",
    "fleet",
    "fleet_gen",
    "startup",
    "config",
    "events",
    "chaos",
    "assertions",
)


def load_scenario(
    path: str | Path, overrides: Sequence[str] = (), plugins: Any | None = None
) -> Scenario:
    """Reads and checks a scenario file; raises ConfigError listing every problem."""
    source = str(path)
    text = read_config_file(path)
    return parse_scenario(text, source, overrides, plugins, base_dir=Path(path).parent)


def parse_scenario(
    text: str,
    source: str = "scenario.toml",
    overrides: Sequence[str] = (),
    plugins: Any | None = None,
    base_dir: str | Path | None = None,
) -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"TOML syntax error: {exc}"]) from None
    problems: list[str] = []
    data = apply_overrides(data, overrides, problems)
    if problems:
        raise ConfigError(source, problems)
    scenario = _structure(data, source, plugins, base_dir, problems)
    if problems or scenario is None:
        raise ConfigError(source, problems)
    return scenario


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str], problems: list[str]
) -> dict[str, Any]:
    """Applies `KEY.PATH=VALUE` overrides; VALUE is TOML (`100`, `"5m"`, `true`).

    A number in the path indexes an array: `events.1.min=300` is the second event's `min`.
    """
    for override in overrides:
        key, sep, raw = override.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--set {override!r}: expected KEY=VALUE")
            continue
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            # A bare word is a string, as people write `--set duration=5m`.
            value = raw.strip()
        problem = _set_path(data, key.split("."), value)
        if problem:
            problems.append(f"--set {key}: {problem}")
    return data


def _set_path(data: dict[str, Any], parts: list[str], value: Any) -> str:
    container: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth]) or "the scenario"
        if isinstance(container, list):
            if not part.isdigit() or int(part) >= len(container):
                return f"{where} has no item {part} (it has {len(container)})"
            index: Any = int(part)
        elif isinstance(container, dict):
            index = part
            if not last and index not in container:
                container[index] = {}
        else:
            return f"{where} is not a table or an array"
        if last:
            container[index] = value
        else:
            container = container[index]
    return ""


def _structure(
    data: dict[str, Any],
    source: str,
    plugins: Any,
    base_dir: str | Path | None,
    problems: list[str],
) -> Scenario | None:
    for key in data:
        if key not in _TOP_KEYS:
            problems.append(_unknown(key, _TOP_KEYS))
    head = structure({k: data[k] for k in attrs.fields_dict(_Head) if k in data}, _Head, problems)
    if head is not None and head.sample_interval <= timedelta(0):
        problems.append("sample_interval: expected a positive duration")
    fleet = list(_listed_fleet(data.get("fleet", []), problems))
    if "fleet_gen" in data:
        gen = structure(data["fleet_gen"], FleetGen, problems, "fleet_gen")
        seed = head.seed if head is not None else 1
        if gen is not None:
            listed = {spec.id for spec in fleet}
            generated = generate_fleet(gen, random.Random(f"fleet/{seed}"))
            for spec in generated:
                if spec.id in listed:
                    problems.append(f"fleet_gen: generated id {spec.id!r} is also in [[fleet]]")
            fleet += generated
    startup = structure(data.get("startup", {}), Startup, problems, "startup")
    chaos = structure(data["chaos"], Chaos, problems, "chaos") if "chaos" in data else None
    events = _events(data.get("events", []), problems)
    assertions = _conditions(data.get("assertions", []), problems)
    providers = sorted({spec.provider for spec in fleet})
    config = _config(data.get("config", {}), providers, source, plugins, base_dir, problems)
    if config is not None:
        providers = sorted(set(providers) | set(config.providers))
    if head is None or startup is None or config is None:
        return None
    scenario = Scenario(
        name=head.name,
        description=head.description,
        source=source,
        seed=head.seed,
        duration=head.duration,
        sample_interval=head.sample_interval,
        fleet=tuple(fleet),
        startup=startup,
        config=config,
        events=tuple(sorted(events, key=lambda e: (e.at, e.index))),
        chaos=chaos,
        assertions=tuple(assertions),
        providers=tuple(providers),
    )
    _check_references(scenario, problems)
    return scenario


def _unknown(key: str, known: Sequence[str], path: str = "") -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{path}{'.' if path else ''}{key}: unknown key{hint}"


def _listed_fleet(items: Any, problems: list[str]) -> list[NodeSpec]:
    if not isinstance(items, list):
        problems.append("fleet: expected an array of tables ([[fleet]])")
        return []
    specs = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        spec = structure(item, NodeSpec, problems, f"fleet[{i}]")
        if spec is None:
            continue
        if spec.id in seen:
            problems.append(f"fleet[{i}].id: {spec.id!r} is used by an earlier node")
            continue
        seen.add(spec.id)
        specs.append(spec)
    return specs


def generate_fleet(gen: FleetGen, rng: random.Random) -> list[NodeSpec]:
    """The fleet `gen` describes; the same generator state gives the same fleet."""

    def pick(weights: Mapping[str, float]) -> str:
        names = sorted(weights)
        return rng.choices(names, weights=[weights[n] for n in names])[0]

    templates = {t.name: t for t in gen.templates}
    template_weights = {t.name: t.weight for t in gen.templates}
    specs = []
    in_rack: dict[str, int] = {}
    for index in range(1, gen.total_nodes + 1):
        template = templates[pick(template_weights)]
        provider = pick(gen.providers)
        region = pick(gen.regions)
        zones = gen.zones.get(region) or tuple(f"{region}-{s}" for s in "abc")
        zone = zones[rng.randrange(len(zones))]
        # Machines fill a zone's racks in order, as a data hall does.
        placed = in_rack.get(zone, 0)
        in_rack[zone] = placed + 1
        rack = f"{zone}-r{placed // gen.rack_size + 1:03d}"
        specs.append(
            NodeSpec(
                id=f"{gen.id_prefix}-{index:05d}",
                provider=provider,
                region=region,
                zone=zone,
                rack=rack,
                instance_type=template.instance_type or f"{template.name}-{template.gpu_count}x",
                gpu_count=template.gpu_count,
                gpu_type=template.gpu_type,
                pool=gen.pool,
                labels={**template.labels, "navarch.io/template": template.name},
            )
        )
    return specs


def _events(items: Any, problems: list[str]) -> list[Event]:
    if not isinstance(items, list):
        problems.append("events: expected an array of tables ([[events]])")
        return []
    events = []
    for i, item in enumerate(items):
        path = f"events[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{path}: expected a table")
            continue
        action = item.get("action")
        if action not in ACTIONS:
            got = "missing" if action is None else repr(action)
            problems.append(f"{path}.action: expected one of {', '.join(ACTIONS)}, got {got}")
            continue
        required, optional = ACTIONS[action]
        path = f"{path} ({action})"
        condition = None
        keys = dict(item)
        if action in ("wait_for", "assert"):
            condition_keys = {k: keys.pop(k) for k in list(keys) if k in _CONDITION_FIELDS}
            condition = _condition(condition_keys, path, problems)
            required = tuple(k for k in required if k != "check")
        allowed = {"at", "action", *required, *optional}
        suggest = set(allowed)
        if item.get("check") in CHECKS:
            suggest |= {"check", *(k for group in CHECKS[item["check"]] for k in group)}
        before = len(problems)
        for key in list(keys):
            if key not in allowed:
                if key in _EVENT_FIELDS or key in _CONDITION_FIELDS:
                    problems.append(f"{path}.{key}: not a key of {action}")
                else:
                    problems.append(_unknown(key, sorted(suggest), path))
                del keys[key]
        for key in ("at", *required):
            if key not in keys:
                problems.append(f"{path}.{key}: required key is missing")
        event = structure({**keys, "index": i}, Event, problems, path)
        if event is None or len(problems) > before:
            continue
        event = attrs.evolve(event, condition=condition)
        _check_event(event, path, problems)
        events.append(event)
    return events


def _check_event(event: Event, path: str, problems: list[str]) -> None:
    if event.at < timedelta(0):
        problems.append(f"{path}.at: expected 0s or later")
    if event.action == "inject_failure":
        if event.failure == "xid" and event.xid is None:
            problems.append(f"{path}.xid: required for an xid failure")
        elif event.xid is not None and event.failure != "xid":
            problems.append(f"{path}.xid: only an xid failure takes an XID code")
        if event.failure in NODE_FAILURES and event.gpu is not None:
            problems.append(f"{path}.gpu: a {event.failure} failure is not on one GPU")
        if event.xid is not None and not 0 < event.xid < 1000:
            problems.append(f"{path}.xid: expected an XID code from 1 to 999, got {event.xid}")
    if event.utilization is not None and not 0 <= event.utilization <= 100:
        problems.append(f"{path}.utilization: expected 0 to 100, got {event.utilization:g}")
    if event.depth is not None and event.depth < 0:
        problems.append(f"{path}.depth: expected 0 or more, got {event.depth}")
    if event.gpu is not None and event.gpu < 0:
        problems.append(f"{path}.gpu: expected 0 or more, got {event.gpu}")
    if not 0 <= event.link < NVLINKS:
        problems.append(
            f"{path}.link: expected an NVLink from 0 to {NVLINKS - 1}, got {event.link}"
        )
    if event.corrected < 0 or event.uncorrected < 0:
        problems.append(f"{path}: ECC error counts must be 0 or more")
    if not 0 < event.celsius < 200:
        problems.append(
            f"{path}.celsius: expected a temperature from 0 to 200, got {event.celsius:g}"
        )
    if event.action == "wait_for" and event.timeout <= timedelta(0):
        problems.append(f"{path}.timeout: expected a positive duration")


def _conditions(items: Any, problems: list[str]) -> list[Condition]:
    if not isinstance(items, list):
        problems.append("assertions: expected an array of tables ([[assertions]])")
        return []
    found = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            problems.append(f"assertions[{i}]: expected a table")
            continue
        condition = _condition(dict(item), f"assertions[{i}]", problems)
        if condition is not None:
            found.append(condition)
    return found


def _condition(keys: dict[str, Any], path: str, problems: list[str]) -> Condition | None:
    check = keys.get("check")
    if check not in CHECKS:
        got = "missing" if check is None else repr(check)
        problems.append(f"{path}.check: expected one of {', '.join(CHECKS)}, got {got}")
        return None
    required, optional = CHECKS[check]
    allowed = {"check", *required, *optional}
    before = len(problems)
    for key in keys:
        if key not in allowed:
            if key in _CONDITION_FIELDS:
                problems.append(f"{path}.{key}: not a key of check {check!r}")
            else:
                problems.append(_unknown(key, sorted(allowed), path))
    for key in required:
        if key not in keys:
            problems.append(f"{path}.{key}: required for check {check!r}")
    if check == "count" and not ({"equals", "min", "max"} & set(keys)):
        problems.append(f"{path}: check 'count' needs equals, min or max")
    if check == "pool_size" and not ({"equals", "min", "max"} & set(keys)):
        problems.append(f"{path}: check 'pool_size' needs equals, min or max")
    if "status" in keys and "health" in keys:
        problems.append(f"{path}: give status or health, not both")
    condition = structure(keys, Condition, problems, path)
    return condition if len(problems) == before else None


def _config(
    table: Any,
    providers: Sequence[str],
    source: str,
    plugins: Any,
    base_dir: str | Path | None,
    problems: list[str],
) -> Config | None:
    """The control plane's configuration, with a simulated provider for each provider named."""
    if not isinstance(table, Mapping):
        problems.append("config: expected a table")
        return None
    data = dict(table)
    tables = dict(data.get("providers") or {})
    named = set(providers)
    for pool in (data.get("pools") or {}).values():
        if isinstance(pool, Mapping):
            for entry in pool.get("providers") or ():
                if isinstance(entry, Mapping) and isinstance(entry.get("provider"), str):
                    named.add(entry["provider"])
    for name in sorted(named):
        tables.setdefault(name, {})
    # Every provider here is simulated, so a table says only how (provision_delay, capacity...).
    tables = {
        name: {"type": "fake", **table} if isinstance(table, Mapping) else table
        for name, table in tables.items()
    }
    if tables:
        data["providers"] = tables
    try:
        config = config_from_data(data, source, plugins, base_dir)
    except ConfigError as exc:
        problems.extend(f"config.{problem}" for problem in exc.problems)
        return None
    for name, provider in config.providers.items():
        if provider.type != "fake":
            problems.append(
                f"config.providers.{name}.type: the simulator runs simulated providers only "
                f'("fake"), got "{provider.type}"'
            )
    return config


def _check_references(scenario: Scenario, problems: list[str]) -> None:
    nodes = {spec.id for spec in scenario.fleet}
    pools = set(scenario.config.pools)
    for i, spec in enumerate(scenario.fleet):
        if spec.pool and spec.pool not in pools:
            problems.append(f"fleet[{i}].pool: no pool {spec.pool!r} in [config.pools]")

    def known_node(node: str, path: str) -> None:
        # Nodes a pool provisions have ids the simulator cannot know in advance.
        if node and node not in nodes:
            problems.append(f"{path}.node: no node {node!r} in the fleet")

    gpus = {spec.id: spec.gpu_count for spec in scenario.fleet}

    def known_pool(pool: str, path: str) -> None:
        if pool and pool not in pools:
            listed = ", ".join(sorted(pools)) or "none"
            problems.append(f"{path}.pool: no pool {pool!r} (pools: {listed})")

    for event in scenario.events:
        path = f"events[{event.index}] ({event.action})"
        known_node(event.node, path)
        known_pool(event.pool, path)
        if event.gpu is not None and event.node in gpus and event.gpu >= gpus[event.node]:
            problems.append(
                f"{path}.gpu: node {event.node} has {gpus[event.node]} GPUs (0 to "
                f"{gpus[event.node] - 1}), got {event.gpu}"
            )
        if scenario.duration is not None and event.at > scenario.duration:
            problems.append(
                f"{path}.at: {format_duration(event.at)} is after the scenario's duration "
                f"({format_duration(scenario.duration)})"
            )
        if event.condition is not None:
            known_node(event.condition.node, path)
            known_pool(event.condition.pool, path)
        if event.action == "start_fleet" and not scenario.fleet:
            problems.append(f"{path}: the scenario has no fleet to start")
    for i, condition in enumerate(scenario.assertions):
        known_node(condition.node, f"assertions[{i}]")
        known_pool(condition.pool, f"assertions[{i}]")
    if scenario.chaos is not None:
        for i, outage in enumerate(scenario.chaos.outages):
            values = {
                "zone": {s.zone for s in scenario.fleet},
                "region": {s.region for s in scenario.fleet},
                "provider": set(scenario.providers),
            }[outage.scope]
            if outage.target not in values:
                listed = ", ".join(sorted(values)) or "none"
                problems.append(
                    f"chaos.outages[{i}].target: no {outage.scope} {outage.target!r} in the "
                    f"fleet ({outage.scope}s: {listed})"
                )
    if not scenario.fleet and not scenario.config.pools:
        problems.append("fleet: the scenario has no fleet and no pools")


def summarize(scenario: Scenario) -> list[str]:
    """Lines that describe a valid scenario, for `navarch sim validate`."""
    lines = [f"{scenario.name}: {scenario.description}".rstrip(": ")]
    providers: dict[str, int] = {}
    for spec in scenario.fleet:
        providers[spec.provider] = providers.get(spec.provider, 0) + 1
    spread = ", ".join(f"{name} {count}" for name, count in sorted(providers.items()))
    lines.append(f"fleet: {len(scenario.fleet)} nodes ({spread or 'none'})")
    lines.append(
        f"startup: {scenario.startup.pattern}"
        + (
            f" over {format_duration(scenario.startup.duration)}"
            if scenario.startup.pattern != "instant"
            else ""
        )
    )
    for name, pool in sorted(scenario.config.pools.items()):
        lines.append(f"pool {name}: {pool.min_nodes} to {pool.max_nodes} nodes")
    lines.append(f"events: {len(scenario.events)}")
    for event in scenario.events:
        lines.append(f"  {format_duration(event.at):>8}  {event.describe()}")
    if scenario.chaos is not None:
        chaos = scenario.chaos
        lines.append(
            f"chaos: {chaos.failure_rate:g} failures per 1,000 nodes per minute, "
            f"{len(chaos.outages)} outages, cascade probability {chaos.cascade.probability:g}"
        )
    lines.append(f"assertions: {len(scenario.assertions)}")
    for condition in scenario.assertions:
        lines.append(f"  {condition.describe()}")
    if scenario.duration is not None:
        lines.append(f"duration: {format_duration(scenario.duration)}")
    return lines


def interactive_scenario(nodes: int) -> Scenario:
    """The fleet `navarch sim interactive` starts: NODES machines in two zones, no script."""
    fleet = tuple(
        NodeSpec(
            id=f"node-{i}",
            provider="sim",
            region="us-central1",
            zone=f"us-central1-{'ab'[(i - 1) % 2]}",
            instance_type="sim-8x",
        )
        for i in range(1, nodes + 1)
    )
    config = config_from_data({"providers": {"sim": {"type": "fake"}}}, "<interactive>")
    return Scenario(
        name="interactive",
        description="A small fleet for trying the CLI.",
        fleet=fleet,
        config=config,
        events=(Event(at=timedelta(0), action="start_fleet"),),
        providers=("sim",),
    )
