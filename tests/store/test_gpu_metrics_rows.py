"""GPU metrics in the store: ECC counts read back, and metrics written before the counts existed
load with zero counts."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from navarch import model
from navarch.store import Change, SQLiteStore


async def test_metrics_stored_before_ecc_counts_existed_load_with_zero_counts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "navarch.db"
    beat = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    node = model.Node(
        node_id="n1",
        status=model.NodeStatus.ACTIVE,
        health=model.HealthStatus.HEALTHY,
        registered_at=beat,
    )
    counted = model.NodeMetrics(
        gpus=(model.GpuMetrics(index=1, temperature_c=60.0, ecc_corrected=5, ecc_uncorrected=1),)
    )
    async with SQLiteStore.open(path) as store:
        await store.commit(Change(nodes=(node,)))
        store.note_heartbeat("n1", beat, counted)
    async with SQLiteStore.open(path) as store:
        assert (await store.load()).nodes[0].metrics == counted

    # A row as navarch wrote it before GPU metrics held ECC counts.
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE nodes SET metrics = ? WHERE node_id = 'n1'",
            ('{"cpu_percent":10.0,"gpus":[{"index":1,"temperature_c":60.0}]}',),
        )
    db.close()
    async with SQLiteStore.open(path) as store:
        [loaded] = (await store.load()).nodes
    assert loaded.metrics == model.NodeMetrics(
        cpu_percent=10.0, gpus=(model.GpuMetrics(index=1, temperature_c=60.0),)
    )
    assert loaded.metrics.gpus[0].ecc_corrected == loaded.metrics.gpus[0].ecc_uncorrected == 0
