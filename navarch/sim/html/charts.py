"""The report's charts: nodes by status over time, failures, pool sizes and detection latency.

A chart draws at most a few hundred points and markers, taken evenly from the run, so that the
report of a long run on thousands of nodes stays small and opens fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import Any, TypeVar

from navarch.sim.html.plot import (
    BOTTOM,
    TOP,
    WIDE,
    WIDTH,
    Plot,
    coord,
    pick_step,
    point_list,
    svg_element,
    value_ticks,
)
from navarch.sim.html.text import clock, note, number, optional, secs

T = TypeVar("T")

MAX_CHART_POINTS = 300
MAX_MARKERS = 300
TOP_XIDS = 12
TOP_TYPES = 12

STATUS_COLOURS = {
    "active": "#16a34a",
    "cordoned": "#f59e0b",
    "draining": "#ea580c",
    "drained": "#64748b",
    "unhealthy": "#dc2626",
    "terminated": "#a8a29e",
}
# The remediation chart's series: a sample's key, its label and its colour. Nodes in an episode that
# goes on, held for an operator, and out of service in no episode at all (a verdict that only
# cordons or drains, or a reset or reboot of a pool with `auto_recover` off).
_REMEDIATION_SERIES = (
    ("in_episodes", "In an episode", "#ea580c"),
    ("remediations_held", "Held for an operator", "#dc2626"),
    ("out_of_service_outside_episodes", "Out of service, no episode", "#64748b"),
)
SERIES_COLOURS = ["#2563eb", "#9333ea", "#0d9488", "#db2777", "#ca8a04", "#4f46e5", "#65a30d"]
# Each pool's line has its own dash too, so that pools of one size stay apart where they overlap.
SERIES_DASHES = ["", "8 4", "2 3", "12 3 2 3"]
FAILURE_COLOUR = "#dc2626"
RECOVERY_COLOUR = "#16a34a"
BAR_COLOUR = "#2563eb"
OUTAGE_SWATCH = "#f6c6c6"


def charts_section(report: dict[str, Any]) -> str:
    samples = report["samples"]
    failures = report["failures"]
    end = max([report["duration_s"] or 0.0] + [s["t"] for s in samples])
    start = min([0.0] + [s["t"] for s in samples])
    span = (start, end if end > start else start + 1.0)
    shown = _downsample(samples, MAX_CHART_POINTS)
    if len(shown) == 1:
        shown = [shown[0], {**shown[0], "t": span[1]}]

    outage_key = [("Outage", OUTAGE_SWATCH)] if report["outages"] else []
    wide = []
    if shown:
        wide.append(
            _figure(
                "Nodes by status",
                _status_chart(WIDE, shown, span, report["outages"], STATUS_COLOURS),
                _legend([(s.capitalize(), c) for s, c in STATUS_COLOURS.items()] + outage_key),
                wide=True,
            )
        )
        # Next to thousands of active nodes the few in remediation are a sliver, so they get
        # their own scale; counted from episodes, as the summary counts them.
        remediating = [_remediation_counts(s) for s in shown]
        colours = {key: colour for key, _, colour in _REMEDIATION_SERIES}
        if any(v for s in remediating for v in s["by_status"].values()):
            wide.append(
                _figure(
                    "Nodes in remediation",
                    _status_chart(WIDE, remediating, span, report["outages"], colours),
                    _legend(
                        [(label, colour) for _, label, colour in _REMEDIATION_SERIES] + outage_key
                    ),
                    wide=True,
                )
            )
    if not failures and not report["failures_by_type"]:
        wide.append(_figure("Failures", note("No failures were injected."), wide=True))

    half: list[tuple[str, Callable[[int], str], str]] = []
    if (failures or report["failures_by_type"]) and shown:
        half.append(
            (
                "Failures and recoveries",
                lambda w: _cumulative_chart(w, shown, span),
                _legend([("Failures", FAILURE_COLOUR), ("Recoveries", RECOVERY_COLOUR)]),
            )
        )
    pools = sorted({name for s in samples for name in s["pools"]})
    if pools:
        colours = {p: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, p in enumerate(pools)}
        dashes = {p: SERIES_DASHES[i % len(SERIES_DASHES)] for i, p in enumerate(pools)}
        legend: list[tuple[str, str] | tuple[str, str, str]] = [
            (p, colours[p], dashes[p]) for p in pools
        ]
        if report["scaling"]:
            legend.append(("\u25b2 scale up  \u25bc scale down  \u25cf other decision", ""))
        half.append(
            (
                "Pool size",
                lambda w: _pool_chart(
                    w, shown, samples, report["scaling"], pools, (colours, dashes), span
                ),
                _legend(legend),
            )
        )
    if failures or report["failures_by_type"]:
        half.append(("Failures by type", lambda w: _type_chart(w, report["failures_by_type"]), ""))
        half.append(("Top XID codes", lambda w: _xid_chart(w, report["failures_by_xid"]), ""))
        half.append(("Detection latency", lambda w: _latency_chart(w, failures), ""))

    figures = wide
    for i, (title, draw, key) in enumerate(half):
        # An odd chart out fills the last row rather than leaving half of it empty.
        alone = i == len(half) - 1 and len(half) % 2 == 1
        figures.append(_figure(title, draw(WIDE if alone else WIDTH), key, wide=alone))
    return f'<section class="charts">{"".join(figures)}</section>'


def _figure(title: str, body: str, legend: str = "", *, wide: bool = False) -> str:
    cls = "chart wide" if wide else "chart"
    return f'<figure class="{cls}"><h3>{escape(title)}</h3>{body}{legend}</figure>'


def _legend(items: Iterable[tuple[str, str] | tuple[str, str, str]]) -> str:
    """The legend: (label, colour) for a swatch, (label, colour, dash) for a line sample, and
    (label, "") for a hint."""
    spans = []
    for label, colour, *dash in items:
        if not colour:
            spans.append(f'<span class="hint">{escape(label)}</span>')
        elif dash:
            sample = (
                f'<svg width="22" height="8" aria-hidden="true"><line x1="0" y1="4" x2="22" '
                f'y2="4" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash[0]}"/></svg>'
            )
            spans.append(f"<span>{sample}{escape(label)}</span>")
        else:
            spans.append(f'<span><i style="background:{colour}"></i>{escape(label)}</span>')
    return f'<div class="legend">{"".join(spans)}</div>'


def _remediation_counts(sample: dict[str, Any]) -> dict[str, Any]:
    """A sample as the remediation chart stacks it; a report from before these keys counts the
    open episodes as in progress."""
    held = sample.get("remediations_held", 0)
    return {
        "t": sample["t"],
        "by_status": {
            "in_episodes": sample["remediations_open"] - held,
            "remediations_held": held,
            "out_of_service_outside_episodes": sample.get("out_of_service_outside_episodes", 0),
        },
    }


def _status_chart(
    width: int,
    shown: list[dict[str, Any]],
    span: tuple[float, float],
    outages: list[dict[str, Any]],
    colours: dict[str, str],
) -> str:
    totals = [sum(s["by_status"].get(k, 0) for k in colours) for s in shown]
    plot = Plot(width, 300 if len(colours) > 4 else 240, span, max(totals, default=0), "nodes")
    shapes = []
    below = [0] * len(shown)
    for status, colour in colours.items():
        above = [b + s["by_status"].get(status, 0) for b, s in zip(below, shown, strict=True)]
        if any(a != b for a, b in zip(above, below, strict=True)):
            top = [(plot.x(s["t"]), plot.y(v)) for s, v in zip(shown, above, strict=True)]
            bottom = [(plot.x(s["t"]), plot.y(v)) for s, v in zip(shown, below, strict=True)]
            shapes.append(
                f'<polygon fill="{colour}" fill-opacity="0.85" '
                f'points="{point_list(top + bottom[::-1])}"><title>{status}</title></polygon>'
            )
        below = above
    for outage in outages[:MAX_MARKERS]:
        x0 = plot.x(outage["start_s"])
        x1 = plot.x(outage["start_s"] + outage["duration_s"])
        tip = f"outage {outage['name']}: {outage['scope']} {outage['target']}"
        shapes.append(
            f'<rect class="outage" x="{coord(x0)}" y="{TOP}" width="{coord(max(x1 - x0, 1.0))}" '
            f'height="{coord(plot.height)}"><title>{escape(tip)}</title></rect>'
        )
    return plot.svg("".join(shapes))


def _cumulative_chart(width: int, shown: list[dict[str, Any]], span: tuple[float, float]) -> str:
    peak = max(max(s["failures_total"], s["recoveries_total"]) for s in shown)
    plot = Plot(width, 260, span, peak, "failures")
    lines = [
        plot.line([(s["t"], s["failures_total"]) for s in shown], FAILURE_COLOUR),
        plot.line([(s["t"], s["recoveries_total"]) for s in shown], RECOVERY_COLOUR),
    ]
    return plot.svg("".join(lines))


def _pool_chart(
    width: int,
    shown: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    scaling: list[dict[str, Any]],
    pools: list[str],
    styles: tuple[dict[str, str], dict[str, str]],
    span: tuple[float, float],
) -> str:
    colours, dashes = styles
    peak = max(
        [v for s in shown for v in s["pools"].values()]
        + [d["to"] for d in scaling if d["to"] is not None]
        + [0]
    )
    plot = Plot(width, 260, span, peak, "nodes")
    shapes = [
        plot.line(
            [(s["t"], s["pools"][p]) for s in shown if p in s["pools"]], colours[p], dashes[p]
        )
        for p in pools
    ]
    for decision in _downsample(scaling, MAX_MARKERS):
        size = decision["to"]
        if size is None:
            size = _pool_size_at(samples, decision["pool"], decision["t"])
        if size is None:
            continue
        colour = colours.get(decision["pool"], "#334155")
        tip = (
            f"{clock(decision['t'])} {decision['pool']} {decision['kind']}: "
            f"{optional(decision['from'])} \u2192 {optional(decision['to'])}. {decision['reason']}"
        )
        shapes.append(
            plot.marker(decision["t"], size, colour, decision["from"], decision["to"], tip)
        )
    return plot.svg("".join(shapes))


def _pool_size_at(samples: list[dict[str, Any]], pool: str, t: float) -> int | None:
    size = None
    for sample in samples:
        if sample["t"] > t:
            break
        size = sample["pools"].get(pool, size)
    return size


def _type_chart(width: int, by_type: dict[str, int]) -> str:
    if not by_type:
        return note("No failures were injected.")
    rows = sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))
    return _bar_chart(width, rows[:TOP_TYPES], len(rows) - TOP_TYPES, ("type", "types"))


def _xid_chart(width: int, by_xid: dict[str, int]) -> str:
    if not by_xid:
        return note("No failure carried an XID code.")
    rows = sorted(by_xid.items(), key=lambda kv: (-kv[1], _xid_order(kv[0])))
    return _bar_chart(width, rows[:TOP_XIDS], len(rows) - TOP_XIDS, ("XID code", "XID codes"))


def _xid_order(code: str) -> tuple[int, str]:
    return (int(code), "") if code.isdigit() else (1 << 30, code)


def _bar_chart(
    width: int, rows: Sequence[tuple[str, int]], hidden: int, nouns: tuple[str, str]
) -> str:
    label_width, row_height = 150, 24
    height = TOP + row_height * len(rows) + BOTTOM
    vmax, ticks = value_ticks(max(v for _, v in rows))
    left, right = label_width, width - 48
    parts = []
    for tick in ticks:
        x = left + (right - left) * tick / vmax
        parts.append(
            f'<line class="grid" x1="{coord(x)}" y1="{TOP}" x2="{coord(x)}" '
            f'y2="{height - BOTTOM}"/>'
            f'<text class="tick" x="{coord(x)}" y="{height - BOTTOM + 16}" '
            f'text-anchor="middle">{number(tick)}</text>'
        )
    for i, (label, value) in enumerate(rows):
        y = TOP + i * row_height
        length = (right - left) * value / vmax
        parts.append(
            f'<text class="label" x="{left - 8}" y="{coord(y + row_height / 2 + 4)}" '
            f'text-anchor="end">{_clipped(label, 22)}</text>'
            f'<rect fill="{BAR_COLOUR}" x="{left}" y="{coord(y + 4)}" width="{coord(length)}" '
            f'height="{row_height - 8}" rx="2"><title>{escape(label)}: {value:,}</title></rect>'
            f'<text class="value" x="{coord(left + length + 6)}" '
            f'y="{coord(y + row_height / 2 + 4)}">{value:,}</text>'
        )
    parts.append(
        f'<text class="axis" x="{coord((left + right) / 2)}" y="{height - 6}" '
        'text-anchor="middle">failures</text>'
    )
    svg = svg_element(width, height, "".join(parts))
    if hidden == 1:
        svg += note(f"1 less frequent {nouns[0]} is not shown.")
    elif hidden > 1:
        svg += note(f"{hidden:,} less frequent {nouns[1]} are not shown.")
    return svg


def _latency_chart(width: int, failures: list[dict[str, Any]]) -> str:
    latencies = [f["detection_latency_s"] for f in failures if f["detection_latency_s"] is not None]
    if not latencies:
        return note("No failure was detected, so there is no detection latency to show.")
    top = max(latencies)
    if top == min(latencies):
        # One value: a bar as wide as the chart would say nothing a sentence does not.
        count = len(latencies)
        every = "the one failure" if count == 1 else f"all {count:,} failures"
        return note(f"The detection latency of {every} was {secs(top)}.")
    step = pick_step(top / 20)
    # At least ten bins, so that a narrow spread is drawn as narrow bars, not one block.
    bins = [0] * max(int(top // step) + 1, 10)
    for value in latencies:
        bins[int(value // step)] += 1
    span = (0.0, step * len(bins))
    plot = Plot(width, 260, span, max(bins), "failures", "detection latency", x_unit=step)
    bars = []
    for i, count in enumerate(bins):
        if count:
            x0, x1 = plot.x(i * step), plot.x((i + 1) * step)
            y = plot.y(count)
            tip = f"{secs(i * step)}\u2013{secs((i + 1) * step)}: {count:,}"
            bars.append(
                f'<rect fill="{BAR_COLOUR}" x="{coord(x0 + 0.5)}" y="{coord(y)}" '
                f'width="{coord(max(x1 - x0 - 1, 0.5))}" height="{coord(plot.y(0) - y)}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    return plot.svg("".join(bars), seconds_axis=True)


def _downsample(items: list[T], limit: int) -> list[T]:
    """Every k-th item, at most `limit` in all, with the last kept so a chart reaches the end."""
    if len(items) <= limit:
        return items
    stride = math.ceil(len(items) / (limit - 1))
    kept = items[::stride]
    if kept[-1] is not items[-1]:
        kept.append(items[-1])
    return kept


def _clipped(text: str, limit: int) -> str:
    """The text escaped and cut to `limit` characters; a cut text keeps its whole in a tooltip."""
    if len(text) <= limit:
        return escape(text)
    return f"{escape(text[: limit - 1])}\u2026<title>{escape(text)}</title>"
