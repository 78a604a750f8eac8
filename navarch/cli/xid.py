"""`navarch xid scan|explain`: XID errors in a kernel log, and what each code means."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from navarch.cli.output import (
    Column,
    camel_case,
    output_option,
    print_json,
    print_table,
    wants_json,
    wide_option,
)
from navarch.errors import NavarchError, UsageError

_MAX_LINE = 65536  # a longer line is scanned in pieces rather than held whole

if TYPE_CHECKING:
    from navarch.telemetry.kmsg import KmsgReader, KmsgRecord
    from navarch.telemetry.xid import XidEvent


@click.group()
def xid() -> None:
    """Find NVIDIA XID errors in kernel logs and explain XID codes."""


@xid.command()
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="A kernel log: dmesg or journalctl text, or kmsg records. '-' reads standard input.",
)
@click.option("--kmsg", "live", is_flag=True, help="Read the live kernel log, /dev/kmsg.")
@click.option("--follow", is_flag=True, help="With --kmsg, keep printing new XIDs until stopped.")
@wide_option
@output_option
def scan(
    path: str | None, live: bool, follow: bool, wide: bool, output: str, as_json: bool
) -> None:
    """List the XID errors in a kernel log with what NVIDIA's catalog says about each.

    JSON output has one object per line, so it streams with --follow.
    """
    if (path is None) == (not live):
        raise UsageError("give either --file FILE or --kmsg")
    if follow and not live:
        raise UsageError("--follow works with --kmsg only")
    as_json = wants_json(output, as_json)
    if path is not None:
        with _open(path) as f:
            lines = iter(functools.partial(f.readline, _MAX_LINE), b"")
            _print(_file_rows(lines), "line", as_json, wide)
    elif follow:
        import trio

        trio.run(_follow, as_json)
    else:
        with _open_kmsg() as reader:
            rows = [_row(e, "seq", e.seq) for e in _events(reader.read_available(only_xid=True))]
        _print(iter(rows), "seq", as_json, wide)


@xid.command()
@click.argument("code", type=int)
@output_option
def explain(code: int, output: str, as_json: bool) -> None:
    """Show what NVIDIA's catalog says about XID CODE."""
    from navarch.telemetry.xid_catalog import catalog

    cat = catalog()
    entry = cat.entries.get(code)
    if entry is None:
        raise UsageError(f"XID {code} is not in navarch's XID catalog; docs/xid.md lists the codes")
    if wants_json(output, as_json):
        print_json(
            {
                "code": entry.code,
                "mnemonic": entry.mnemonic,
                "name": entry.name,
                "immediate": entry.immediate,
                "investigatory": entry.investigatory,
                "description": entry.description,
                "nvidiaDescription": entry.nvidia_description,
                "architectures": list(entry.architectures),
                "unused": entry.unused,
            }
        )
        return
    click.echo(f"XID {entry.code}: {entry.name} ({entry.mnemonic})")
    click.echo(entry.description)
    if entry.unused:
        click.echo("NVIDIA marks this code unused; older drivers may still log it.")
    click.echo(f"Applies to: {', '.join(entry.architectures) or 'none of A100, H100, B100, GB200'}")
    for label, bucket in (("Immediate", entry.immediate), ("Investigatory", entry.investigatory)):
        meaning = f"{bucket}: {cat.buckets[bucket]}" if bucket else "the catalog gives none"
        click.echo(f"{label}: {meaning}")


def _open(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None


def _open_kmsg() -> KmsgReader:
    from navarch.telemetry.kmsg import DEVICE, KmsgReader

    try:
        return KmsgReader(from_start=True)
    except OSError as exc:
        raise NavarchError(f"{DEVICE}: {exc.strerror}") from None


def _events(records: list[KmsgRecord]) -> Iterator[XidEvent]:
    return (r.xid for r in records if r.xid is not None)


def _file_rows(lines: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    from navarch.telemetry.kmsg import scan_log

    for number, event in scan_log(lines):
        yield _row(event, "line", number)


async def _follow(as_json: bool) -> None:
    with _open_kmsg() as reader:
        async for event in reader.xid_events():
            row = _row(event, "seq", event.seq)
            if as_json:
                _print_json_line(row)
            else:
                click.echo("  ".join(_cell(row.get(c.key)) for c in _columns("seq")))
            sys.stdout.flush()


def _row(event: Any, where: str, at: int | None) -> dict[str, Any]:
    import attrs

    from navarch.telemetry.xid_catalog import lookup

    entry = lookup(event.code)
    row: dict[str, Any] = {where: at, **attrs.asdict(event)}
    if event.nvlink5 is not None:
        row["nvlink5"]["subcode"] = event.nvlink5.subcode
    row = camel_case(row)
    row.update(
        name=entry.name if entry else None,
        mnemonic=entry.mnemonic if entry else None,
        immediate=entry.immediate if entry else None,
        investigatory=entry.investigatory if entry else None,
    )
    return row


def _columns(where: str) -> list[Column]:
    return [
        Column(where, where.capitalize(), priority=5),
        Column("code", "XID", justify="right"),
        Column("name", "Name", priority=1, squeeze_to=24),
        Column("pciBusId", "PCI bus ID"),
        Column("pid", "PID", priority=4),
        Column("processName", "Process", priority=3),
        Column("immediate", "Immediate", priority=2),
        Column("message", "Message", priority=1, squeeze_to=20),
    ]


def _cell(value: Any) -> str:
    return "-" if value is None or value == -1 else str(value)


def _print_json_line(row: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(row) + "\n")


def _print(rows: Iterator[dict[str, Any]], where: str, as_json: bool, wide: bool) -> None:
    if as_json:
        for row in rows:
            _print_json_line(row)
        return
    table = [{k: " ".join(_cell(v).split()) for k, v in row.items()} for row in rows]
    print_table(table, _columns(where), empty="no XID errors found", wide=wide)
