"""Reading a scenario file into the model, with every problem found reported at once."""

from __future__ import annotations

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
from navarch.errors import ConfigError, read_config_file
from navarch.hints import unknown_key
from navarch.plugins.manager import Plugins
from navarch.plugins.settings import structure
from navarch.sim.scenario.chaos import Chaos
from navarch.sim.scenario.conditions import CHECKS, Condition
from navarch.sim.scenario.events import ACTIONS, NODE_FAILURES, Event
from navarch.sim.scenario.fleet import FleetGen, NodeSpec, Startup, generate_fleet
from navarch.sim.scenario.model import Scenario
from navarch.sim.scenario.overrides import apply_overrides
from navarch.sim.scenario.references import check_references

_EVENT_FIELDS = {f.name for f in attrs.fields(Event)} - {"index", "condition"}
_CONDITION_FIELDS = {f.name for f in attrs.fields(Condition)}


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
    path: str | Path, overrides: Sequence[str] = (), plugins: Plugins | None = None
) -> Scenario:
    """Reads and checks a scenario file; raises ConfigError listing every problem."""
    source = str(path)
    text = read_config_file(path)
    return parse_scenario(text, source, overrides, plugins, base_dir=Path(path).parent)


def parse_scenario(
    text: str,
    source: str = "scenario.toml",
    overrides: Sequence[str] = (),
    plugins: Plugins | None = None,
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


def _structure(
    data: dict[str, Any],
    source: str,
    plugins: Plugins | None,
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
    check_references(scenario, problems)
    return scenario


def _unknown(key: str, known: Sequence[str], path: str = "") -> str:
    return unknown_key(f"{path}.{key}" if path else key, key, known)


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
        if bool(event.node) == bool(event.pool):
            problems.append(f"{path}: name either node or pool, the node to fail")
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
    plugins: Plugins | None,
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
    # A table without a type is the fake provider: its keys say only how it simulates
    # (provision_delay, capacity...). A plugin's type runs that plugin, its machines simulated.
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
    for name in sorted(set(providers)):
        kind = config.providers[name].type
        if kind != "fake":
            problems.append(
                f'config.providers.{name}.type: the scenario\'s machines need the "fake" provider '
                f'to list them, got "{kind}"; a plugin\'s provider serves pools only'
            )
    return config
