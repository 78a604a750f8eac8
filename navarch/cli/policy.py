"""`navarch policy check|test`: check a health policy file and try it on recorded events."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from navarch.cli.output import output_option, print_json, print_table, wants_json, wide_option
from navarch.errors import ConfigError, UsageError

F = TypeVar("F", bound=Callable[..., object])

if TYPE_CHECKING:
    from navarch.health import Policy
    from navarch.model import HealthEvent


@click.group()
def policy() -> None:
    """Check health policy files and try them on health events."""


def _default_option(fn: F) -> F:
    return click.option(
        "--default",
        "use_default",
        is_flag=True,
        help="Use the built-in default policy (the same as giving FILE as `default`).",
    )(fn)


def _load(file: str | None, use_default: bool) -> Policy:
    from navarch.health import default_policy, load_policy

    if file is not None and use_default:
        raise UsageError("give a policy FILE or --default, not both")
    if use_default or file == "default":
        return default_policy()
    if file is None:
        raise UsageError("give a policy FILE, `default`, or --default")
    return load_policy(file)


@policy.command()
@click.argument("file", required=False)
@_default_option
def check(file: str | None, use_default: bool) -> None:
    """Check a policy file and summarize it.

    Prints every problem in FILE and exits with status 2 if there is any. FILE may be
    `default`, the built-in policy.
    """
    from navarch.durations import format_duration
    from navarch.health import Result

    checked = _load(file, use_default)
    by_result = {r: sum(rule.result is r for rule in checked.rules) for r in Result}
    counts = ", ".join(f"{n} {r.value}" for r, n in by_result.items() if n)
    click.echo(f"{checked.source}: ok")
    if checked.name:
        click.echo(f"  policy: {checked.name}")
    click.echo(f"  rules: {len(checked.rules)} ({counts})")
    click.echo(f"  history window: {format_duration(checked.history_window)}")
    width = max(len(rule.name) for rule in checked.rules)
    for rule in checked.rules:
        click.echo(f"    {rule.name:<{width}}  {rule.result.value}, {rule.action.value}")


@policy.command()
@click.argument("paths", nargs=-1, metavar="[FILE] EVENTS")
@_default_option
@click.option(
    "--window",
    default="10m",
    show_default=True,
    help="A node's health is the worst result over this window ([health] window).",
)
@wide_option
@output_option
def test(
    paths: tuple[str, ...],
    use_default: bool,
    window: str,
    wide: bool,
    output: str,
    as_json: bool,
) -> None:
    """Show the rule that matches each event, and each node's verdict.

    Judges every event in EVENTS with the policy in FILE and prints the matching rule, then each
    node's verdict at the time of the last event. EVENTS has one health event per line, as JSON
    in the API's form (`{"type": "HEALTH_EVENT_TYPE_XID", "time": "2026-01-01T00:00:00Z",
    "gpuIndex": 0, "xid": 79}`), with an optional `nodeId` that keeps each node's history
    apart; `-` reads standard input. Events are judged in file order, each at its own time, so
    counting rules see the ones before it. FILE may be `default`, the built-in policy.
    """
    from navarch.durations import parse_duration

    expected = 1 if use_default else 2
    if len(paths) != expected:
        shape = "EVENTS" if use_default else "FILE EVENTS (or --default EVENTS)"
        raise UsageError(f"expected {shape}, got {len(paths)} argument(s)")
    file, events_path = (None, paths[0]) if use_default else paths
    try:
        window_seconds = parse_duration(window).total_seconds()
    except ValueError as exc:
        raise UsageError(f"--window: {exc}") from None
    if window_seconds <= 0:
        raise UsageError(f'--window: expected a positive duration, got "{window}"')
    checked = _load(file, use_default)
    records = _read_events(events_path)
    rows, verdicts, at = _judge(checked, window_seconds, records)
    if wants_json(output, as_json):
        print_json({"policy": checked.source, "at": at, "events": rows, "verdicts": verdicts})
        return
    print_table(
        [_table_row(row) for row in rows],
        [
            ("line", "LINE"),
            ("node", "NODE"),
            ("event", "EVENT"),
            ("gpu", "GPU"),
            ("rule", "RULE"),
            ("result", "RESULT"),
            ("action", "ACTION"),
        ],
        empty=f"{events_path}: no events",
        wide=wide,
    )
    # Rule failures are long sentences, so they follow the table instead of squeezing it.
    for row in rows:
        for error in row["errors"]:
            skipped = f"rule {error['rule']} skipped" if error["rule"] else "no rule ran"
            click.echo(f"line {row['line']}: {skipped}: {error['message']}")
    if verdicts:
        click.echo(f"\nverdicts at {at}, the worst result within {window}:")
    for verdict in verdicts:
        node = verdict["nodeId"] or "node"
        cause = f" (rule {verdict['rule']}, line {verdict['line']})" if verdict["rule"] else ""
        click.echo(f"{node}: {verdict['health']}, action {verdict['action']}{cause}")


def _read_events(path: str) -> list[tuple[int, str, HealthEvent]]:
    """(line number, node id, event) for every non-blank line; ConfigError lists bad lines."""
    from navarch.api import codec, wire
    from navarch.api.mapping import health_event_from_wire

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except FileNotFoundError:
        raise ConfigError(path, ["file not found"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError(path, [f"cannot read file: {exc.strerror}"]) from None
    records, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: malformed JSON at column {exc.colno} ({exc.msg})")
            continue
        except ValueError:
            problems.append(f"line {number}: a number has too many digits")
            continue
        if not isinstance(value, dict):
            problems.append(f"line {number}: expected a JSON object (one event per line)")
            continue
        node = value.pop("nodeId", value.pop("node_id", ""))
        if not isinstance(node, str):
            problems.append(f"line {number}: nodeId: expected a string")
            continue
        try:
            event = health_event_from_wire(codec.structure(value, wire.HealthEvent))
            records.append((number, node, event))
        except codec.ApiError as exc:
            problems.append(f"line {number}: {exc.message}")
    if problems:
        raise ConfigError(path, problems)
    return records


def _judge(
    checked: Policy, window: float, records: list[tuple[int, str, HealthEvent]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """The rows of the events, each node's verdict, and the time of the verdicts."""
    from datetime import UTC, datetime

    from navarch.clock import format_timestamp
    from navarch.health import HealthJudge

    judge = HealthJudge(checked, window)
    lines: dict[int, int] = {}  # id(match) -> line, to name the line behind each verdict
    nodes: dict[str, None] = {}
    now = float("-inf")
    rows = []
    for number, node, event in records:
        # The events' own times are the clock; one out of order is judged at the latest time.
        now = max(now, event.time.timestamp())
        nodes.setdefault(node)
        (match,) = judge.evaluate(node, [event], now).matches
        lines[id(match)] = number
        rows.append(
            {
                "line": number,
                "nodeId": node,
                "time": format_timestamp(event.time),
                "type": event.type.value,
                "gpuIndex": event.gpu_index,
                "xid": event.xid,
                "rule": match.rule,
                "result": match.result.value,
                "action": match.action.value,
                "errors": [{"rule": e.rule, "message": e.message} for e in match.errors],
            }
        )
    verdicts = []
    for node in nodes:
        verdict = judge.verdict(node, now)
        verdicts.append(
            {
                "nodeId": node,
                "health": verdict.health.value,
                "action": verdict.action.value,
                "rule": verdict.rule,
                "line": lines[id(verdict.cause)] if verdict.cause else None,
            }
        )
    at = format_timestamp(datetime.fromtimestamp(now, UTC)) if records else None
    return rows, verdicts, at


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    event = row["type"] + (f" {row['xid']}" if row["xid"] else "")
    return {
        **row,
        "node": row["nodeId"] or None,
        "event": event,
        "gpu": row["gpuIndex"] if row["gpuIndex"] >= 0 else None,
        "rule": row["rule"] or None,
    }
