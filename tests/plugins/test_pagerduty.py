"""The PagerDuty notifier against a loopback fake of the Events API v2."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
from support.notifier_fakes import ROUTING_KEY, FakePagerDuty, until
from support.remediation import (
    DONE,
    PoolManagerStandIn,
    daemon_acking_drains,
    episodes,
    open_plane,
    report,
    wait_for_step,
    xid,
)
from support.service import register

from navarch.config import parse_config
from navarch.errors import ConfigError, NavarchError
from navarch.model import Event
from navarch.plugins import Notifier
from navarch.plugins.builtin.delivery import retry_after
from navarch.plugins.builtin.pagerduty import PagerDutyNotifier, PagerDutySettings

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DASHBOARD = "https://navarch.example.com"


def settings(fake: FakePagerDuty, **overrides: object) -> PagerDutySettings:
    return PagerDutySettings(
        routing_key_env="PD_ROUTING_KEY",
        events_url=fake.url,
        dashboard_url=DASHBOARD,
        backoff=timedelta(milliseconds=1),
        **overrides,  # type: ignore[arg-type]
    )


def an_event(kind: str, node_id: str = "gpu-1", **details: str) -> Event:
    return Event(
        event_id="e",
        time=T0,
        kind=kind,
        node_id=node_id,
        actor="remediation",
        reason="judged for replacement",
        details=details,
    )


@pytest.fixture(autouse=True)
def routing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_ROUTING_KEY", ROUTING_KEY)


async def test_a_remediation_episode_is_one_incident_resolved_when_it_is_done(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakePagerDuty()
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        pager = PagerDutyNotifier(settings(fake), name="pager")
        async with open_plane(tmp_path / "db", PoolManagerStandIn(), notifiers=[pager]) as plane:
            for name in ("train-0", "train-1", "train-2", "train-3"):
                await register(plane, name, pool="train")
            await report(plane, "train-0", xid(79))
            async with trio.open_nursery() as acks:
                acks.start_soon(daemon_acking_drains, plane, "train-0")
                await wait_for_step(plane, "train-0", DONE)
            [episode] = await episodes(plane)
            with trio.fail_after(10):
                while "resolve" not in [e["event_action"] for e in fake.events]:
                    await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    key = f"navarch-episode-{episode.episode_id}"
    actions = [(e["event_action"], e["dedup_key"]) for e in fake.events]
    assert actions[0] == ("trigger", key)
    assert actions[-1] == ("resolve", key)
    assert {k for _, k in actions} == {key}
    assert len(actions) >= 4  # started, its steps, then the resolve
    assert fake.incidents == {key: "resolved"}
    first = fake.events[0]
    assert first["payload"]["severity"] == "warning"
    assert first["payload"]["source"] == "train-0"
    assert first["payload"]["summary"].startswith("remediation.started on node train-0")
    assert first["payload"]["custom_details"]["details"]["episode"] == episode.episode_id
    assert first["links"] == [
        {"href": f"{DASHBOARD}/ui/nodes/train-0", "text": "Node train-0"},
        {"href": f"{DASHBOARD}/ui/remediations", "text": "Remediations"},
    ]
    assert ROUTING_KEY not in caplog.text


async def test_a_held_episode_stays_open_at_critical_until_it_is_cancelled() -> None:
    fake = FakePagerDuty()
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        pager = PagerDutyNotifier(settings(fake))
        nursery.start_soon(pager.run)
        pager.notify(an_event("remediation.started", episode="ep1", step="pending"))
        pager.notify(an_event("remediation.step", episode="ep1", step="drain"))
        pager.notify(an_event("remediation.held", episode="ep1", step="held"))
        await fake.wait_for(3)
        assert fake.incidents == {"navarch-episode-ep1": "triggered"}
        assert fake.events[-1]["payload"]["severity"] == "critical"
        pager.notify(an_event("remediation.cancelled", episode="ep1", step="cancelled"))
        await fake.wait_for(4)
        nursery.cancel_scope.cancel()
    assert fake.incidents == {"navarch-episode-ep1": "resolved"}
    assert fake.alerts == {"navarch-episode-ep1": 3}


async def test_routing_decides_what_opens_an_incident_not_what_ends_one() -> None:
    fake = FakePagerDuty()
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        pager = PagerDutyNotifier(settings(fake, min_severity="critical"))
        nursery.start_soon(pager.run)
        # A started episode is a warning: below the floor, it opens nothing, nor do its steps.
        pager.notify(an_event("remediation.started", episode="ep1"))
        pager.notify(an_event("remediation.step", episode="ep1"))
        # Kinds outside `kinds` (remediation.* by default) are not sent at all.
        pager.notify(an_event("health.action_required"))
        # A held episode is critical: it opens the incident; the cancel, though info, ends it.
        pager.notify(an_event("remediation.held", episode="ep1"))
        pager.notify(an_event("remediation.cancelled", episode="ep1"))
        # The breaker is one incident per pool, resolved by its reset.
        pager.notify(an_event("remediation.breaker_opened", node_id="", pool="train"))
        pager.notify(an_event("remediation.breaker_reset", node_id="", pool="train"))
        # After a restart the notifier knows no incidents; an end is still sent.
        pager.notify(an_event("remediation.completed", episode="ep0"))
        await fake.wait_for(5)
        nursery.cancel_scope.cancel()
    assert [(e["event_action"], e["dedup_key"]) for e in fake.events] == [
        ("trigger", "navarch-episode-ep1"),
        ("resolve", "navarch-episode-ep1"),
        ("trigger", "navarch-remediation.breaker_opened-pool-train"),
        ("resolve", "navarch-remediation.breaker_opened-pool-train"),
        ("resolve", "navarch-episode-ep0"),
    ]
    assert fake.events[2]["payload"]["source"] == "pool train"


async def test_events_outside_episodes_are_keyed_by_node_and_kind() -> None:
    fake = FakePagerDuty()
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        pager = PagerDutyNotifier(settings(fake, kinds=("health.*",)))
        nursery.start_soon(pager.run)
        pager.notify(an_event("health.action_required"))
        pager.notify(an_event("health.action_required"))
        await fake.wait_for(2)
        nursery.cancel_scope.cancel()
    assert fake.alerts == {"navarch-health.action_required-gpu-1": 2}
    assert fake.events[0]["payload"]["severity"] == "critical"


async def test_pagerduty_retries_500_and_429_and_not_400(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakePagerDuty()
    fake.failures = [(500, {}), (429, {"Retry-After": "12"}), (503, {})]
    waits: list[float] = []

    async def wait(delay: float) -> None:
        waits.append(delay)
        await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        pager = PagerDutyNotifier(settings(fake), name="pager")
        pager.delivery.sleep = wait
        nursery.start_soon(pager.run)
        pager.notify(an_event("remediation.started", episode="ep1"))
        await fake.wait_for(4)
        await until(lambda: pager.delivery.delivered == 1)
        # A post PagerDuty finds invalid (here a trigger it cannot parse) is not retried.
        pager.delivery.put(b'{"routing_key": "short"}', "a bad post")
        pager.notify(an_event("remediation.completed", episode="ep1"))
        await fake.wait_for(6)
        await until(lambda: pager.delivery.delivered == 2)
        nursery.cancel_scope.cancel()
    assert len(fake.requests) == 6
    assert waits[1] == 12.0
    assert 0.0005 <= waits[0] <= 0.001 and 0.002 <= waits[2] <= 0.004
    [refusal] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusal.startswith(
        "notifier=pager PagerDuty refused the post about a bad post: HTTP 400"
    )
    assert "not retried" in refusal and "\n" not in refusal
    assert ROUTING_KEY not in caplog.text
    assert fake.incidents == {"navarch-episode-ep1": "resolved"}


async def test_a_receiver_that_cannot_be_reached_is_retried_then_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []

    async def wait(delay: float) -> None:
        waits.append(delay)
        await trio.lowlevel.checkpoint()

    closed = FakePagerDuty()  # never served: nothing listens on port 9
    closed.base = "http://127.0.0.1:9"
    pager = PagerDutyNotifier(settings(closed, retries=2))
    pager.delivery.sleep = wait
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pager.run)
        pager.notify(an_event("remediation.started", episode="ep1"))
        await until(lambda: pager.delivery.dropped == 1)
        nursery.cancel_scope.cancel()
    assert len(waits) == 2 and pager.delivery.delivered == 0


def test_the_routing_key_comes_from_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config('[notifiers.pd]\ntype = "pagerduty"\nrouting_key_env = "PD_MISSING"\n')
    monkeypatch.delenv("PD_MISSING", raising=False)
    with pytest.raises(NavarchError) as raised:
        config.notifiers["pd"].create(Notifier, name="pd")
    assert str(raised.value).startswith(
        "notifiers.pd.routing_key_env: the environment variable PD_MISSING is not set; set it to"
    )
    with pytest.raises(ConfigError) as bad:
        parse_config(
            '[notifiers.pd]\ntype = "pagerduty"\nrouting_key_env = "PD"\nevents_url = "ftp://x"\n'
        )
    assert [p.split(":")[0] for p in bad.value.problems] == ["notifiers.pd.events_url"]
    with pytest.raises(ConfigError) as missing:
        parse_config('[notifiers.pd]\ntype = "pagerduty"\n')
    assert missing.value.problems == ["notifiers.pd.routing_key_env: required key is missing"]


def test_a_trigger_carries_the_event_as_custom_details() -> None:
    fake = FakePagerDuty()
    fake.base = "http://127.0.0.1:9"  # nothing is posted
    pager = PagerDutyNotifier(settings(fake))
    body = pager.trigger(an_event("remediation.held", episode="ep1", pool="train"), "k")
    assert json.loads(json.dumps(body))["payload"] == {
        "summary": "remediation.held on node gpu-1 (pool train): judged for replacement",
        "source": "gpu-1",
        "severity": "critical",
        "timestamp": "2026-03-01T12:00:00Z",
        "class": "remediation.held",
        "group": "train",
        "custom_details": {
            "eventId": "e",
            "time": "2026-03-01T12:00:00Z",
            "kind": "remediation.held",
            "nodeId": "gpu-1",
            "actor": "remediation",
            "reason": "judged for replacement",
            "details": {"episode": "ep1", "pool": "train"},
        },
    }
    assert (body["dedup_key"], body["client"], body["client_url"]) == ("k", "navarch", DASHBOARD)
    assert "routing_key" not in body  # added only to the post


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    now = datetime(2026, 10, 21, 7, 28, tzinfo=UTC)
    assert retry_after("5", now) == 5.0
    assert retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now) == 30.0
    assert retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now) == 0.0
    assert retry_after("soon", now) is None and retry_after(None, now) is None
    # Digits that are not ASCII ("²" is a digit to str.isdigit) are no delay, not a crash.
    assert retry_after("²", now) is None and retry_after("١٢", now) is None


class EchoingPagerDuty(FakePagerDuty):
    """A receiver that quotes the routing key back in its refusal."""

    def answer(self, path: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        return 400, [], b"unknown routing key " + json.loads(body)["routing_key"].encode()


async def test_a_refusal_that_quotes_the_routing_key_is_logged_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = EchoingPagerDuty()
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        pager = PagerDutyNotifier(settings(fake), name="pager")
        nursery.start_soon(pager.run)
        pager.notify(an_event("remediation.started", episode="ep1"))
        await until(lambda: pager.delivery.dropped == 1)
        nursery.cancel_scope.cancel()
    assert "HTTP 400 (unknown routing key <redacted>)" in caplog.text
    assert ROUTING_KEY not in caplog.text
