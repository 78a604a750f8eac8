"""The pools', providers', remediation's, GPUs' and nodes' series of `/metrics`, scraped over
loopback HTTP from a real control plane whose pool provisions fake machines running daemons."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from support.live_control_plane import LiveControlPlane
from support.pool_config import FAILOVER_POOL
from support.serving import post, serving
from support.waiting import wait_for

from navarch.api import wire as w
from navarch.api.methods import METHODS, call
from navarch.api.metrics_fleet import MAX_POOL_LABELS
from navarch.config import parse_config
from navarch.controlplane import Caller
from navarch.plugins.manager import load_plugins

CONFIG = (
    FAILOVER_POOL
    + """
[metrics]
per_node = true
per_gpu = true
node_limit = 1
"""
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for n, labels in samples if n == name]


def test_a_pool_its_providers_gpus_and_remediation_in_the_metrics(tmp_path: Path) -> None:
    config = parse_config(CONFIG, plugins=load_plugins(entry_points=False))
    with LiveControlPlane(tmp_path / "navarch.db", config=config) as live:

        def settled() -> Samples | None:
            samples = scrape(live.url)
            ready = (
                value(samples, "navarch_pool_size", pool="dev") == 2
                and sum(v for (n, labels), v in samples.items() if n == "navarch_pool_nodes") == 2
                and value(samples, "navarch_pool_gpu_temperature_celsius_count", pool="dev") == 16
            )
            return samples if ready else None

        samples = wait_for("two nodes with their GPUs' readings", settled)
        assert value(samples, "navarch_pool_min_nodes", pool="dev") == 2
        assert value(samples, "navarch_pool_max_nodes", pool="dev") == 4
        assert value(samples, "navarch_pool_target", pool="dev") == 2
        assert value(samples, "navarch_pool_in_flight", pool="dev") == 0
        assert value(samples, "navarch_pool_healthy_nodes", pool="dev") == 2
        # The first round scaled up from nothing to min_nodes; later rounds hold.
        up = value(
            samples,
            "navarch_pool_scaling_decisions_total",
            pool="dev",
            direction="up",
            reason="no_autoscaler",
        )
        assert up is not None and up >= 1
        # "full" has no capacity: its error blocks it, and "fake" gives both machines.
        assert value(samples, "navarch_provider_errors_total", provider="full", kind="capacity")
        assert (
            value(samples, "navarch_provider_errors_total", provider="fake", kind="capacity") == 0
        )
        assert value(samples, "navarch_provider_provisions_total", provider="fake") == 2
        assert value(samples, "navarch_provider_provisions_total", provider="full") == 0
        assert value(samples, "navarch_provider_blocks", provider="full", kind="capacity") == 1
        assert value(samples, "navarch_pool_provision_failures_total", pool="dev") == 0
        # Sixteen GPUs in all: the histogram's buckets add up to them and the totals are theirs.
        assert (
            value(samples, "navarch_pool_gpu_utilization_ratio_bucket", pool="dev", le="+Inf") == 16
        )
        assert value(samples, "navarch_pool_gpu_temperature_celsius_sum", pool="dev")
        assert value(samples, "navarch_pool_gpu_memory_total_bytes", pool="dev")
        assert value(samples, "navarch_gpus", status="active") == 16

        # node_limit = 1: one node has series of its own, with its 8 GPUs; the other is counted.
        assert value(samples, "navarch_metrics_nodes_omitted") == 1
        [info] = series(samples, "navarch_node_info")
        assert info["pool"] == "dev" and info["status"] == "active"
        node_id = info["node"]
        gpus = series(samples, "navarch_gpu_temperature_celsius")
        assert sorted(int(g["gpu"]) for g in gpus) == list(range(8))
        assert {g["node"] for g in gpus} == {node_id}
        utilization = [v for (n, _), v in samples.items() if n == "navarch_gpu_utilization_ratio"]
        assert len(utilization) == 8 and all(0 <= u <= 1 for u in utilization)
        beat = value(samples, "navarch_node_last_heartbeat_timestamp_seconds", node=node_id)
        assert beat is not None and abs(beat - datetime.now(UTC).timestamp()) < 3600

        # An XID 79 takes the node out: one replace episode starts and reaches an outcome.
        xid = w.HealthEvent(
            type=w.HealthEventType.HEALTH_EVENT_TYPE_XID,
            time=datetime.now(UTC),
            gpu_index=0,
            xid=79,
            message="GPU has fallen off the bus",
        )
        request = w.ReportHealthRequest(node_id=node_id, events=(xid,))
        live.call(call, live.service, METHODS["ReportHealth"], request, Caller.node(node_id))

        def ended() -> Samples | None:
            samples = scrape(live.url)
            count = value(
                samples, "navarch_remediation_duration_seconds_count", outcome="completed"
            )
            return samples if count else None

        samples = wait_for("the episode to complete", ended)
        assert value(samples, "navarch_gpu_xids_total", xid="79") == 1
        assert value(samples, "navarch_health_reports_total", type="xid") == 1
        assert value(samples, "navarch_health_reports_total", type="ecc") == 0
        assert (
            value(
                samples, "navarch_remediation_episodes_started_total", pool="dev", action="replace"
            )
            == 1
        )
        assert (
            value(
                samples, "navarch_remediation_episodes_ended_total", pool="dev", outcome="completed"
            )
            == 1
        )
        assert (
            value(samples, "navarch_remediation_episodes_ended_total", pool="dev", outcome="held")
            == 0
        )
        assert value(samples, "navarch_remediation_breaker_open", pool="dev") == 0
        assert (
            value(
                samples,
                "navarch_remediation_duration_seconds_bucket",
                outcome="completed",
                le="+Inf",
            )
            == 1
        )


async def test_pool_labels_are_bounded_and_the_per_node_series_off_by_default(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        for i in range(MAX_POOL_LABELS + 2):
            await post(client, "RegisterNode", {"nodeId": f"n{i:03d}", "pool": f"p{i:03d}"})
        await post(client, "RegisterNode", {"nodeId": "loose", "gpus": [{"index": 0, "uuid": "G"}]})
        await post(
            client,
            "SendHeartbeat",
            {
                "nodeId": "loose",
                "metrics": {
                    "gpus": [
                        {
                            "index": 0,
                            "temperatureC": 71,
                            "utilizationPercent": 40,
                            "powerWatts": 300,
                        }
                    ]
                },
            },
        )
        # Two reports: XIDs of a code navarch's catalog lists and of one it does not, and an ECC
        # error; each GPU counts once a report for each code.
        at = "2026-01-01T00:00:00Z"
        xid = {"type": "HEALTH_EVENT_TYPE_XID", "time": at}
        ecc = {"type": "HEALTH_EVENT_TYPE_ECC", "time": at, "gpuIndex": 0}
        first = [{**xid, "gpuIndex": 0, "xid": 48}, {**xid, "gpuIndex": 0, "xid": 48}, ecc]
        second = [{**xid, "gpuIndex": 0, "xid": 48}, {**xid, "gpuIndex": 0, "xid": 999999}]
        for events in (first, second):
            answer = await post(client, "ReportHealth", {"nodeId": "loose", "events": events})
            assert answer.status_code == 200, answer.text
        response = await client.get("/metrics")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    pools = {dict(labels)["pool"] for name, labels in samples if name == "navarch_pool_nodes"}
    assert len(pools) == MAX_POOL_LABELS + 2
    assert {"other", "none", "p000", f"p{MAX_POOL_LABELS - 1:03d}"} <= pools
    assert f"p{MAX_POOL_LABELS:03d}" not in pools
    assert value(samples, "navarch_pool_nodes", pool="other", health="unknown") == 2
    # The node in no pool: its one GPU is in the "none" pool's distributions.
    assert (
        value(samples, "navarch_pool_gpu_temperature_celsius_bucket", pool="none", le="70.0") == 0
    )
    assert (
        value(samples, "navarch_pool_gpu_temperature_celsius_bucket", pool="none", le="75.0") == 1
    )
    assert value(samples, "navarch_pool_gpu_utilization_ratio_sum", pool="none") == 0.4
    assert value(samples, "navarch_pool_gpu_power_watts", pool="none") == 300
    assert value(samples, "navarch_gpu_xids_total", xid="48") == 2
    assert value(samples, "navarch_gpu_xids_total", xid="other") == 1
    assert value(samples, "navarch_health_reports_total", type="xid") == 2
    assert value(samples, "navarch_health_reports_total", type="ecc") == 1
    assert value(samples, "navarch_health_reports_total", type="thermal") == 0
    names = {name for name, _ in samples}
    assert not names & {
        "navarch_node_info",
        "navarch_gpu_temperature_celsius",
        "navarch_metrics_nodes_omitted",
        "navarch_pool_size",
    }
