"""Routing: every notifier table's `kinds` and `min_severity`, and the severity of each event."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
from support.notifier_fakes import FakeSlack

from navarch.config import parse_config
from navarch.errors import ConfigError
from navarch.model import Event, InstanceStatus, NodeStatus
from navarch.plugins import (
    EVENT_SEVERITIES,
    Notifier,
    NotifierSettings,
    Severity,
    severity_of,
)
from navarch.plugins.builtin.slack import SlackNotifier, SlackSettings

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2] / "navarch"


def an_event(kind: str, **fields: object) -> Event:
    return Event(event_id="e", time=T0, kind=kind, node_id="gpu-1", **fields)  # type: ignore[arg-type]


def test_every_event_kind_the_control_plane_records_has_a_severity() -> None:
    # Events are made in functions; a module's named constants are other things' names.
    pattern = re.compile(r"^(node|health|command|remediation|pool|instance)\.[a-z_]+$")
    functions = [
        function
        for folder in ("controlplane", "pools")
        for path in (ROOT / folder).glob("*.py")
        for function in ast.walk(ast.parse(path.read_text()))
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    recorded = {
        node.value
        for function in functions
        for node in ast.walk(function)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and pattern.match(node.value)
    }
    recorded |= {f"instance.{status.value}" for status in InstanceStatus}  # instances.move
    assert "remediation.held" in recorded and "pool.scaled" in recorded
    assert sorted(recorded - set(EVENT_SEVERITIES)) == []


def test_a_status_or_health_change_takes_the_severity_of_where_the_node_went() -> None:
    unhealthy = an_event(
        "node.status_changed", from_status=NodeStatus.ACTIVE, to_status=NodeStatus.UNHEALTHY
    )
    cordoned = an_event(
        "node.status_changed", from_status=NodeStatus.ACTIVE, to_status=NodeStatus.CORDONED
    )
    assert severity_of(unhealthy) is Severity.CRITICAL
    assert severity_of(cordoned) is Severity.INFO
    for to, expected in (("unhealthy", "critical"), ("degraded", "warning"), ("healthy", "info")):
        changed = an_event("node.health_changed", details={"from": "healthy", "to": to})
        assert severity_of(changed).value == expected
    assert severity_of(an_event("remediation.held")) is Severity.CRITICAL
    assert severity_of(an_event("some.future_kind")) is Severity.INFO


@pytest.mark.parametrize(
    ("kinds", "min_severity", "admitted"),
    [
        ((), "info", {"remediation.started", "node.registered", "health.action_required"}),
        (("remediation.*",), "info", {"remediation.started"}),
        ((), "warning", {"remediation.started", "health.action_required"}),
        (("node.registered", "health.*"), "critical", {"health.action_required"}),
    ],
)
def test_kinds_and_min_severity_both_decide(
    kinds: tuple[str, ...], min_severity: str, admitted: set[str]
) -> None:
    settings = NotifierSettings(kinds=kinds, min_severity=min_severity)
    offered = ("remediation.started", "node.registered", "health.action_required")
    assert {k for k in offered if settings.admits(an_event(k))} == admitted


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (
            'kinds = ["remediation.strated"]',
            'notifiers.ops.kinds[0]: unknown event kind "remediation.strated" '
            "(did you mean 'remediation.started'?)",
        ),
        (
            'kinds = ["node.registered", "remediation."]',
            'notifiers.ops.kinds[1]: unknown event kind "remediation." '
            "(did you mean 'remediation.*'?)",
        ),
        (
            'min_severity = "high"',
            'notifiers.ops.min_severity: expected one of "info", "warning", "critical", got "high"',
        ),
        (
            'min_severity = "warn"',
            "(did you mean 'warning'?)",
        ),
    ],
)
@pytest.mark.parametrize(
    "plugin",
    [
        'type = "webhook"\nurl = "http://127.0.0.1/"',
        'type = "slack"\nwebhook_url_env = "SLACK_URL"',
        'type = "pagerduty"\nrouting_key_env = "PD_KEY"',
    ],
)
def test_a_bad_route_is_one_line_naming_the_key(plugin: str, table: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(f"[notifiers.ops]\n{plugin}\n{table}\n")
    [line] = raised.value.problems
    assert problem in line
    assert "\n" not in str(line)


async def test_a_slack_notifier_sends_only_what_its_route_admits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slack = FakeSlack()
    async with trio.open_nursery() as nursery:
        await nursery.start(slack.serve)
        monkeypatch.setenv("SLACK_URL", slack.url)
        config = parse_config(
            "[notifiers.chat]\n"
            'type = "slack"\n'
            'webhook_url_env = "SLACK_URL"\n'
            'kinds = ["remediation.*", "node.health_changed"]\n'
            'min_severity = "warning"\n'
        )
        notifier = config.notifiers["chat"].create(Notifier, name="chat")
        assert isinstance(notifier, SlackNotifier)
        nursery.start_soon(notifier.run)
        notifier.notify(an_event("node.registered"))  # kind not routed
        notifier.notify(an_event("remediation.step"))  # info
        notifier.notify(
            an_event("node.health_changed", details={"from": "healthy", "to": "healthy"})
        )
        notifier.notify(
            an_event("node.health_changed", details={"from": "healthy", "to": "degraded"})
        )
        notifier.notify(an_event("remediation.held", reason="the breaker is open"))
        await slack.wait_for(2)
        nursery.cancel_scope.cancel()
    assert [m["text"].split("] ")[1].split(" on ")[0] for m in slack.messages] == [
        "node.health_changed",
        "remediation.held",
    ]


def test_the_built_in_notifiers_route_by_default_as_documented() -> None:
    assert (SlackSettings(webhook_url_env="X").kinds, SlackSettings(webhook_url_env="X").floor) == (
        (),
        Severity.WARNING,
    )
    config = parse_config(
        '[notifiers.pd]\ntype = "pagerduty"\nrouting_key_env = "PD"\n'
        '[notifiers.hook]\ntype = "webhook"\nurl = "http://127.0.0.1/"\n'
    )
    pd, hook = config.notifiers["pd"].settings, config.notifiers["hook"].settings
    assert (pd.kinds, pd.min_severity) == (("remediation.*",), "warning")
    assert (hook.kinds, hook.min_severity) == ((), "info")


def test_the_severity_table_in_the_docs_matches_the_code() -> None:
    page = (ROOT.parent / "docs" / "notifications.md").read_text("utf-8")
    table = page.split("## Severities", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("| `")
    ]
    documented = {row[0].strip("`"): row[1].split(";")[0] for row in rows}
    assert documented == {kind: s.value for kind, s in EVENT_SEVERITIES.items()}
