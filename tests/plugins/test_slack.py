"""The Slack notifier against a loopback fake of Slack's incoming webhooks."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest
import trio
from support.control_plane_process import control_plane_process
from support.navarch_process import run_navarch
from support.notifier_fakes import FakeSlack, until

from navarch.api import wire as m
from navarch.api.client import HttpClient
from navarch.config import parse_config
from navarch.errors import NavarchError
from navarch.model import Event
from navarch.plugins import Notifier
from navarch.plugins.builtin.slack import SlackNotifier, SlackSettings, message

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DASHBOARD = "https://navarch.example.com"


def held(node_id: str = "gpu-7") -> Event:
    return Event(
        event_id="01J0000000000000000000000",
        time=T0,
        kind="remediation.held",
        node_id=node_id,
        actor="remediation",
        reason="drain timed out <after 1h> & held",
        details={"episode": "ep1", "step": "held", "pool": "train", "rule": "xid-replace"},
    )


def test_a_message_names_the_node_the_reason_and_links_the_dashboard() -> None:
    sent = message(held(), DASHBOARD)
    assert sent["text"] == (
        ":red_circle: [critical] remediation.held on node gpu-7 (pool train): "
        "drain timed out &lt;after 1h&gt; &amp; held"
    )
    head, fields, context = sent["blocks"]
    assert head["text"]["text"] == (
        f":red_circle: *remediation.held* on node <{DASHBOARD}/ui/nodes/gpu-7|gpu-7>\n"
        "drain timed out &lt;after 1h&gt; &amp; held"
    )
    assert {"type": "mrkdwn", "text": "*episode*\nep1"} in fields["fields"]
    assert {"type": "mrkdwn", "text": "*actor*\nremediation"} in fields["fields"]
    assert context["elements"][0]["text"] == (
        f"critical · 2026-03-01T12:00:00Z · <{DASHBOARD}/ui/nodes/gpu-7|Node gpu-7> · "
        f"<{DASHBOARD}/ui/remediations|Remediations>"
    )
    # A reason cannot mention the channel or forge a link.
    forged = attrs.evolve(held(), reason="<!channel> see <https://evil.example|the runbook>")
    assert "<!channel>" not in json.dumps(message(forged, DASHBOARD))
    assert "<https://evil" not in json.dumps(message(forged, DASHBOARD))
    # Without a dashboard, no links: the node is named as code.
    plain = message(held(), "")
    assert "on node `gpu-7`" in plain["blocks"][0]["text"]["text"]
    assert "<http" not in str(plain)


def fast(url_env: str = "SLACK_URL", **overrides: object) -> SlackSettings:
    return SlackSettings(
        webhook_url_env=url_env,
        dashboard_url=DASHBOARD,
        backoff=timedelta(milliseconds=1),
        **overrides,  # type: ignore[arg-type]
    )


async def test_slack_retries_5xx_and_429_after_retry_after_and_never_logs_the_url(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slack = FakeSlack()
    slack.failures = [(500, {}), (429, {"Retry-After": "30"})]
    waits: list[float] = []

    async def wait(delay: float) -> None:
        waits.append(delay)
        await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        await nursery.start(slack.serve)
        monkeypatch.setenv("SLACK_URL", slack.url)
        notifier = SlackNotifier(fast(), name="chat")
        notifier.delivery.sleep = wait
        nursery.start_soon(notifier.run)
        notifier.notify(held())
        await slack.wait_for(3)
        await until(lambda: notifier.delivery.delivered == 1)
        nursery.cancel_scope.cancel()
    assert len(slack.messages) == 1
    # The 500 waits the first backoff, jittered into its upper half; the 429 waits what it says.
    assert 0.0005 <= waits[0] <= 0.001 and waits[1] == 30.0
    assert slack.PATH not in caplog.text and "s3cret" not in caplog.text
    assert "HTTP 429" in caplog.text


async def test_a_refused_message_is_logged_once_and_not_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slack = FakeSlack()
    async with trio.open_nursery() as nursery:
        await nursery.start(slack.serve)
        monkeypatch.setenv("SLACK_URL", slack.base + "/services/T0NAVARCH/B0NAVARCH/revoked")
        notifier = SlackNotifier(fast(), name="chat")
        nursery.start_soon(notifier.run)
        with caplog.at_level(logging.WARNING, logger="navarch.notifiers"):
            notifier.notify(held("gpu-1"))
            notifier.notify(held("gpu-2"))
            await slack.wait_for(2)
            await until(lambda: notifier.delivery.dropped == 2)
        nursery.cancel_scope.cancel()
    assert len(slack.requests) == 2  # one attempt each
    refusals = [r.getMessage() for r in caplog.records]
    assert refusals == [
        f"notifier=chat Slack refused the post about remediation.held for {node}: "
        "HTTP 404 (no_service); it is dropped, not retried"
        for node in ("gpu-1", "gpu-2")
    ]
    assert "revoked" not in caplog.text


async def test_a_slow_slack_never_blocks_the_control_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_URL", "http://127.0.0.1:9/services/x")
    notifier = SlackNotifier(fast(queue_size=2), name="chat")
    for _ in range(5):  # nothing delivers: the queue fills, and notify still returns at once
        notifier.notify(held())
    assert notifier.delivery.dropped == 3


def test_the_webhook_url_comes_from_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config('[notifiers.chat]\ntype = "slack"\nwebhook_url_env = "NO_SUCH_VAR"\n')
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    with pytest.raises(NavarchError) as raised:
        config.notifiers["chat"].create(Notifier, name="chat")
    assert str(raised.value) == (
        "notifiers.chat.webhook_url_env: the environment variable NO_SUCH_VAR is not set; "
        "set it to the Slack incoming webhook URL"
    )
    monkeypatch.setenv("NO_SUCH_VAR", "not a url")
    with pytest.raises(NavarchError, match="does not hold an http:// or https:// URL"):
        config.notifiers["chat"].create(Notifier, name="chat")
    secret = "https://hooks.slack.com/services/T0/B0/s3cret"
    with pytest.raises(Exception) as raised:
        parse_config(f'[notifiers.chat]\ntype = "slack"\nwebhook_url_env = "{secret}"\n')
    assert "notifiers.chat.webhook_url_env: expected the name of an environment variable" in str(
        raised.value
    )
    assert "s3cret" not in str(raised.value)


async def test_navarch_control_plane_run_from_the_command_line_posts_to_slack(
    tmp_path: Path,
) -> None:
    slack = FakeSlack()
    config = tmp_path / "navarch.toml"
    config.write_text(
        "[notifiers.chat]\n"
        'type = "slack"\n'
        'webhook_url_env = "NAVARCH_TEST_SLACK_URL"\n'
        f'dashboard_url = "{DASHBOARD}"\n'
        'kinds = ["node.status_changed"]\n'
        'min_severity = "info"\n'
    )

    async def register_node(url: str) -> None:
        async with HttpClient(url) as client:
            await client.register_node(m.RegisterNodeRequest(node_id="gpu-9"))

    def operate() -> None:
        env = {"NAVARCH_TEST_SLACK_URL": slack.url, "NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1"}
        args = ("--config", str(config), "--data-dir", str(tmp_path / "data"))
        with control_plane_process(*args, "--listen", "127.0.0.1:0", env=env) as (_, url, _):
            trio.run(register_node, url)
            cordon = run_navarch(
                "cordon", "gpu-9", "--reason", "swap the NIC", env={**env, "NAVARCH_SERVER": url}
            )
            assert cordon.returncode == 0, cordon.stderr
            deadline = time.monotonic() + 20
            while not slack.messages and time.monotonic() < deadline:
                time.sleep(0.05)

    async with trio.open_nursery() as nursery:
        await nursery.start(slack.serve)
        await trio.to_thread.run_sync(operate)
        nursery.cancel_scope.cancel()
    [sent] = slack.messages
    assert sent["text"].endswith(
        "node.status_changed on node gpu-9: active → cordoned, swap the NIC"
    )
    assert f"<{DASHBOARD}/ui/nodes/gpu-9|gpu-9>" in sent["blocks"][0]["text"]["text"]
