"""Remediation's series of `/metrics` when the circuit breaker holds an episode and an operator
cancels it, on trio's MockClock with a wall clock that follows it, so that durations are exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families
from support.api import rpc
from support.remediation import HELD, PoolManagerStandIn, episodes, open_plane, report, xid
from support.service import ADMIN, register

from navarch.api import wire as m
from navarch.api.metrics import ApiMetrics
from navarch.clock import Clock
from navarch.controlplane import ControlPlane


def samples(service: ControlPlane) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = ApiMetrics(service).render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_a_held_episode_cancelled_later_counts_as_held_then_cancelled(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = Clock(lambda: start + timedelta(seconds=trio.current_time()))
    async with open_plane(tmp_path / "db", PoolManagerStandIn(), clock=clock) as service:
        for i in range(4):
            await register(service, f"train-{i}", pool="train")
        for i in range(3):
            await report(service, f"train-{i}", xid(79))
        [held] = [e for e in await episodes(service) if e.step is HELD]
        await trio.sleep(600)
        await rpc(service, m.CancelRemediationRequest(episode_id=held.episode_id), ADMIN)
        found = samples(service)

    def value(name: str, **labels: str) -> float | None:
        return found.get((name, tuple(sorted(labels.items()))))

    assert value("navarch_remediation_breaker_open", pool="train") == 1
    started = "navarch_remediation_episodes_started_total"
    assert value(started, pool="train", action="replace") == 3
    assert value(started, pool="train", action="reboot") == 0
    ended = "navarch_remediation_episodes_ended_total"
    assert value(ended, pool="train", outcome="held") == 1
    assert value(ended, pool="train", outcome="cancelled") == 1
    # Held at once by the breaker; cancelled ten minutes later.
    durations = "navarch_remediation_duration_seconds"
    assert value(f"{durations}_sum", outcome="held") == 0
    assert value(f"{durations}_bucket", outcome="cancelled", le="300.0") == 0
    assert value(f"{durations}_bucket", outcome="cancelled", le="600.0") == 1
    assert value(f"{durations}_sum", outcome="cancelled") == 600
