"""Health policies: CEL rules in a TOML file, checked and compiled when the file is loaded.

A policy file has optional top-level `name`, `description` and `history_window` keys and one or
more `[[rules]]` tables. Each rule has a `name`, a CEL `condition`, the `result` it gives an event
(`healthy`, `degraded`, `unhealthy`), the `action` it asks for, and optional `description` and
`source` (where the rule comes from). `HealthJudge` applies the rules; docs/health.md explains
them for people.

Every problem in a file is reported at once, as a `ConfigError` naming the file. A CEL error
names the rule and the line and column within the condition, and within the file where the
condition is written in the usual `condition = "..."` or `'''...'''` form.
"""

from __future__ import annotations

import difflib
import enum
import functools
import os
import re
import sys
from collections.abc import Mapping
from datetime import timedelta
from importlib import resources
from typing import Any, TypeVar

import cel
from attrs import field, frozen

from navarch.durations import format_duration, parse_duration
from navarch.errors import ConfigError, read_config_file
from navarch.health.variables import EVENT_FIELDS, KNOWN_FUNCTIONS, KNOWN_VARIABLES
from navarch.model import HealthStatus

if sys.version_info >= (3, 15):
    import tomllib
else:
    import tomli as tomllib

DEFAULT_SOURCE = "<default policy>"


class Result(enum.Enum):
    """What a rule says about an event, from best to worst."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    @property
    def rank(self) -> int:
        return _RESULT_RANK[self]

    @property
    def health_status(self) -> HealthStatus:
        return HealthStatus[self.name]


class Action(enum.Enum):
    """What a rule asks the control plane to do, from least to most disruptive."""

    NONE = "none"
    ALERT = "alert"
    CORDON = "cordon"
    DRAIN = "drain"
    RESET_GPU = "reset_gpu"
    REBOOT = "reboot"
    REPLACE = "replace"

    @property
    def rank(self) -> int:
        return _ACTION_RANK[self]


_Choice = TypeVar("_Choice", Result, Action)
_RESULT_RANK = {r: i for i, r in enumerate(Result)}
_ACTION_RANK = {a: i for i, a in enumerate(Action)}
# A healthy node has nothing to remediate; asking to drain or replace it is a mistake in the file.
_HEALTHY_ACTIONS = (Action.NONE, Action.ALERT)


@frozen
class Rule:
    name: str
    condition: str
    result: Result
    action: Action = Action.NONE
    description: str = ""
    source: str = ""  # where the rule comes from (a catalog bucket, a DCGM threshold), for docs
    program: cel.Program | None = field(default=None, eq=False, repr=False)
    # Whether the condition reads `history`, which is costly to hand to CEL; see HealthJudge.
    uses_history: bool = field(default=False, eq=False, repr=False)


@frozen
class Policy:
    rules: tuple[Rule, ...]
    name: str = ""
    description: str = ""
    # How far back `history` reaches, and so the longest window `repeats()` can count.
    history_window: timedelta = timedelta(hours=1)
    source: str = field(default=DEFAULT_SOURCE, eq=False)


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """The policy in `path`, or the built-in default policy when `path` is None or empty.

    Raises ConfigError listing every problem in the file.
    """
    if path is None or str(path) == "":
        return default_policy()
    source = str(path)
    text = read_config_file(path)
    return parse_policy(text, source)


@functools.cache
def default_policy() -> Policy:
    """The built-in policy (default_policy.toml), which follows NVIDIA's XID catalog and DCGM."""
    text = resources.files(__package__).joinpath("default_policy.toml").read_text("utf-8")
    return parse_policy(text, DEFAULT_SOURCE)


_TOP_KEYS = ("name", "description", "history_window", "rules")
_RULE_KEYS = ("name", "description", "condition", "result", "action", "source")


