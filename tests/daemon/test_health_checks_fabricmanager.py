"""The `fabricmanager` health check: the fabric manager's systemd unit, through a fake systemctl."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from support.health_policy import judge_each

from navarch.health import Action, Result
from navarch.model import HealthEventType as T
from navarch.plugins.builtin.health_checks import FabricManagerCheck, FabricManagerCheckSettings

ACTIVE = "ActiveState=active\nSubState=running\nLoadState=loaded\n"
FAILED = "ActiveState=failed\nSubState=failed\nLoadState=loaded\n"
NOT_FOUND = "ActiveState=inactive\nSubState=dead\nLoadState=not-found\n"


class FakeSystemctl:
    """A systemctl that prints what the test last set, and records its arguments."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "systemctl"
        self.output = directory / "output"
        self.args = directory / "args"
        self.path.write_text(
            '#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\n'
            'cat "$(dirname "$0")/output"\n'
            'exit "$(cat "$(dirname "$0")/status" 2>/dev/null || echo 0)"\n'
        )
        self.path.chmod(0o755)
        self.set(ACTIVE)

    def set(self, output: str, status: int = 0) -> None:
        self.output.write_text(output)
        (self.path.parent / "status").write_text(str(status))


def check(systemctl: FakeSystemctl, **settings) -> FabricManagerCheck:
    return FabricManagerCheck(
        FabricManagerCheckSettings(enabled=True, systemctl=str(systemctl.path), **settings)
    )


async def test_an_active_fabric_manager_gives_no_events(tmp_path, mock_clock):
    systemctl = FakeSystemctl(tmp_path)
    assert await check(systemctl).run([]) == []
    assert systemctl.args.read_text().split() == [
        "show",
        "--property=ActiveState,SubState,LoadState",
        "nvidia-fabricmanager.service",
    ]


async def test_a_fabric_manager_down_past_its_grace_is_reported(tmp_path, mock_clock):
    systemctl = FakeSystemctl(tmp_path)
    fm = check(systemctl)
    systemctl.set(FAILED)
    assert await fm.run([]) == []  # it may be restarting
    mock_clock.jump(119)
    assert await fm.run([]) == []
    mock_clock.jump(2)
    [event] = await fm.run([])
    assert event.type is T.FABRIC_MANAGER
    assert event.gpu_index == -1
    assert event.details == {
        "unit": "nvidia-fabricmanager.service",
        "active_state": "failed",
        "sub_state": "failed",
        "load_state": "loaded",
    }
    assert await fm.run([]) == []  # not every sample
    mock_clock.jump(300)
    assert len(await fm.run([])) == 1
    systemctl.set(ACTIVE)
    assert await fm.run([]) == []
    systemctl.set(FAILED)
    assert await fm.run([]) == []  # a new outage gets its grace again


async def test_a_missing_unit_is_reported_at_once(tmp_path, mock_clock):
    systemctl = FakeSystemctl(tmp_path)
    systemctl.set(NOT_FOUND)
    [event] = await check(systemctl, grace=timedelta(minutes=10)).run([])
    assert event.details["load_state"] == "not-found"
    assert "not installed" in event.message


async def test_systemctl_that_fails_is_a_check_failed_event(tmp_path, mock_clock):
    systemctl = FakeSystemctl(tmp_path)
    systemctl.set("", status=1)
    fm = check(systemctl)
    [failed] = await fm.run([])
    assert failed.type is T.CHECK_FAILED
    assert failed.details == {"check": "fabricmanager"}
    assert "exited with 1" in failed.message
    systemctl.set("no state here\n")
    [garbled] = await fm.run([])
    assert "gave no ActiveState" in garbled.message
    missing = FabricManagerCheck(
        FabricManagerCheckSettings(enabled=True, systemctl=str(tmp_path / "nowhere"))
    )
    [gone] = await missing.run([])
    assert gone.type is T.CHECK_FAILED


async def test_a_machine_without_nvswitches_is_not_checked(tmp_path, mock_clock, monkeypatch):
    import navarch.plugins.builtin.health_checks.fabricmanager as fabricmanager

    monkeypatch.setattr(fabricmanager, "has_nvswitches", lambda: False)
    systemctl = FakeSystemctl(tmp_path)
    systemctl.set(FAILED)
    fm = FabricManagerCheck(FabricManagerCheckSettings(systemctl=str(systemctl.path)))
    assert await fm.run([]) == []
    assert not systemctl.args.exists()


async def test_the_default_policy_takes_the_node_out_of_service(tmp_path, mock_clock):
    systemctl = FakeSystemctl(tmp_path)
    systemctl.set(NOT_FOUND)
    events = await check(systemctl).run([])
    [match] = judge_each(events)
    assert (match.result, match.action, match.rule) == (
        Result.UNHEALTHY,
        Action.CORDON,
        "fabric-manager-down",
    )
