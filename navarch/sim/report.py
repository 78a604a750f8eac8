"""What a run records, and the report it writes: `report.json` and `report.html`.

The `Recorder` hears every control-plane event (it is a notifier of the control plane under test)
and every failure the simulator injects, and follows each failure to its outcome: how long until
the node was judged bad (detection latency), and until its successor was provisioned (time to
replacement). Times are seconds of simulated time since the start of the run, so the report of a
seed is the same on every run.
"""

from __future__ import annotations

import collections
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from navarch.model import Event, HealthStatus, Node, NodeStatus, Remediation, RemediationStep
from navarch.sim.fleet import Failure
from navarch.sim.scenario import Scenario

REPORT_VERSION = 1
TIMELINE_CAP = 5000
# Control-plane events worth a line in the timeline; the rest are counted only.
_TIMELINE_KINDS = (
    "node.status_changed",
    "node.health_changed",
    "remediation.",
    "pool.scaled",
    "pool.provision_failed",
    "pool.manual_target",
    "instance.provisioned",
    "instance.adopted",
    "health.action_required",
)
_REPLACING = "replacing "
_OUT_OF_SERVICE = (
    NodeStatus.UNHEALTHY,
    NodeStatus.CORDONED,
    NodeStatus.DRAINING,
    NodeStatus.DRAINED,
)


@attrs.define
class AssertionResult:
    source: str
    check: str
    description: str
    passed: bool
    message: str = ""
    at: float | None = None


class Recorder:
    """Collects the run's facts. It is also a control-plane notifier: `notify` hears every event."""

    def __init__(self, clock: Callable[[], float]) -> None:
        # Seconds since the start of the run.
        self._clock = clock
        self.failures: list[Failure] = []
        self._open: dict[str, list[Failure]] = collections.defaultdict(list)
        self.recoveries = 0
        self.event_counts: collections.Counter[str] = collections.Counter()
        self.node_event_counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.samples: list[dict[str, Any]] = []
        self.scaling: list[dict[str, Any]] = []
        self.outages: list[dict[str, Any]] = []
        self.timeline: list[dict[str, Any]] = []
        self.timeline_dropped = 0
        self.assertions: list[AssertionResult] = []
        self.nodes_started: set[str] = set()
        self.nodes_peak = 0
        self.replacements = 0
        self.notes: list[str] = []

    # The control plane's events.

    def notify(self, event: Event) -> None:
        t = self._clock()
        self.event_counts[event.kind] += 1
        if event.node_id:
            self.node_event_counts[(event.kind, event.node_id)] += 1
        if event.kind.startswith(_TIMELINE_KINDS):
            self.line(t, event.kind, event.node_id or event.details.get("pool", ""), _detail(event))
        if event.kind in ("pool.scaled", "pool.decision", "pool.manual_target"):
            self.scaling.append(
                {
                    "t": t,
                    "pool": event.details.get("pool", ""),
                    "kind": event.kind,
                    "from": _int(event.details.get("previous")),
                    "to": _int(event.details.get("target")),
                    "reason": event.reason,
                }
            )
        failures = self._open.get(event.node_id, ())
        if event.kind == "node.health_changed":
            to = event.details.get("to", "")
            for failure in failures:
                if to == HealthStatus.UNHEALTHY.value:
                    failure.unhealthy_at = _first(failure.unhealthy_at, t)
                elif to == HealthStatus.DEGRADED.value:
                    failure.degraded_at = _first(failure.degraded_at, t)
        elif event.kind == "node.status_changed":
            if event.to_status is NodeStatus.UNHEALTHY:
                for failure in failures:
                    failure.unhealthy_at = _first(failure.unhealthy_at, t)
            elif event.to_status is NodeStatus.TERMINATED:
                for failure in failures:
                    failure.terminated_at = _first(failure.terminated_at, t)
        elif event.kind == "instance.provisioned" and event.reason.startswith(_REPLACING):
            replaced = event.reason[len(_REPLACING) :].split(":", 1)[0]
            self.replacements += 1
            for failure in self._open.get(replaced, ()):
                if failure.replaced_by is None:
                    failure.replaced_by = event.node_id
                    failure.replaced_at = t

    async def run(self) -> None:
        """Nothing to deliver: `notify` records as it hears."""

    # The simulator's own facts.

    def failure(self, failure: Failure) -> None:
        self.failures.append(failure)
        self._open[failure.node].append(failure)
        what = f"xid {failure.xid}" if failure.xid is not None else failure.type
        gpu = f" on gpu {failure.gpu}" if failure.gpu is not None else ""
        self.line(failure.t, f"failure.{failure.source}", failure.node, f"{what}{gpu}")

    def recovered(self, failures: Sequence[Failure]) -> None:
        t = self._clock()
        for failure in failures:
            failure.recovered_at = t
            # A verdict after the recovery is not this failure's detection.
            if failure in self._open.get(failure.node, ()):
                self._open[failure.node].remove(failure)
            self.recoveries += 1
            self.line(t, "failure.recovered", failure.node, failure.type)

    def line(self, t: float, kind: str, node: str, detail: str) -> None:
        if len(self.timeline) >= TIMELINE_CAP:
            self.timeline_dropped += 1
            return
        self.timeline.append({"t": t, "kind": kind, "node": node, "detail": detail})

    def sample(
        self, nodes: Iterable[Node], episodes: Sequence[Remediation], pools: dict[str, int]
    ) -> None:
        by_status = dict.fromkeys((s.value for s in NodeStatus), 0)
        by_health = dict.fromkeys((h.value for h in HealthStatus), 0)
        in_episodes = {e.node_id for e in episodes}
        # Out of service and in no episode: taken out by a verdict that only cordons or drains,
        # or held for an operator (a reset or reboot where `auto_recover` is off).
        outside = 0
        for node in nodes:
            by_status[node.status.value] += 1
            if node.status is not NodeStatus.TERMINATED:
                by_health[node.health.value] += 1
                if node.status in _OUT_OF_SERVICE and node.node_id not in in_episodes:
                    outside += 1
        alive = sum(by_status.values()) - by_status["terminated"]
        self.nodes_peak = max(self.nodes_peak, alive)
        self.samples.append(
            {
                "t": self._clock(),
                "by_status": by_status,
                "by_health": by_health,
                "failures_total": len(self.failures),
                "recoveries_total": self.recoveries,
                "remediations_open": len(episodes),
                "remediations_held": sum(e.step is RemediationStep.HELD for e in episodes),
                "out_of_service_outside_episodes": outside,
                "pools": dict(sorted(pools.items())),
            }
        )


