"""The `infiniband` health check: InfiniBand ports read from a sysfs tree."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
from support.api import rpc
from support.health_policy import judge_each
from support.switchable_client import SwitchableClient

from navarch.api import wire as m
from navarch.controlplane import Caller
from navarch.daemon.agent import Daemon
from navarch.daemon.checks import load_health_checks
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import SimulatedGpus
from navarch.daemon.host import FixedHostStats
from navarch.errors import ConfigError
from navarch.health import Action, Result
from navarch.model import HealthEventType as T
from navarch.plugins.builtin.health_checks import InfinibandCheck, InfinibandCheckSettings
from navarch.plugins.manager import load_plugins

HEALTHY = {"link_downed": 0, "symbol_error": 0, "port_xmit_discards": 0}


def port(
    root: Path,
    device: str = "mlx5_0",
    number: int = 1,
    *,
    state: str = "4: ACTIVE",
    phys_state: str = "5: LinkUp",
    rate: str = "400 Gb/sec (4X NDR)",
    link_layer: str = "InfiniBand",
    counters: dict[str, object] | None = None,
) -> Path:
    """Writes one port as the kernel shows it under /sys/class/infiniband."""
    path = root / device / "ports" / str(number)
    (path / "counters").mkdir(parents=True, exist_ok=True)
    (path / "state").write_text(state + "\n")
    (path / "phys_state").write_text(phys_state + "\n")
    (path / "rate").write_text(rate + "\n")
    (path / "link_layer").write_text(link_layer + "\n")
    for name, value in (HEALTHY if counters is None else counters).items():
        (path / "counters" / name).write_text(f"{value}\n")
    return path


def check(root: Path, **settings) -> InfinibandCheck:
    return InfinibandCheck(InfinibandCheckSettings(sysfs_root=str(root), **settings))


async def test_a_machine_without_infiniband_has_no_events(tmp_path):
    ib = check(tmp_path / "missing")
    assert await ib.run([]) == []


async def test_healthy_ports_give_no_events(tmp_path):
    port(tmp_path, "mlx5_0")
    port(tmp_path, "mlx5_1")
    ib = check(tmp_path, expected_rate_gbps=400)
    assert await ib.run([]) == []
    assert await ib.run([]) == []


async def test_a_counter_that_rises_by_its_threshold_is_reported_once(tmp_path):
    path = port(tmp_path)
    ib = check(tmp_path)
    assert await ib.run([]) == []
    (path / "counters" / "link_downed").write_text("2\n")
    (path / "counters" / "symbol_error").write_text("9\n")  # below its threshold of 10
    [event] = await ib.run([])
    assert event.type is T.INFINIBAND
    assert event.gpu_index == -1
    assert event.details == {
        "device": "mlx5_0",
        "port": "1",
        "problem": "counters",
        "counters": "link_downed",
    }
    assert event.metrics == {"link_downed_delta": 2.0}
    assert await ib.run([]) == []


async def test_configured_thresholds_merge_over_the_defaults(tmp_path):
    path = port(tmp_path)
    ib = check(tmp_path, counter_thresholds={"symbol_error": 3, "link_downed": 0})
    await ib.run([])
    (path / "counters" / "link_downed").write_text("5\n")
    (path / "counters" / "symbol_error").write_text("3\n")
    [event] = await ib.run([])
    assert event.metrics == {"symbol_error_delta": 3.0}


async def test_a_counter_reset_by_hand_starts_over(tmp_path):
    path = port(tmp_path, counters={"link_downed": 7})
    ib = check(tmp_path)
    await ib.run([])
    (path / "counters" / "link_downed").write_text("0\n")
    assert await ib.run([]) == []
    (path / "counters" / "link_downed").write_text("1\n")
    [event] = await ib.run([])
    assert event.metrics == {"link_downed_delta": 1.0}


async def test_a_port_that_is_down_is_reported_and_repeated(tmp_path, autojump_clock):
    path = port(tmp_path)
    ib = check(tmp_path)
    assert await ib.run([]) == []
    (path / "state").write_text("1: DOWN\n")
    (path / "phys_state").write_text("3: Disabled\n")
    [event] = await ib.run([])
    assert event.details["problem"] == "port_down"
    assert (event.details["state"], event.details["phys_state"]) == ("DOWN", "Disabled")
    assert "mlx5_0 port 1" in event.message
    assert await ib.run([]) == []  # still down: not every sample
    await trio.sleep(300)
    assert len(await ib.run([])) == 1  # but again after repeat_every
    (path / "state").write_text("4: ACTIVE\n")
    (path / "phys_state").write_text("5: LinkUp\n")
    assert await ib.run([]) == []


async def test_a_port_slower_than_expected_is_reported(tmp_path):
    port(tmp_path, rate="200 Gb/sec (4X HDR)")
    port(tmp_path, "mlx5_1", rate="100 Gb/sec (2X HDR)", state="1: DOWN", phys_state="2: Polling")
    ib = check(tmp_path, expected_rate_gbps=400)
    events = await ib.run([])
    problems = sorted((e.details["device"], e.details["problem"]) for e in events)
    # A port that is down has no rate worth judging.
    assert problems == [("mlx5_0", "rate_low"), ("mlx5_1", "port_down")]
    [slow] = [e for e in events if e.details["problem"] == "rate_low"]
    assert slow.metrics == {"rate_gbps": 200.0, "expected_rate_gbps": 400.0}


async def test_garbled_files_are_a_check_failed_event_not_a_crash(tmp_path):
    path = port(tmp_path)
    port(tmp_path, "mlx5_1")
    ib = check(tmp_path)
    (path / "state").write_text("ACTIVE?\n")
    (path / "counters" / "symbol_error").write_text("lots\n")
    (path / "rate").write_bytes(b"\xff\xfe\n")
    [failed] = await ib.run([])
    assert failed.type is T.CHECK_FAILED
    assert failed.details == {"check": "infiniband", "device": "mlx5_0", "port": "1"}
    assert "state" in failed.message
    assert "counters/symbol_error" in failed.message
    assert "rate" in failed.message
    assert await ib.run([]) == []  # the same problem is not sent every sample


async def test_ignored_ports_and_other_link_layers_are_left_alone(tmp_path):
    port(tmp_path, "mlx5_0", state="1: DOWN")
    port(tmp_path, "mlx5_1", 1, state="1: DOWN")
    port(tmp_path, "mlx5_1", 2)
    port(tmp_path, "mlx5_2", state="1: DOWN", link_layer="Ethernet")
    ib = check(tmp_path, ignore=("mlx5_0", "mlx5_1/1"))
    assert await ib.run([]) == []
    roce = check(tmp_path, link_layers=("InfiniBand", "Ethernet"))
    downs = sorted(e.details["device"] for e in await roce.run([]))
    assert downs == ["mlx5_0", "mlx5_1", "mlx5_2"]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (
            {"expected_rate_gbps": 0},
            "daemon.health_checks.infiniband.expected_rate_gbps: expected at least 1, got 0",
        ),
        (
            {"ignore": ["mlx5_0/x"]},
            'daemon.health_checks.infiniband.ignore[0]: expected "DEVICE" or "DEVICE/PORT"',
        ),
        (
            {"counter_thresholds": {"symbol_error": -1}},
            "daemon.health_checks.infiniband.counter_thresholds.symbol_error: expected at least 0",
        ),
        (
            {"link_layers": ["Ethernet", "Omni-Path"]},
            'daemon.health_checks.infiniband.link_layers[1]: expected "InfiniBand" or "Ethernet"',
        ),
        ({"expected_rate": 400}, "daemon.health_checks.infiniband.expected_rate: unknown key"),
    ],
)
def test_bad_settings_name_the_key(settings, problem):
    config = DaemonConfig(health_checks={"infiniband": settings})
    with pytest.raises(ConfigError) as caught:
        load_health_checks(load_plugins(entry_points=False), config)
    assert problem in str(caught.value)


async def test_the_default_policy_judges_each_problem(tmp_path):
    path = port(tmp_path, rate="200 Gb/sec (4X HDR)")
    port(tmp_path, "mlx5_1", state="1: DOWN", phys_state="3: Disabled")
    ib = check(tmp_path, expected_rate_gbps=400)
    first = await ib.run([])
    (path / "counters" / "symbol_error").write_text("100\n")
    events = first + await ib.run([])
    judged = {
        e.details["problem"]: (m.result, m.action, m.rule)
        for e, m in zip(events, judge_each(events), strict=True)
    }
    assert judged == {
        "port_down": (Result.UNHEALTHY, Action.CORDON, "infiniband-port-down"),
        "rate_low": (Result.DEGRADED, Action.ALERT, "infiniband-rate-low"),
        "counters": (Result.DEGRADED, Action.ALERT, "infiniband-errors"),
    }


async def test_a_port_that_goes_down_makes_the_node_unhealthy_through_the_daemon(
    control_plane, tmp_path, autojump_clock
):
    path = port(tmp_path / "ib")
    config = DaemonConfig(
        node_id="gpu-1",
        health_checks={
            "infiniband": {"sysfs_root": str(tmp_path / "ib")},
        },
    )
    checks = load_health_checks(load_plugins(entry_points=False), config)
    assert "infiniband" in [name for name, _ in checks]
    daemon = Daemon(
        SwitchableClient(control_plane),
        SimulatedGpus(2, seed="gpu-1"),
        config,
        host_stats=FixedHostStats(),
        health_checks=checks,
        rng=random.Random(1),
    )

    async def node() -> m.Node:
        reply = await rpc(control_plane, m.GetNodeRequest(node_id="gpu-1"), Caller.admin())
        return reply.node

    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        # The check reads sysfs in a worker thread, and the autojumping clock moves on while it
        # waits: wait for the first report rather than for a fixed time.
        with trio.fail_after(300):
            while (await node()).health is not m.HealthStatus.HEALTH_STATUS_HEALTHY:
                await trio.sleep(5)
        # Each file is replaced whole, as sysfs shows it: the check never reads one half written.
        for name, text in (("state", "1: DOWN\n"), ("phys_state", "2: Polling\n")):
            (path / f"{name}.new").write_text(text)
            (path / f"{name}.new").replace(path / name)

        def port_down(node: m.Node) -> list[m.HealthEvent]:
            return [
                e
                for e in node.last_health_events
                if e.type is m.HealthEventType.HEALTH_EVENT_TYPE_INFINIBAND
            ]

        # Waits for the check's report itself: while the worker thread reads sysfs the clock
        # jumps on, and a slow machine can make the node look silent (also unhealthy) before it.
        with trio.fail_after(300):
            while not port_down(current := await node()):
                await trio.sleep(5)
            while current.health is not m.HealthStatus.HEALTH_STATUS_UNHEALTHY:
                await trio.sleep(5)
                current = await node()
        assert current.status is not m.NodeStatus.NODE_STATUS_ACTIVE
        [event] = port_down(current)
        assert event.details["problem"] == "port_down"
        daemon.stop()
