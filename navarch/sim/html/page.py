"""The page that holds the charts and tables: its header, the summary cards, its CSS and script.

The CSS and the script are inline, because the page loads nothing from anywhere.
"""

from __future__ import annotations

from html import escape
from typing import Any

from navarch.sim.html.charts import charts_section
from navarch.sim.html.tables import assertions_table, failures_table, outages_table, timeline_table
from navarch.sim.html.text import clock, number, secs


def render_html(report: dict[str, Any]) -> str:
    """Renders a simulator report (the dict written as report.json) as one HTML page."""
    parts = [
        _header(report),
        _summary(report["summary"]),
        charts_section(report),
        assertions_table(report["assertions"]),
        failures_table(report["failures"]),
        outages_table(report["outages"]),
        timeline_table(report["timeline"], report["timeline_dropped"]),
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


def _header(report: dict[str, Any]) -> str:
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


def _summary(summary: dict[str, Any]) -> str:
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


def _spread(stats: dict[str, Any]) -> str:
    if not stats["count"]:
        return "no samples"
    return f"p90 {secs(stats['p90'])}, max {secs(stats['max'])} ({stats['count']:,} samples)"


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