def parse_policy(text: str, source: str = "policy.toml") -> Policy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"TOML syntax error: {exc}"]) from None
    problems: list[str] = []
    for key in data:
        if key not in _TOP_KEYS:
            problems.append(_unknown_key(key, key, _TOP_KEYS))
    name = _string(data, "name", "name", problems)
    description = _string(data, "description", "description", problems)
    history_window = timedelta(hours=1)
    if "history_window" in data:
        try:
            history_window = parse_duration(data["history_window"])
            if history_window <= timedelta(0):
                raise ValueError(
                    f'expected a positive duration, got "{format_duration(history_window)}"'
                )
        except ValueError as exc:
            problems.append(f"history_window: {exc}")

    raw_rules = data.get("rules")
    rules: list[Rule] = []
    if raw_rules is None:
        problems.append("rules: a policy needs at least one [[rules]] table")
    elif not isinstance(raw_rules, list) or not all(isinstance(r, Mapping) for r in raw_rules):
        problems.append("rules: expected an array of tables ([[rules]])")
    else:
        locations = _condition_locations(text)
        first_index: dict[str, int] = {}
        duplicated: set[int] = set()
        for i, raw in enumerate(raw_rules):
            rule_name = raw.get("name")
            if not isinstance(rule_name, str):
                continue
            if rule_name in first_index:
                duplicated |= {first_index[rule_name], i}
                problems.append(
                    f'rules[{i}]: duplicate rule name "{rule_name}" '
                    f"(rules[{first_index[rule_name]}] has it too)"
                )
            first_index.setdefault(rule_name, i)
        for i, raw in enumerate(raw_rules):
            location = locations[i] if i < len(locations) else None
            rule = _rule(raw, i, location, i in duplicated, problems)
            if rule is not None:
                rules.append(rule)
    if problems:
        raise ConfigError(source, problems)
    return Policy(
        rules=tuple(rules),
        name=name,
        description=description,
        history_window=history_window,
        source=source,
    )


def _rule(
    raw: Mapping[str, Any],
    index: int,
    location: tuple[int, int] | None,
    duplicated: bool,
    problems: list[str],
) -> Rule | None:
    """Checks and compiles one `[[rules]]` table; None when it has any problem."""
    before = len(problems)
    label = f"rules[{index}]"
    name = raw.get("name")
    if name is None:
        problems.append(f"{label}: name is required")
    elif not isinstance(name, str) or not name.strip():
        problems.append(f"{label}: name: expected a non-empty string, got {_show(name)}")
    elif duplicated:
        label = f'rules[{index}] "{name}"'
    else:
        label = f'rule "{name}"'
    for key in raw:
        if key not in _RULE_KEYS:
            problems.append(_unknown_key(f"{label}: {key}", key, _RULE_KEYS))
    description = _string(raw, "description", f"{label}: description", problems)
    source = _string(raw, "source", f"{label}: source", problems)
    result = _choice(raw, "result", Result, None, label, problems)
    action = _choice(raw, "action", Action, Action.NONE, label, problems)
    if result is Result.HEALTHY and action is not None and action not in _HEALTHY_ACTIONS:
        problems.append(
            f'{label}: action "{action.value}" does not fit result "healthy"; '
            'a healthy result allows "none" or "alert"'
        )
    condition = raw.get("condition")
    program = None
    if condition is None:
        problems.append(f"{label}: condition is required")
    elif not isinstance(condition, str) or not condition.strip():
        problems.append(f"{label}: condition: expected a CEL expression, got {_show(condition)}")
    else:
        program = _compile(condition, label, location, problems)
    if (
        len(problems) > before
        or duplicated
        or not isinstance(name, str)
        or not isinstance(condition, str)
        or program is None
        or result is None
        or action is None
    ):
        return None
    return Rule(
        name=name,
        condition=condition,
        result=result,
        action=action,
        description=description,
        source=source,
        program=program,
        uses_history="history" in program.variables(),
    )


def _string(data: Mapping[str, Any], key: str, label: str, problems: list[str]) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        problems.append(f"{label}: expected a string, got {_show(value)}")
        return ""
    return value


def _choice(
    raw: Mapping[str, Any],
    key: str,
    kind: type[_Choice],
    default: _Choice | None,
    label: str,
    problems: list[str],
) -> _Choice | None:
    allowed = ", ".join(m.value for m in kind)
    if key not in raw:
        if default is None:
            problems.append(f"{label}: {key} is required (one of {allowed})")
        return default
    value = raw[key]
    try:
        return kind(value)
    except ValueError:
        problems.append(f"{label}: {key}: expected one of {allowed}, got {_show(value)}")
        return None


