"""Builds simulator reports shaped like report.json, for tests of the pages made from them."""

from __future__ import annotations

import random

_TYPES = [
    ("xid_error", 6),
    ("ecc_double_bit", 2),
    ("thermal", 2),
    ("nvlink_error", 1),
    ("network", 1),
    ("boot_failure", 1),
]
_XIDS = [(79, 5), (48, 3), (63, 2), (94, 2), (74, 1), (31, 1), (13, 1), (95, 1)]
_OUTCOMES = [
    ("replaced", 12),
    ("recovered", 4),
    ("terminated", 1),
    ("unhealthy", 1),
    ("degraded", 1),
    ("undetected", 1),
    ("running", 1),
]
_SOURCES = [("event", 5), ("chaos", 3), ("cascade", 1), ("correlated", 1), ("outage", 1)]
_SAMPLE_EVERY_S = 10.0


def sample_report(
    nodes: int = 1000,
    minutes: float = 60,
    failures: int = 120,
    timeline_cap: int = 5000,
    seed: int = 7,
) -> dict:
    """A run of `nodes` nodes in two pools with failures, replacements, a pool that scales up,
    one that scales down, an outage and a failed assertion."""
    rng = random.Random(seed)
    duration = minutes * 60.0
    training = nodes * 6 // 10
    pools = {"training": training, "inference": nodes - training}
    scale_up = max(1, training // 10)
    scale_down = max(1, (nodes - training) // 20)
    scaling = [
        _decision(duration / 3, "training", training, training + scale_up, "gpu utilisation 91%"),
        _decision(
            duration * 2 / 3,
            "inference",
            nodes - training,
            nodes - training - scale_down,
            "gpu utilisation 22% for 10m",
        ),
        {
            "t": duration / 2,
            "pool": "inference",
            "kind": "hold",
            "from": nodes - training,
            "to": nodes - training,
            "reason": "cooldown: last change under 5m ago",
        },
    ]
    outage = {
        "name": "zone-b power",
        "scope": "zone",
        "target": "us-east-1b",
        "start_s": duration * 0.55,
        "duration_s": min(600.0, duration * 0.1),
        "nodes": max(1, nodes // 25),
    }

    records = []
    replacements = 0
    for i in range(failures):
        t = round(rng.uniform(30, duration * 0.9), 1)
        kind = _pick(rng, _TYPES)
        outcome = _pick(rng, _OUTCOMES)
        source = _pick(rng, _SOURCES)
        latency = None if outcome in ("undetected", "running") else round(rng.uniform(3, 55), 1)
        if rng.random() < 0.03 and latency is not None:
            latency = round(rng.uniform(60, 180), 1)
        unhealthy_at = None if latency is None else round(t + latency, 1)
        ttr = replaced_by = recovered_at = None
        if outcome == "replaced":
            replacements += 1
            ttr = round(rng.uniform(120, 480), 1)
            replaced_by = f"node-{nodes + replacements:05d}"
        if outcome == "recovered":
            recovered_at = round(unhealthy_at + rng.uniform(30, 240), 1)
        records.append(
            {
                "id": i + 1,
                "t": t,
                "node": f"node-{rng.randrange(nodes):05d}",
                "type": kind,
                "xid": _pick(rng, _XIDS) if kind == "xid_error" else None,
                "gpu": rng.randrange(8) if kind in ("xid_error", "ecc_double_bit") else None,
                "source": source,
                "cause": rng.randrange(1, i + 1) if source == "cascade" and i else None,
                "unhealthy_at": unhealthy_at,
                "detection_latency_s": latency,
                "outcome": outcome,
                "replaced_by": replaced_by,
                "time_to_replacement_s": ttr,
                "recovered_at": recovered_at,
            }
        )
    records.sort(key=lambda f: (f["t"], f["id"]))

    samples = []
    steps = int(duration // _SAMPLE_EVERY_S)
    for step in range(steps + 1):
        t = step * _SAMPLE_EVERY_S
        sizes = dict(pools)
        for decision in scaling:
            if decision["t"] <= t:
                sizes[decision["pool"]] = decision["to"]
        samples.append(_sample(t, sizes, records))

    timeline = _timeline(records, scaling)
    assertions = [
        _assertion("replacements", "every replaced node was replaced within 10m", True, ""),
        _assertion("nodes_peak", f"the fleet never exceeded {nodes * 2} nodes", True, ""),
        _assertion(
            "detection_latency_p90",
            "p90 detection latency is under 45 s",
            False,
            f"p90 detection latency was {_percentile(records, 'detection_latency_s', 0.9)} s, "
            "above 45 s",
        ),
    ]
    peak = max(sum(s["pools"].values()) for s in samples)
    return {
        "navarch_report": 1,
        "scenario": {
            "name": "zone outage under load",
            "description": (
                f"{nodes:,} nodes in two pools take XID errors, thermal events and a zone power "
                "outage while the training pool scales up."
            ),
            "file": "scenarios/zone-outage.toml",
        },
        "seed": seed,
        "mode": "virtual",
        "duration_s": duration,
        "passed": False,
        "summary": {
            "nodes_started": nodes + replacements + scale_up,
            "nodes_peak": peak,
            "failures_injected": failures,
            "failures_recovered": sum(1 for f in records if f["outcome"] == "recovered"),
            "remediations_started": sum(1 for f in records if f["unhealthy_at"] is not None),
            "remediations_completed": replacements,
            "remediations_held": sum(1 for f in records if f["outcome"] == "unhealthy"),
            "replacements": replacements,
            "detection_latency_s": _stats(records, "detection_latency_s"),
            "time_to_replacement_s": _stats(records, "time_to_replacement_s"),
            "assertions_passed": sum(1 for a in assertions if a["passed"]),
            "assertions_failed": sum(1 for a in assertions if not a["passed"]),
        },
        "samples": samples,
        "failures": records,
        "failures_by_type": _tally(f["type"] for f in records),
        "failures_by_xid": _tally(str(f["xid"]) for f in records if f["xid"] is not None),
        "scaling": sorted(scaling, key=lambda d: d["t"]),
        "outages": [outage],
        "timeline": timeline[:timeline_cap],
        "timeline_dropped": max(0, len(timeline) - timeline_cap),
        "assertions": assertions,
    }


def empty_report() -> dict:
    """A short passing run: one sample, no failures, no pools, no scaling."""
    return {
        "navarch_report": 1,
        "scenario": {"name": "quiet fleet", "description": "", "file": ""},
        "seed": 1,
        "mode": "real-time",
        "duration_s": 120.0,
        "passed": True,
        "summary": {
            "nodes_started": 4,
            "nodes_peak": 4,
            "failures_injected": 0,
            "failures_recovered": 0,
            "remediations_started": 0,
            "remediations_completed": 0,
            "remediations_held": 0,
            "replacements": 0,
            "detection_latency_s": _stats([], "detection_latency_s"),
            "time_to_replacement_s": _stats([], "time_to_replacement_s"),
            "assertions_passed": 1,
            "assertions_failed": 0,
        },
        "samples": [_sample(0.0, {}, [], active=4)],
        "failures": [],
        "failures_by_type": {},
        "failures_by_xid": {},
        "scaling": [],
        "outages": [],
        "timeline": [],
        "timeline_dropped": 0,
        "assertions": [_assertion("nodes_peak", "the fleet keeps 4 nodes", True, "")],
    }


def _sample(t: float, pools: dict[str, int], records: list[dict], active: int = 0) -> dict:
    status = dict.fromkeys(
        ("cordoned", "draining", "drained", "unhealthy", "terminated", "active"), 0
    )
    recoveries = failures = 0
    for f in records:
        if f["t"] > t:
            break
        failures += 1
        if f["recovered_at"] is not None and f["recovered_at"] <= t:
            recoveries += 1
        status[_status_at(f, t)] += 1
    status["active"] = max(
        0,
        (active or sum(pools.values()))
        - sum(v for k, v in status.items() if k not in ("active", "terminated")),
    )
    unhealthy = status["unhealthy"] + status["cordoned"] + status["draining"]
    return {
        "t": t,
        "by_status": {
            k: status[k]
            for k in ("active", "cordoned", "draining", "drained", "unhealthy", "terminated")
        },
        "by_health": {
            "healthy": status["active"],
            "degraded": status["drained"],
            "unhealthy": unhealthy,
            "unknown": 0,
        },
        "failures_total": failures,
        "recoveries_total": recoveries,
        "remediations_open": unhealthy + status["drained"],
        "pools": dict(pools),
    }


def _status_at(failure: dict, t: float) -> str:
    """Where a failed node is at time t: unhealthy, then cordoned, draining, drained, gone."""
    seen = failure["unhealthy_at"]
    if seen is None or t < seen:
        return "active"
    if failure["recovered_at"] is not None:
        return "active" if t >= failure["recovered_at"] else "cordoned"
    if failure["outcome"] not in ("replaced", "terminated"):
        return "unhealthy"
    since = t - seen
    if since < 15:
        return "unhealthy"
    if since < 40:
        return "cordoned"
    if since < 100:
        return "draining"
    ttr = failure["time_to_replacement_s"] or 300.0
    return "drained" if t < failure["t"] + ttr else "terminated"


def _timeline(records: list[dict], scaling: list[dict]) -> list[dict]:
    entries = []
    for f in records:
        detail = f"{f['type']}" + (f" xid {f['xid']} gpu {f['gpu']}" if f["xid"] else "")
        entries.append(_entry(f["t"], "failure_injected", f["node"], detail))
        if f["unhealthy_at"] is not None:
            entries.append(_entry(f["unhealthy_at"], "node_unhealthy", f["node"], detail))
            entries.append(
                _entry(f["unhealthy_at"] + 15, "cordoned", f["node"], "remediation started")
            )
        if f["replaced_by"]:
            entries.append(
                _entry(
                    f["t"] + f["time_to_replacement_s"],
                    "replaced",
                    f["node"],
                    f"replaced by {f['replaced_by']}",
                )
            )
        if f["recovered_at"] is not None:
            entries.append(_entry(f["recovered_at"], "recovered", f["node"], "health checks pass"))
    for d in scaling:
        entries.append(
            _entry(d["t"], f"pool_{d['kind']}", "", f"{d['pool']}: {d['from']} -> {d['to']}")
        )
    entries.sort(key=lambda e: (e["t"], e["kind"], e["node"]))
    return entries


def _entry(t: float, kind: str, node: str, detail: str) -> dict:
    return {"t": round(t, 1), "kind": kind, "node": node, "detail": detail}


def _decision(t: float, pool: str, before: int, after: int, reason: str) -> dict:
    kind = "scale_up" if after > before else "scale_down"
    return {"t": t, "pool": pool, "kind": kind, "from": before, "to": after, "reason": reason}


def _assertion(check: str, description: str, passed: bool, message: str) -> dict:
    return {
        "source": "scenario",
        "check": check,
        "description": description,
        "passed": passed,
        "message": message,
        "at": None,
    }


def _stats(records: list[dict], key: str) -> dict:
    values = sorted(f[key] for f in records if f[key] is not None)
    if not values:
        return {"count": 0, "p50": None, "p90": None, "max": None, "mean": None}
    return {
        "count": len(values),
        "p50": _percentile(records, key, 0.5),
        "p90": _percentile(records, key, 0.9),
        "max": values[-1],
        "mean": round(sum(values) / len(values), 1),
    }


def _percentile(records: list[dict], key: str, q: float) -> float | None:
    values = sorted(f[key] for f in records if f[key] is not None)
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def _tally(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _pick(rng: random.Random, weighted: list[tuple]) -> object:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights)[0]
