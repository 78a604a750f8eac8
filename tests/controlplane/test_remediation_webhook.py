from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import h11
import pytest
import trio

from navarch.api import wire as m
from navarch.config import parse_config
from navarch.errors import ConfigError, NavarchError
from navarch.plugins import Notifier
from navarch.plugins.builtin.webhook import (
    SIGNATURE_HEADER,
    WebhookNotifier,
    WebhookSettings,
    signature,
)


class Receiver:
    """A loopback HTTP server that answers each post with the next status in `statuses`."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.url = ""
        self.got = trio.Event()

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        headers: dict[str, str] = {}
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    return
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                body = b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.posts.append((headers, body))
                code = self.statuses.pop(0) if self.statuses else 200
                reply = [("content-length", "0")]
                await stream.send_all(conn.send(h11.Response(status_code=code, headers=reply)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                conn.start_next_cycle()
                self.got.set()
                self.got = trio.Event()
            elif isinstance(event, h11.ConnectionClosed):
                return


def an_event(kind: str) -> m.Event:
    return m.Event(
        event_id="01J0000000000000000000000",
        time=datetime(2026, 3, 1, tzinfo=UTC),
        kind=kind,
        node_id="gpu-1",
        actor="remediation",
        reason="judged for replacement",
        details={"episode": "e1", "step": "pending"},
    )


async def wait_for_posts(receiver: Receiver, count: int) -> None:
    with trio.fail_after(10):
        while len(receiver.posts) < count:
            await receiver.got.wait()


async def test_the_webhook_posts_signed_json_and_retries_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    receiver = Receiver([500, 503])
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        settings = WebhookSettings(
            url=receiver.url,
            secret_env="HOOK_SECRET",
            retries=3,
            backoff=timedelta(milliseconds=1),
            kinds=("remediation.*", "node.status_changed"),
        )
        notifier = WebhookNotifier(settings, name="ops")
        nursery.start_soon(notifier.run)
        notifier.notify(an_event("health.reported"))
        notifier.notify(an_event("remediation.started"))
        await wait_for_posts(receiver, 3)
        nursery.cancel_scope.cancel()
    assert notifier.delivered == 1
    bodies = {body for _, body in receiver.posts}
    assert len(bodies) == 1
    headers, body = receiver.posts[-1]
    assert headers["content-type"] == "application/json"
    assert headers[SIGNATURE_HEADER.lower()] == signature("s3cret", body)
    sent = json.loads(body)["event"]
    assert (sent["kind"], sent["nodeId"], sent["details"]["episode"]) == (
        "remediation.started",
        "gpu-1",
        "e1",
    )


async def test_a_webhook_that_keeps_failing_drops_the_event_and_never_blocks() -> None:
    receiver = Receiver([500] * 10)
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        settings = WebhookSettings(
            url=receiver.url, retries=1, backoff=timedelta(milliseconds=1), queue_size=1
        )
        notifier = WebhookNotifier(settings)
        for _ in range(5):
            notifier.notify(an_event("node.status_changed"))
        assert notifier.dropped == 4
        nursery.start_soon(notifier.run)
        await wait_for_posts(receiver, 2)
        with trio.fail_after(10):
            while notifier.dropped < 5:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert notifier.delivered == 0
    assert "x-navarch-signature" not in receiver.posts[0][0]


def test_webhook_settings_are_checked_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    for line, key in (('url = "ftp://example"', "url"), ("retries = -1", "retries")):
        url = "" if key == "url" else 'url = "http://127.0.0.1/"\n'
        with pytest.raises(ConfigError) as raised:
            parse_config(f'[notifiers.ops]\ntype = "webhook"\n{url}{line}\n')
        assert f"notifiers.ops.{key}" in "\n".join(raised.value.problems)
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    config = parse_config(
        '[notifiers.ops]\ntype = "webhook"\nurl = "http://127.0.0.1/"\nsecret_env = "HOOK_SECRET"\n'
    )
    with pytest.raises(NavarchError, match="HOOK_SECRET is not set"):
        config.notifiers["ops"].create(Notifier, name="ops")
