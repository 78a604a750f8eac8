"""Listing output shared by every command: a table for people, JSON for programs.

Tables fit the terminal: at a narrow width a column first takes its short heading, long cells
are cut to a useful minimum, then the least important columns are left out, and only then are
cells cut further. Headings are never cut, and a row never wraps. `--wide` shows every column
in full.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs
import click

if TYPE_CHECKING:
    from rich.table import Table


@attrs.frozen
class Column:
    """One column of a table."""

    key: str  # the key in each row mapping
    heading: str
    # The lower, the more important. 0 is never left out; higher numbers go first.
    priority: int = 0
    short: str = ""  # a heading for narrow terminals
    # Cells may be cut to this width before any column is left out; 0 means not before.
    squeeze_to: int = 0
    justify: Literal["left", "right"] = "left"


ColumnSpec = Column | tuple[str, str]


def columns_of(specs: Sequence[ColumnSpec]) -> list[Column]:
    """Columns from `Column`s or `(key, heading)` pairs; a pair ranks by its position."""
    return [
        spec if isinstance(spec, Column) else Column(spec[0], spec[1], priority=i)
        for i, spec in enumerate(specs)
    ]


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


def wide_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds `--wide`: every column in full, whatever the terminal's width."""
    return click.option(
        "--wide", is_flag=True, help="Show every column in full, whatever the terminal's width."
    )(fn)


def wants_json(output: str, as_json: bool) -> bool:
    return as_json or output == "json"


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def camel_case(value: Any) -> Any:
    """`value` with every mapping key in lowerCamelCase, as the API writes them."""
    if isinstance(value, Mapping):
        return {_camel(str(k)): camel_case(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [camel_case(v) for v in value]
    return value


def _camel(key: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), key)


def terminal_width() -> int | None:
    """The width tables must fit: `COLUMNS`, else the terminal's; None when not a terminal."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


@attrs.frozen
class Laid:
    """A column as it is drawn: its heading and width."""

    index: int  # of the column among those asked for
    column: Column
    heading: str
    width: int


def layout(
    columns: Sequence[Column], cells: Sequence[Sequence[str]], width: int | None
) -> list[Laid]:
    """Chooses the columns, headings and widths that fit `width` (None: no limit)."""
    from rich.cells import cell_len

    def natural(i: int, heading: str) -> Laid:
        return Laid(
            i, columns[i], heading, max([cell_len(heading), *(cell_len(r[i]) for r in cells)])
        )

    laid = [natural(i, c.heading) for i, c in enumerate(columns)]
    if width is None:
        return laid

    def excess() -> int:
        return table_width(laid) - width

    least_first = sorted(range(len(columns)), key=lambda i: (-columns[i].priority, -i))
    for i in least_first:
        if excess() > 0 and columns[i].short:
            laid[i] = natural(i, columns[i].short)
    for i, x in enumerate(laid):
        if excess() > 0 and x.column.squeeze_to:
            floor = max(x.column.squeeze_to, cell_len(x.heading))
            laid[i] = attrs.evolve(x, width=max(floor, x.width - excess()))
    for i in least_first:
        if excess() > 0 and columns[i].priority > 0:
            laid = [x for x in laid if x.index != i]
    for j, x in enumerate(laid):
        room = natural(x.index, x.heading).width - x.width
        if room > 0 and excess() < 0:
            laid[j] = attrs.evolve(x, width=x.width + min(room, -excess()))
    for j, x in enumerate(laid):
        if x.heading != x.column.heading and excess() <= 0:
            full = natural(x.index, x.column.heading)
            full = attrs.evolve(full, width=max(x.width, cell_len(full.heading)))
            if excess() + full.width - x.width <= 0:
                laid[j] = full
    while excess() > 0:
        spare, j = max((x.width - cell_len(x.heading), j) for j, x in enumerate(laid))
        if spare <= 0:
            break
        laid[j] = attrs.evolve(laid[j], width=laid[j].width - min(spare, excess()))
    return laid


def table_width(laid: Sequence[Laid]) -> int:
    return sum(x.width for x in laid) + 3 * len(laid) - 1


def make_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[ColumnSpec],
    *,
    wide: bool = False,
    title: str | None = None,
) -> tuple[Table, int]:
    """A rich table of `rows` laid out for the terminal, and the width it needs."""
    from rich.table import Table
    from rich.text import Text

    cols = columns_of(columns)
    cells = [[_line(_cell(row.get(c.key))) for c in cols] for row in rows]
    laid = layout(cols, cells, None if wide else terminal_width())
    table = Table(title=title, show_edge=False, header_style="bold")
    for x in laid:
        table.add_column(
            x.heading,
            width=x.width,
            no_wrap=True,
            overflow="ellipsis",
            justify=x.column.justify,
        )
    for row_cells in cells:
        table.add_row(*(Text(row_cells[x.index]) for x in laid))
    return table, table_width(laid)


def print_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[ColumnSpec],
    *,
    title: str | None = None,
    empty: str = "nothing to show",
    wide: bool = False,
) -> None:
    """Prints `rows` as a table of `columns` that fits the terminal, or all of it with `wide`."""
    rows = list(rows)
    if not rows:
        click.echo(empty)
        return
    table, width = make_table(rows, columns, wide=wide, title=title)
    console(width).print(table)


def console(width: int) -> Any:
    """A rich console as wide as the table it prints, so that nothing is cut or wrapped."""
    from rich.console import Console

    return Console(width=max(width, terminal_width() or 0, 20), soft_wrap=True)


def emit(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[ColumnSpec],
    *,
    output: str,
    as_json: bool,
    title: str | None = None,
    empty: str = "nothing to show",
    wide: bool = False,
) -> None:
    """Prints `rows` as JSON (the whole mappings) or as a table of `columns`."""
    if wants_json(output, as_json):
        print_json(list(rows))
    else:
        print_table(rows, columns, title=title, empty=empty, wide=wide)


def _line(text: str) -> str:
    return " ".join(text.splitlines()) if "\n" in text or "\r" in text else text


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
