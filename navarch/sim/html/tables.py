"""The report's tables: assertions, failures, outages and the timeline.

Failures, outages and the timeline each get a filter box and show at most MAX_TABLE_ROWS rows,
saying how many more report.json holds, so that the page of a run with thousands of failures
still opens.
"""

from __future__ import annotations

from collections import Counter
from html import escape
from typing import Any

from navarch.sim.html.text import clock, note, optional, secs

MAX_TABLE_ROWS = 500


def assertions_table(assertions: list[dict[str, Any]]) -> str:
    if not assertions:
        return f"<section><h2>Assertions</h2>{note('The scenario has no assertions.')}</section>"
    failed = sum(1 for a in assertions if not a["passed"])
    rows = []
    for a in assertions:
        cls, word = ("pass", "passed") if a["passed"] else ("fail", "failed")
        at = "" if a["at"] is None else clock(a["at"])
        rows.append(
            f'<tr class="{cls}"><td><span class="pill {cls}">{word}</span></td>'
            f"<td>{escape(a['check'])}</td><td>{escape(a['description'])}</td>"
            f"<td>{escape(a['message'])}</td><td class=num>{at}</td>"
            f"<td>{escape(a['source'])}</td></tr>"
        )
    head = _thead(["result", "check", "description", "message", "at", "source"])
    verdict = f"{len(assertions) - failed:,} of {len(assertions):,} passed"
    return (
        f'<section><h2>Assertions <small>{verdict}</small></h2><table class="assertions">'
        f"{head}<tbody>{''.join(rows)}</tbody></table></section>"
    )


def failures_table(failures: list[dict[str, Any]]) -> str:
    if not failures:
        return f"<section><h2>Failures</h2>{note('No failures were injected.')}</section>"
    rows = [
        f"<tr><td class=num>{clock(f['t'])}</td><td>{escape(f['node'])}</td>"
        f"<td>{escape(f['type'])}</td><td class=num>{optional(f['xid'])}</td>"
        f"<td class=num>{optional(f['gpu'])}</td><td>{escape(f['source'])}</td>"
        f'<td><span class="outcome {_outcome_class(f["outcome"])}">{escape(f["outcome"])}'
        f"</span>{_replaced_by(f)}</td>"
        f"<td class=num>{secs(f['detection_latency_s'])}</td>"
        f"<td class=num>{secs(f['time_to_replacement_s'])}</td></tr>"
        for f in failures[:MAX_TABLE_ROWS]
    ]
    head = _thead(
        ["t", "node", "type", "xid", "gpu", "source", "outcome", "detection", "replacement"]
    )
    return _table_section("Failures", "failures", head, rows, len(failures), "failures")


def _replaced_by(failure: dict[str, Any]) -> str:
    if not failure["replaced_by"]:
        return ""
    return f' <span class="muted">by {escape(failure["replaced_by"])}</span>'


def _outcome_class(outcome: str) -> str:
    if outcome in ("replaced", "recovered"):
        return "good"
    if outcome in ("undetected", "unhealthy"):
        return "bad"
    return "neutral"


def outages_table(outages: list[dict[str, Any]]) -> str:
    if not outages:
        return ""
    rows = [
        f"<tr><td>{escape(o['name'])}</td><td>{escape(o['scope'])}</td>"
        f"<td>{escape(o['target'])}</td><td class=num>{clock(o['start_s'])}</td>"
        f"<td class=num>{secs(o['duration_s'])}</td><td class=num>{o['nodes']:,}</td></tr>"
        for o in outages[:MAX_TABLE_ROWS]
    ]
    head = _thead(["name", "scope", "target", "start", "duration", "nodes"])
    return _table_section("Outages", "outages", head, rows, len(outages), "outages")


# What a fleet does as it comes up, which the timeline folds into one row where it opens.
_ROUTINE = {
    "scenario.start_fleet": ("fleet start", "fleet starts"),
    "instance.adopted": ("instance adopted", "instances adopted"),
    "instance.provisioned": ("instance provisioned", "instances provisioned"),
    "node.health_changed": ("node healthy", "nodes healthy"),
}


def timeline_table(timeline: list[dict[str, Any]], dropped: int) -> str:
    if not timeline:
        return f"<section><h2>Timeline</h2>{note('The timeline is empty.')}</section>"
    startup = 0
    while startup < len(timeline) and _routine(timeline[startup]):
        startup += 1
    rows = []
    if startup >= 3:
        rows.append(_startup_row(timeline[:startup]))
    else:
        startup = 0
    rows += [
        f"<tr><td class=num>{clock(e['t'])}</td><td>{escape(e['kind'])}</td>"
        f"<td>{escape(e['node'])}</td><td>{escape(e['detail'])}</td></tr>"
        for e in timeline[startup : startup + MAX_TABLE_ROWS - len(rows)]
    ]
    head = _thead(["t", "kind", "node", "detail"])
    extra = (
        note(f"The simulator recorded {dropped:,} further entries past its timeline cap.")
        if dropped
        else ""
    )
    return _table_section("Timeline", "timeline", head, rows, len(timeline), "entries", extra)


def _routine(entry: dict[str, Any]) -> bool:
    if entry["kind"] == "node.health_changed":
        return bool(entry["detail"] == "health healthy")
    return entry["kind"] in _ROUTINE


def _startup_row(entries: list[dict[str, Any]]) -> str:
    """One row for the routine entries that open a run: how many of each, and over what time."""
    counts = Counter(e["kind"] for e in entries)
    parts = []
    for kind, (one, many) in _ROUTINE.items():
        if counts[kind]:
            parts.append(f"{counts[kind]:,} {one if counts[kind] == 1 else many}")
    first, last = entries[0]["t"], entries[-1]["t"]
    when = clock(first) if first == last else f"{clock(first)}\u2013{clock(last)}"
    return (
        f'<tr class="folded"><td class=num>{when}</td><td>startup</td><td></td>'
        f"<td>{escape(', '.join(parts))} ({len(entries):,} entries, in report.json)</td></tr>"
    )


def _table_section(
    title: str, key: str, head: str, rows: list[str], total: int, noun: str, extra: str = ""
) -> str:
    capped = ""
    if total > len(rows):
        capped = note(
            f"Showing the first {len(rows):,} of {total:,} {noun}; "
            f"{total - len(rows):,} more are in report.json."
        )
    search = (
        f'<input type="search" class="filter" data-table="{key}" '
        f'placeholder="Filter {escape(title.lower())}" aria-label="Filter {escape(title.lower())}">'
    )
    return (
        f'<section><div class="section-head"><h2>{escape(title)} <small>{total:,}</small></h2>'
        f"{search}</div>{capped}{extra}"
        f'<div class="scroll"><table id="{key}">{head}<tbody>{"".join(rows)}</tbody>'
        f'</table></div><p class="note" id="{key}-none" hidden>No row matches the filter.</p>'
        "</section>"
    )


def _thead(columns: list[str]) -> str:
    return "<thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in columns) + "</tr></thead>"
