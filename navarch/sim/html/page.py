"""The simulator report as one self-contained HTML page: inline CSS, charts drawn as inline SVG.

The page loads nothing from anywhere, so it opens offline and can be attached to a ticket. Every
string taken from the report is escaped: node ids, reasons and messages are user data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from html import escape

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

MAX_TABLE_ROWS = 500
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
_REMEDIATION_STATUSES = ("unhealthy", "cordoned", "draining", "drained")
SERIES_COLOURS = ["#2563eb", "#9333ea", "#0d9488", "#db2777", "#ca8a04", "#4f46e5", "#65a30d"]
FAILURE_COLOUR = "#dc2626"
RECOVERY_COLOUR = "#16a34a"
BAR_COLOUR = "#2563eb"
OUTAGE_SWATCH = "#f6c6c6"


def render_html(report: dict) -> str:
    """Renders a simulator report (the dict written as report.json) as one HTML page."""
    parts = [
        _header(report),
        _summary(report["summary"]),
        _charts(report),
        _assertions(report["assertions"]),
        _failures_table(report["failures"]),
        _outages_table(report["outages"]),
        _timeline_table(report["timeline"], report["timeline_dropped"]),
    ]
    title = escape(f"navarch simulation: {report['scenario']['name']}")
    body = "\n".join(p for p in parts if p)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n<script>{_JS}</script>\n</body>\n</html>\n"
    )


def _header(report: dict) -> str:
    scenario = report["scenario"]
    passed = report["passed"]
    badge = (
        '<span class="badge pass">PASSED</span>'
        if passed
        else '<span class="badge fail">FAILED</span>'
    )
    meta = [
        ("seed", str(report["seed"])),
        ("mode", report["mode"]),
        ("simulated", clock(report["duration_s"])),
    ]
    if scenario["file"]:
        meta.append(("file", scenario["file"]))
    meta_html = "".join(f"<span><b>{escape(k)}</b> {escape(v)}</span>" for k, v in meta)
    description = (
        f'<p class="description">{escape(scenario["description"])}</p>'
        if scenario["description"]
        else ""
    )
    return (
        f'<header><div class="title"><h1>{escape(scenario["name"])}</h1>{badge}</div>'
        f'{description}<div class="meta">{meta_html}</div></header>'
    )


def _summary(summary: dict) -> str:
    det = summary["detection_latency_s"]
    ttr = summary["time_to_replacement_s"]
    cards = [
        ("Nodes started", number(summary["nodes_started"]), ""),
        ("Peak nodes", number(summary["nodes_peak"]), ""),
        ("Failures injected", number(summary["failures_injected"]), ""),
        ("Recovered", number(summary["failures_recovered"]), ""),
        (
            "Remediations completed",
            number(summary["remediations_completed"]),
            f"{number(summary['remediations_started'])} started, "
            f"{number(summary['remediations_held'])} held",
        ),
        ("Replacements", number(summary["replacements"]), ""),
        ("Detection latency p50", secs(det["p50"]), _spread(det)),
        ("Time to replacement p50", secs(ttr["p50"]), _spread(ttr)),
    ]
    items = "".join(
        f'<div class="card"><div class="label">{label}</div><div class="value">{value}</div>'
        f'<div class="sub">{escape(sub)}</div></div>'
        for label, value, sub in cards
    )
    return f'<section class="cards">{items}</section>'


def _spread(stats: dict) -> str:
    if not stats["count"]:
        return "no samples"
    return f"p90 {secs(stats['p90'])}, max {secs(stats['max'])} ({stats['count']:,} samples)"


def _charts(report: dict) -> str:
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
        # their own scale.
        remediating = {k: STATUS_COLOURS[k] for k in _REMEDIATION_STATUSES}
        if any(s["by_status"].get(k, 0) for s in shown for k in remediating):
            wide.append(
                _figure(
                    "Nodes in remediation",
                    _status_chart(WIDE, shown, span, report["outages"], remediating),
                    _legend([(s.capitalize(), c) for s, c in remediating.items()] + outage_key),
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
        legend = [(p, colours[p]) for p in pools]
        if report["scaling"]:
            legend.append(("\u25b2 scale up  \u25bc scale down  \u25cf other decision", ""))
        half.append(
            (
                "Pool size",
                lambda w: _pool_chart(w, shown, samples, report["scaling"], pools, colours, span),
                _legend(legend),
            )
        )
    if failures or report["failures_by_type"]:
        half.append(("Failures by type", lambda w: _type_chart(w, report["failures_by_type"]), ""))
        half.append(("Top XID codes", lambda w: _xid_chart(w, report["failures_by_xid"]), ""))
        half.append(("Detection latency", lambda w: _latency_chart(w, failures), ""))

    figures = wide
    for i, (title, draw, legend) in enumerate(half):
        # An odd chart out fills the last row rather than leaving half of it empty.
        alone = i == len(half) - 1 and len(half) % 2 == 1
        figures.append(_figure(title, draw(WIDE if alone else WIDTH), legend, wide=alone))
    return f'<section class="charts">{"".join(figures)}</section>'


def _figure(title: str, body: str, legend: str = "", *, wide: bool = False) -> str:
    cls = "chart wide" if wide else "chart"
    return f'<figure class="{cls}"><h3>{escape(title)}</h3>{body}{legend}</figure>'


def _legend(items: Iterable[tuple[str, str]]) -> str:
    spans = "".join(
        f'<span><i style="background:{colour}"></i>{escape(label)}</span>'
        if colour
        else f'<span class="hint">{escape(label)}</span>'
        for label, colour in items
    )
    return f'<div class="legend">{spans}</div>'


def _status_chart(
    width: int,
    shown: list[dict],
    span: tuple[float, float],
    outages: list[dict],
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


def _cumulative_chart(width: int, shown: list[dict], span: tuple[float, float]) -> str:
    peak = max(max(s["failures_total"], s["recoveries_total"]) for s in shown)
    plot = Plot(width, 260, span, peak, "failures")
    lines = [
        plot.line([(s["t"], s["failures_total"]) for s in shown], FAILURE_COLOUR),
        plot.line([(s["t"], s["recoveries_total"]) for s in shown], RECOVERY_COLOUR),
    ]
    return plot.svg("".join(lines))


def _pool_chart(
    width: int,
    shown: list[dict],
    samples: list[dict],
    scaling: list[dict],
    pools: list[str],
    colours: dict[str, str],
    span: tuple[float, float],
) -> str:
    peak = max(
        [v for s in shown for v in s["pools"].values()]
        + [d["to"] for d in scaling if d["to"] is not None]
        + [0]
    )
    plot = Plot(width, 260, span, peak, "nodes")
    shapes = [
        plot.line([(s["t"], s["pools"][p]) for s in shown if p in s["pools"]], colours[p])
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


def _pool_size_at(samples: list[dict], pool: str, t: float) -> int | None:
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
    return _bar_chart(width, rows[:TOP_TYPES], len(rows) - TOP_TYPES, "types")


def _xid_chart(width: int, by_xid: dict[str, int]) -> str:
    if not by_xid:
        return note("No failure carried an XID code.")
    rows = sorted(by_xid.items(), key=lambda kv: (-kv[1], _xid_order(kv[0])))
    return _bar_chart(width, rows[:TOP_XIDS], len(rows) - TOP_XIDS, "XID codes")


def _xid_order(code: str) -> tuple[int, str]:
    return (int(code), "") if code.isdigit() else (1 << 30, code)


def _bar_chart(width: int, rows: Sequence[tuple[str, int]], hidden: int, noun: str) -> str:
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
    if hidden > 0:
        svg += note(f"{hidden:,} less frequent {noun} are not shown.")
    return svg


def _latency_chart(width: int, failures: list[dict]) -> str:
    latencies = [f["detection_latency_s"] for f in failures if f["detection_latency_s"] is not None]
    if not latencies:
        return note("No failure was detected, so there is no detection latency to show.")
    top = max(latencies)
    step = pick_step(top / 20 if top > 0 else 1.0)
    bins = [0] * (int(top // step) + 1)
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


def _downsample(items: list, limit: int) -> list:
    """Every k-th item, at most `limit` in all, with the last kept so a chart reaches the end."""
    if len(items) <= limit:
        return items
    stride = math.ceil(len(items) / (limit - 1))
    kept = items[::stride]
    if kept[-1] is not items[-1]:
        kept.append(items[-1])
    return kept


def _assertions(assertions: list[dict]) -> str:
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


def _failures_table(failures: list[dict]) -> str:
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


def _replaced_by(failure: dict) -> str:
    if not failure["replaced_by"]:
        return ""
    return f' <span class="muted">by {escape(failure["replaced_by"])}</span>'


def _outcome_class(outcome: str) -> str:
    if outcome in ("replaced", "recovered"):
        return "good"
    if outcome in ("undetected", "unhealthy"):
        return "bad"
    return "neutral"


def _outages_table(outages: list[dict]) -> str:
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


def _timeline_table(timeline: list[dict], dropped: int) -> str:
    if not timeline:
        return f"<section><h2>Timeline</h2>{note('The timeline is empty.')}</section>"
    rows = [
        f"<tr><td class=num>{clock(e['t'])}</td><td>{escape(e['kind'])}</td>"
        f"<td>{escape(e['node'])}</td><td>{escape(e['detail'])}</td></tr>"
        for e in timeline[:MAX_TABLE_ROWS]
    ]
    head = _thead(["t", "kind", "node", "detail"])
    extra = (
        note(f"The simulator recorded {dropped:,} further entries past its timeline cap.")
        if dropped
        else ""
    )
    return _table_section("Timeline", "timeline", head, rows, len(timeline), "entries", extra)


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


def _clipped(text: str, limit: int) -> str:
    """The text escaped and cut to `limit` characters; a cut text keeps its whole in a tooltip."""
    if len(text) <= limit:
        return escape(text)
    return f"{escape(text[: limit - 1])}\u2026<title>{escape(text)}</title>"


_CSS = """
:root { --fg: #0f172a; --muted: #64748b; --line: #e2e8f0; --bg: #f8fafc; --card: #fff;
  --good: #15803d; --good-bg: #f0fdf4; --bad: #b91c1c; --bad-bg: #fef2f2; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 24px; }
header { margin-bottom: 20px; }
.title { display: flex; align-items: center; gap: 14px; flex-wrap: wrap; }
h1 { font-size: 26px; margin: 0; word-break: break-word; }
h2 { font-size: 18px; margin: 0 0 10px; }
h2 small { color: var(--muted); font-weight: 400; font-size: 14px; margin-left: 6px; }
h3 { font-size: 14px; margin: 0 0 6px; }
.description { margin: 6px 0; color: #334155; max-width: 900px; }
.meta { display: flex; gap: 18px; flex-wrap: wrap; color: var(--muted); }
.meta b { color: var(--fg); font-weight: 600; margin-right: 4px; }
.badge { border-radius: 6px; padding: 3px 10px; font-weight: 700; letter-spacing: .05em;
  font-size: 13px; }
.badge.pass { background: var(--good); color: #fff; }
.badge.fail { background: var(--bad); color: #fff; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 12px;
  margin-bottom: 20px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 10px 14px; }
.card .label { color: var(--muted); font-size: 12px; }
.card .value { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .sub { color: var(--muted); font-size: 12px; min-height: 1em; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px;
  margin-bottom: 24px; }
.chart { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 12px 14px; min-width: 0; }
.chart.wide { grid-column: 1 / -1; }
svg { display: block; font-size: 11px; }
svg .tick { fill: var(--muted); font-variant-numeric: tabular-nums; }
svg .label { fill: #334155; }
svg .value { fill: #334155; font-variant-numeric: tabular-nums; }
svg .axis { fill: #334155; font-size: 12px; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .axisline { stroke: #94a3b8; stroke-width: 1; }
svg .outage { fill: #dc2626; fill-opacity: .14; stroke: #dc2626; stroke-opacity: .5;
  stroke-dasharray: 4 3; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; margin-top: 6px; color: #334155;
  font-size: 12px; }
.legend i { display: inline-block; width: 11px; height: 11px; border-radius: 2px;
  margin-right: 5px; vertical-align: -1px; }
.legend .hint { color: var(--muted); }
.note { color: var(--muted); margin: 6px 0; }
section { margin-bottom: 24px; }
.section-head { display: flex; align-items: baseline; justify-content: space-between; gap: 12px; }
.filter { font: inherit; padding: 4px 8px; border: 1px solid #cbd5e1; border-radius: 6px;
  width: 260px; }
.scroll { max-height: 560px; overflow: auto; border: 1px solid var(--line); border-radius: 8px;
  background: var(--card); }
table { border-collapse: collapse; width: 100%; }
.assertions { background: var(--card); border: 1px solid var(--line); }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { position: sticky; top: 0; background: #f1f5f9; font-weight: 600; font-size: 12px;
  color: #334155; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.pass td { background: var(--good-bg); }
tr.fail td { background: var(--bad-bg); }
.pill { border-radius: 10px; padding: 1px 8px; font-size: 12px; font-weight: 600; color: #fff; }
.pill.pass { background: var(--good); }
.pill.fail { background: var(--bad); }
.outcome { font-weight: 600; }
.outcome.good { color: var(--good); }
.outcome.bad { color: var(--bad); }
.outcome.neutral { color: #a16207; }
.muted { color: var(--muted); }
"""

# Filters a table's rows by the text typed into its search box.
_JS = """
document.querySelectorAll("input.filter").forEach(function (box) {
  box.addEventListener("input", function () {
    var query = box.value.toLowerCase();
    var rows = document.querySelectorAll("#" + box.dataset.table + " tbody tr");
    var shown = 0;
    rows.forEach(function (row) {
      row.hidden = query !== "" && row.textContent.toLowerCase().indexOf(query) < 0;
      shown += row.hidden ? 0 : 1;
    });
    document.getElementById(box.dataset.table + "-none").hidden = shown > 0;
  });
});
"""
