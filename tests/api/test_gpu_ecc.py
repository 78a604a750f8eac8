"""Each GPU's ECC error counts, from NVML through a real daemon's heartbeat to GetNode and
`/metrics` over real HTTP, and the limits a heartbeat's counts meet."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families
from support.serving import post, serving

from navarch.api.client import HttpClient
from navarch.config import MetricsConfig
from navarch.daemon.agent import Daemon
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import NvmlGpus, SimulatedGpus, to_metrics
from navarch.daemon.host import FixedHostStats
from navarch.telemetry import nvml
from navarch.testing import FakeNvml


async def _node(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await post(client, "GetNode", {"nodeId": "gpu-1"})
    assert answer.status_code == 200, answer.text
    node: dict[str, Any] = answer.json()["node"]
    return node


async def test_nvml_ecc_counts_show_in_get_node_and_at_metrics(
    tmp_path: Path, fake_nvml: FakeNvml, open_fake: Callable[[], nvml.Nvml]
) -> None:
    fake_nvml.set(0, ecc_corrected_volatile=0, ecc_uncorrected_volatile=0)
    # The aggregate counts (over the GPU's life) are not what a heartbeat carries.
    fake_nvml.set(1, ecc_corrected_volatile=7, ecc_uncorrected_volatile=2)
    fake_nvml.set(1, ecc_corrected_aggregate=900, ecc_uncorrected_aggregate=40)
    async with (
        serving(tmp_path / "navarch.db") as (client, service),
        HttpClient(str(client.base_url)) as daemon_client,
    ):
        service.metrics_config = MetricsConfig(per_gpu=True)
        daemon = Daemon(
            daemon_client,
            NvmlGpus(open_fake()),
            DaemonConfig(node_id="gpu-1"),
            host_stats=FixedHostStats(),
            rng=random.Random(1),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            with trio.fail_after(15):
                while "metrics" not in (node := await _node(client)):
                    await trio.sleep(0.05)
            daemon.stop()
        by_index = {g.get("index", 0): g for g in node["metrics"]["gpus"]}
        # Zero counts are left out, as every zero is in proto3 JSON.
        assert "eccCorrected" not in by_index[0] and "eccUncorrected" not in by_index[0]
        assert by_index[1]["eccCorrected"] == 7
        assert by_index[1]["eccUncorrected"] == 2

        scraped = (await client.get("/metrics")).text
    ecc = {
        (s.labels["gpu"], s.labels["type"]): s.value
        for family in text_string_to_metric_families(scraped)
        for s in family.samples
        if s.name == "navarch_gpu_ecc_errors_total" and s.labels["node"] == "gpu-1"
    }
    assert ecc == {
        ("0", "corrected"): 0,
        ("0", "uncorrected"): 0,
        ("1", "corrected"): 7,
        ("1", "uncorrected"): 2,
    }


def test_a_simulated_gpus_injected_ecc_errors_ride_on_its_heartbeat_metrics() -> None:
    gpus = SimulatedGpus(2)
    gpus.inject_ecc(1, corrected=4)
    gpus.inject_ecc(1, corrected=1, uncorrected=2)
    quiet, hit = (to_metrics(s) for s in gpus.sample())
    assert (quiet.ecc_corrected, quiet.ecc_uncorrected) == (0, 0)
    assert (hit.ecc_corrected, hit.ecc_uncorrected) == (5, 2)


async def test_a_negative_ecc_count_is_refused_naming_the_field(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        assert (await post(client, "RegisterNode", {"nodeId": "gpu-1"})).status_code == 200
        good = {"index": 0, "eccCorrected": 3}
        sent = await post(client, "SendHeartbeat", {"nodeId": "gpu-1", "metrics": {"gpus": [good]}})
        assert sent.status_code == 200, sent.text
        bad = {"index": 0, "eccCorrected": 4, "eccUncorrected": -1}
        answer = await post(
            client, "SendHeartbeat", {"nodeId": "gpu-1", "metrics": {"gpus": [bad]}}
        )
        assert answer.status_code == 400
        assert answer.json() == {
            "code": "invalid_argument",
            "message": "metrics.gpus[0].eccUncorrected: expected 0 or more, got -1",
        }
        # The refused heartbeat changed nothing: the node keeps the counts it sent before.
        assert (await _node(client))["metrics"]["gpus"] == [good]
