"""The default policy's rules for the machine's fabric: InfiniBand, NVSwitch, fabric manager."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support.health_policy import judge_each, verdict

from navarch.health import Action, Result
from navarch.model import HealthEvent
from navarch.model import HealthEventType as T

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def event(type_: T, **details: str) -> HealthEvent:
    return HealthEvent(type=type_, time=NOW, details=details)


@pytest.mark.parametrize(
    ("judged", "expected"),
    [
        (event(T.INFINIBAND, problem="port_down"), ("infiniband-port-down", "unhealthy", "cordon")),
        (event(T.INFINIBAND, problem="rate_low"), ("infiniband-rate-low", "degraded", "alert")),
        (event(T.INFINIBAND, problem="counters"), ("infiniband-errors", "degraded", "alert")),
        (event(T.INFINIBAND), ("", "healthy", "none")),
        (event(T.NVSWITCH, severity="fatal"), ("nvswitch-fatal", "unhealthy", "reboot")),
        (event(T.NVSWITCH, severity="non-fatal"), ("nvswitch-nonfatal", "degraded", "alert")),
        (event(T.NVSWITCH, severity="unknown"), ("nvswitch-nonfatal", "degraded", "alert")),
        (event(T.NVSWITCH), ("nvswitch-nonfatal", "degraded", "alert")),
        (
            event(T.NVSWITCH, severity="correctable"),
            ("nvswitch-correctable", "healthy", "none"),
        ),
        (
            event(T.FABRIC_MANAGER, active_state="failed"),
            ("fabric-manager-down", "unhealthy", "cordon"),
        ),
        (
            event(T.CHECK_FAILED, check="infiniband"),
            ("check-failed", "degraded", "alert"),
        ),
    ],
)
def test_each_fabric_event_gets_its_rule(judged, expected):
    [match] = judge_each([judged])
    assert not match.errors
    assert (match.rule, match.result.value, match.action.value) == expected


def test_a_fatal_sxid_outranks_earlier_fabric_alerts():
    result = verdict(
        [
            (0.0, [event(T.INFINIBAND, problem="counters")]),
            (10.0, [event(T.NVSWITCH, severity="non-fatal")]),
            (20.0, [event(T.NVSWITCH, severity="fatal")]),
        ]
    )
    assert (result.health, result.action, result.rule) == (
        Result.UNHEALTHY,
        Action.REBOOT,
        "nvswitch-fatal",
    )
