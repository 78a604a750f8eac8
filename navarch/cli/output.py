"""Listing output shared by every command: a rich table for people, JSON for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import click

Column = tuple[str, str]  # (key in the row mapping, column heading)


def output_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds `-o/--output table|json` and its alias `--json` to a command."""
    fn = click.option(
        "--json",
        "as_json",
        is_flag=True,
        default=False,
        help="Same as -o json.",
    )(fn)
    fn = click.option(
        "-o",
        "--output",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="Output format.",
    )(fn)
    return fn


def wants_json(output: str, as_json: bool) -> bool:
    return as_json or output == "json"


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def print_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    title: str | None = None,
    empty: str = "nothing to show",
) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = list(rows)
    console = Console(soft_wrap=True)
    if not rows:
        console.print(empty)
        return
    table = Table(title=title, show_edge=False, header_style="bold")
    for _, heading in columns:
        table.add_column(heading)
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for key, _ in columns))
    console.print(table)


def emit(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    output: str,
    as_json: bool,
    title: str | None = None,
    empty: str = "nothing to show",
) -> None:
    """Prints `rows` as JSON (the whole mappings) or as a table of `columns`."""
    if wants_json(output, as_json):
        print_json(list(rows))
    else:
        print_table(rows, columns, title=title, empty=empty)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    return str(value)