def _detail(event: Event) -> str:
    if event.kind == "node.status_changed" and event.to_status is not None:
        before = event.from_status.value if event.from_status else "new"
        text = f"{before} -> {event.to_status.value}"
        return f"{text}: {event.reason}" if event.reason else text
    if event.kind == "node.health_changed":
        health = event.details.get("to", "")
        rule = event.details.get("rule")
        return f"health {health}" + (f" (rule {rule})" if rule else "")
    if event.kind in ("pool.scaled", "pool.manual_target"):
        d = event.details
        return f"{d.get('previous', '?')} -> {d.get('target', '?')}: {event.reason}"
    return event.reason


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _first(current: float | None, t: float) -> float:
    return t if current is None else current


def outcome(failure: Failure) -> str:
    if failure.replaced_by is not None:
        return "replaced"
    if failure.recovered_at is not None:
        return "recovered"
    if failure.terminated_at is not None:
        return "terminated"
    if failure.unhealthy_at is not None:
        return "unhealthy"
    if failure.degraded_at is not None:
        return "degraded"
    return "undetected"


def detection_latency(failure: Failure) -> float | None:
    seen = [t for t in (failure.unhealthy_at, failure.degraded_at) if t is not None]
    return round(min(seen) - failure.t, 3) if seen else None


def _stats(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "p50": None, "p90": None, "max": None, "mean": None}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1)], 3)

    return {
        "count": len(ordered),
        "p50": pct(0.5),
        "p90": pct(0.9),
        "max": round(ordered[-1], 3),
        "mean": round(sum(ordered) / len(ordered), 3),
    }


def build_report(
    recorder: Recorder,
    *,
    scenario: Scenario,
    seed: int,
    mode: str,
    duration: float,
    remediations: Sequence[Remediation],
) -> dict[str, Any]:
    failures = []
    latencies = []
    replacement_times = []
    for f in recorder.failures:
        latency = detection_latency(f)
        if latency is not None:
            latencies.append(latency)
        to_replacement = round(f.replaced_at - f.t, 3) if f.replaced_at is not None else None
        if to_replacement is not None:
            replacement_times.append(to_replacement)
        failures.append(
            {
                "id": f.id,
                "t": f.t,
                "node": f.node,
                "type": f.type,
                "xid": f.xid,
                "gpu": f.gpu,
                "source": f.source,
                "cause": f.cause,
                "unhealthy_at": f.unhealthy_at,
                "detection_latency_s": latency,
                "outcome": outcome(f),
                "replaced_by": f.replaced_by,
                "time_to_replacement_s": to_replacement,
                "recovered_at": f.recovered_at,
            }
        )
    steps = collections.Counter(r.step for r in remediations)
    passed = sum(1 for a in recorder.assertions if a.passed)
    return {
        "navarch_report": REPORT_VERSION,
        "scenario": {
            "name": scenario.name,
            "description": scenario.description,
            "file": scenario.source,
        },
        "seed": seed,
        "mode": mode,
        "duration_s": round(duration, 3),
        "passed": all(a.passed for a in recorder.assertions),
        "summary": {
            "nodes_started": len(recorder.nodes_started),
            "nodes_peak": recorder.nodes_peak,
            "failures_injected": len(recorder.failures),
            "failures_recovered": recorder.recoveries,
            "remediations_started": len(remediations),
            "remediations_completed": steps[RemediationStep.DONE],
            "remediations_held": steps[RemediationStep.HELD],
            "replacements": recorder.replacements,
            "detection_latency_s": _stats(latencies),
            "time_to_replacement_s": _stats(replacement_times),
            "assertions_passed": passed,
            "assertions_failed": len(recorder.assertions) - passed,
        },
        "samples": recorder.samples,
        "failures": failures,
        "failures_by_type": dict(
            sorted(collections.Counter(f.type for f in recorder.failures).items())
        ),
        "failures_by_xid": {
            str(code): count
            for code, count in sorted(
                collections.Counter(f.xid for f in recorder.failures if f.xid is not None).items()
            )
        },
        "scaling": recorder.scaling,
        "outages": recorder.outages,
        "timeline": recorder.timeline,
        "timeline_dropped": recorder.timeline_dropped,
        "assertions": [attrs.asdict(a) for a in recorder.assertions],
    }


def write_report(report: dict[str, Any], directory: Path) -> list[Path]:
    """Writes report.json and report.html into `directory`; returns their paths."""
    from navarch.sim.html import render_html

    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "report.json"
    json_path.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    html_path = directory / "report.html"
    html_path.write_text(render_html(report), encoding="utf-8")
    return [json_path, html_path]
