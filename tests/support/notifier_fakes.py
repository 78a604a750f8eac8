"""Loopback fakes of the Slack incoming-webhook and PagerDuty Events API v2 endpoints.

Each is a real HTTP server on 127.0.0.1 that checks what it is sent as the public docs describe
the API and answers as the API does; `failures` scripts answers (a status and headers, such as
a 429 with Retry-After) for the next posts before the fake answers normally again.

- Slack (api.slack.com/messaging/webhooks): a POST of a JSON message with `text` or `blocks`
  to the webhook's path is answered 200 `ok`; a message with neither is 400 `no_text`, a body
  that is not JSON 400 `invalid_payload`, another path 404 `no_service`.
- PagerDuty (developer.pagerduty.com, Events API v2): a POST to /v2/enqueue of `routing_key` (32
  characters), `event_action` (trigger, acknowledge or resolve), `dedup_key` (required to
  acknowledge or resolve) and, to trigger, `payload` with `summary`, `source` and `severity`
  (critical, error, warning or info) is answered 202 with the dedup key; anything else is 400
  with the errors. The fake keeps the incidents by dedup key, as PagerDuty does: a trigger on an
  open key adds to that incident.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import h11
import trio

Answer = tuple[int, list[tuple[str, str]], bytes]


async def until(condition: Callable[[], bool]) -> None:
    """Waits until `condition()` holds: a notifier's count after the fake has answered."""
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.01)


class LoopbackApi:
    """An HTTP server on 127.0.0.1 that records each request and answers with `answer`."""

    def __init__(self) -> None:
        self.base = ""
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.failures: list[tuple[int, dict[str, str]]] = []
        self._arrived = trio.Event()

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    def answer(self, path: str, body: bytes) -> Answer:
        raise NotImplementedError

    async def wait_for(self, count: int) -> None:
        """Waits until `count` requests have arrived."""
        with trio.fail_after(10):
            while len(self.requests) < count:
                await self._arrived.wait()

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        path, headers, body = "", {}, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    return
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                path = event.target.decode()
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                body = b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                if self.failures:
                    code, extra = self.failures.pop(0)
                    answer: Answer = (code, list(extra.items()), b"")
                else:
                    answer = self.answer(path, body)
                # Recorded once answered, so a test that waits for it sees what it changed.
                self.requests.append((path, headers, body))
                code, reply_headers, reply = answer
                reply_headers = [*reply_headers, ("content-length", str(len(reply)))]
                await stream.send_all(
                    conn.send(h11.Response(status_code=code, headers=reply_headers))
                )
                await stream.send_all(conn.send(h11.Data(data=reply)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                conn.start_next_cycle()
                self._arrived.set()
                self._arrived = trio.Event()
            elif isinstance(event, h11.ConnectionClosed):
                return


class FakeSlack(LoopbackApi):
    PATH = "/services/T0NAVARCH/B0NAVARCH/s3cretW3bhookToken"

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        """The incoming webhook's URL: the secret the notifier reads from its variable."""
        return self.base + self.PATH

    def answer(self, path: str, body: bytes) -> Answer:
        text = [("content-type", "text/plain")]
        if path != self.PATH:
            return 404, text, b"no_service"
        try:
            message = json.loads(body)
        except ValueError:
            return 400, text, b"invalid_payload"
        if not isinstance(message, dict) or not (message.get("text") or message.get("blocks")):
            return 400, text, b"no_text"
        self.messages.append(message)
        return 200, text, b"ok"


ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
_SEVERITIES = ("critical", "error", "warning", "info")


class FakePagerDuty(LoopbackApi):
    PATH = "/v2/enqueue"

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []
        # dedup key -> "triggered" or "resolved", and the triggers each incident got.
        self.incidents: dict[str, str] = {}
        self.alerts: dict[str, int] = {}

    @property
    def url(self) -> str:
        return self.base + self.PATH

    def answer(self, path: str, body: bytes) -> Answer:
        if path != self.PATH:
            return _json(404, {"status": "not found"})
        try:
            event = json.loads(body)
        except ValueError:
            return _json(400, {"status": "invalid event", "errors": ["body is not JSON"]})
        errors = _problems(event)
        if errors:
            return _json(
                400,
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
            )
        self.events.append(event)
        key = event.get("dedup_key") or uuid.uuid4().hex
        action = event["event_action"]
        if action == "trigger":
            if self.incidents.get(key) != "triggered":
                self.incidents[key] = "triggered"
            self.alerts[key] = self.alerts.get(key, 0) + 1
        elif key in self.incidents and self.incidents[key] != "resolved":
            self.incidents[key] = "resolved" if action == "resolve" else "acknowledged"
        return _json(202, {"status": "success", "message": "Event processed", "dedup_key": key})


def _problems(event: Any) -> list[str]:
    if not isinstance(event, dict):
        return ["the event is not an object"]
    problems = []
    if not isinstance(event.get("routing_key"), str) or len(event["routing_key"]) != 32:
        problems.append("'routing_key' must be 32 characters")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        problems.append("'event_action' must be trigger, acknowledge or resolve")
    if action in ("acknowledge", "resolve") and not event.get("dedup_key"):
        problems.append("'dedup_key' is required to acknowledge or resolve")
    if len(str(event.get("dedup_key", ""))) > 255:
        problems.append("'dedup_key' must be at most 255 characters")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*problems, "'payload' is required to trigger"]
        for key in ("summary", "source", "severity"):
            if not payload.get(key):
                problems.append(f"'payload.{key}' is missing")
        if payload.get("severity") not in _SEVERITIES:
            problems.append("'payload.severity' is invalid")
        if len(str(payload.get("summary", ""))) > 1024:
            problems.append("'payload.summary' must be at most 1024 characters")
    return problems


def _json(code: int, document: dict[str, Any]) -> Answer:
    return code, [("content-type", "application/json")], json.dumps(document).encode()