def _unknown_key(where: str, key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{where}: unknown key{hint}"


def _show(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else repr(value)


# CEL compilation and the checks cel-rust leaves to run time.

_CEL_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")
_BINDING_MACRO = r"\.\s*(?:all|exists_one|exists|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,"


def _compile(
    condition: str, label: str, location: tuple[int, int] | None, problems: list[str]
) -> cel.Program | None:
    def report(offset_or_pos: int | tuple[int, int], message: str) -> None:
        if isinstance(offset_or_pos, int):
            line = condition.count("\n", 0, offset_or_pos) + 1
            column = offset_or_pos - (condition.rfind("\n", 0, offset_or_pos) + 1) + 1
        else:
            line, column = offset_or_pos
        where = f"condition line {line}, column {column}"
        if location is not None:
            file_line, file_column = location
            if line == 1:
                file_column += column - 1
            else:
                file_line, file_column = file_line + line - 1, column
            where += f" (file line {file_line}, column {file_column})"
        problems.append(f"{label}: {where}: {message}")

    try:
        program = cel.compile(condition)
    except Exception as exc:  # cel raises ValueError for parse errors; be safe with others
        found = _CEL_ERROR.findall(str(exc))
        if not found:
            problems.append(f"{label}: condition: {exc}")
        for line, column, message in found:
            report((int(line), int(column)), message.strip())
        return None

    code = _blank_strings(condition)
    bound = set(re.findall(_BINDING_MACRO, code))
    for name in program.variables():
        if name not in KNOWN_VARIABLES and name not in bound:
            offset = _find(code, rf"(?<![\w.]){re.escape(name)}\b")
            report(offset, f'unknown variable "{name}" (rules see event and history)')
    for name in program.functions():
        if re.fullmatch(r"[A-Za-z_]\w*", name) and name not in KNOWN_FUNCTIONS:
            offset = _find(code, rf"\b{re.escape(name)}\s*\(")
            close = difflib.get_close_matches(name, sorted(KNOWN_FUNCTIONS), n=1, cutoff=0.7)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            report(offset, f'unknown function "{name}"{hint}')
    # `event.xdi` and `e.xdi` (for `e` bound over `history`) would fail only when evaluated.
    entries = {"event"} | set(re.findall(r"\bhistory\s*" + _BINDING_MACRO, code))
    names = "|".join(re.escape(n) for n in sorted(entries))
    for match in re.finditer(rf"(?<![\w.])(?:{names})\s*\.\s*([A-Za-z_]\w*)", code):
        if match.group(1) not in EVENT_FIELDS:
            close = difflib.get_close_matches(match.group(1), list(EVENT_FIELDS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            report(match.start(1), f'events have no field "{match.group(1)}"{hint}')
    return program


def _find(code: str, pattern: str) -> int:
    match = re.search(pattern, code)
    return match.start() if match else 0


def _blank_strings(code: str) -> str:
    """`code` with the inside of every string literal blanked out, so that searching for names
    does not match text in strings; offsets stay the same."""
    out = list(code)
    i = 0
    while i < len(code):
        ch = code[i]
        if ch not in "'\"":
            i += 1
            continue
        raw = i > 0 and code[i - 1] in "rR"
        quote = code[i : i + 3] if code[i : i + 3] in ("'''", '"""') else ch
        j = i + len(quote)
        while j < len(code) and not code.startswith(quote, j):
            if code[j] == "\\" and not raw:
                out[j] = " "
                j += 1
            if j < len(code) and code[j] != "\n":
                out[j] = " "
            j += 1
        i = j + len(quote)
    return "".join(out)


_RULES_HEADER = re.compile(r"\s*\[\[\s*rules\s*\]\]\s*(?:#.*)?$")
_TABLE_HEADER = re.compile(r"\s*\[")
_CONDITION_KEY = re.compile(r"\s*condition\s*=\s*")


def _condition_locations(text: str) -> list[tuple[int, int] | None]:
    """For each `[[rules]]` table in order, the file line and column where its condition's text
    starts, or None where the condition is not written as a plain key in that table."""
    locations: list[tuple[int, int] | None] = []
    in_rule = False
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if _RULES_HEADER.match(line):
            locations.append(None)
            in_rule = True
            continue
        if _TABLE_HEADER.match(line):
            in_rule = False
            continue
        key = _CONDITION_KEY.match(line)
        if not in_rule or key is None or locations[-1] is not None:
            continue
        rest = line[key.end() :]
        column = key.end() + 1
        for quote in ('"""', "'''", '"', "'"):
            if rest.startswith(quote):
                after = rest[len(quote) :]
                if len(quote) == 3 and not after.strip():
                    # TOML drops the newline right after an opening triple quote.
                    locations[-1] = (number + 1, 1)
                else:
                    locations[-1] = (number, column + len(quote))
                break
    return locations
