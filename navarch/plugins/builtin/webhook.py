"""The webhook notifier: POSTs each event as JSON to a URL, signed when a secret is set.

The body is `{"event": {...}}` with the event in the API's wire format. With `secret_env`, the
header `X-Navarch-Signature: sha256=<hex>` carries the HMAC-SHA256 of the body under the secret
that variable holds, so the receiver can tell the control plane's posts from anyone else's.
Events wait in a bounded queue; when it is full the newest event is dropped and logged, and a
failed post is retried with growing delays, then dropped and logged. Neither ever reaches the
code that recorded the event.

trio and httpx are imported where they are used: every navarch command loads the built-in
plugins, and `navarch --help` must stay fast.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from datetime import timedelta
from typing import TYPE_CHECKING

from attrs import field, frozen

from navarch.plugins import (
    Event,
    NavarchError,
    NotifierSettings,
    Register,
    event_document,
    hookimpl,
    redact_url,
    validators,
)

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("navarch.notifiers.webhook")

SIGNATURE_HEADER = "X-Navarch-Signature"


def signature(secret: str, body: bytes) -> str:
    """The value of the signature header for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@frozen(kw_only=True)
class WebhookSettings(NotifierSettings):
    url: str = field(validator=validators.url)
    # The environment variable that holds the signing secret; empty sends no signature.
    secret_env: str = ""
    # The longest one post may take.
    timeout: timedelta = field(default=timedelta(seconds=10), validator=validators.positive)
    # Retries after a failed post; the delay doubles from `backoff` each time.
    retries: int = field(default=3, validator=validators.at_least(0))
    backoff: timedelta = field(default=timedelta(seconds=1), validator=validators.positive)
    queue_size: int = field(default=1000, validator=validators.at_least(1))


class WebhookNotifier:
    Settings = WebhookSettings

    def __init__(self, settings: WebhookSettings, name: str = "webhook") -> None:
        self.settings = settings
        self.name = name
        self._secret = ""
        if settings.secret_env:
            self._secret = os.environ.get(settings.secret_env, "")
            if not self._secret:
                raise NavarchError(
                    f"notifiers.{name}.secret_env: the environment variable "
                    f"{settings.secret_env} is not set"
                )
        import trio

        self._send, self._receive = trio.open_memory_channel[bytes](settings.queue_size)
        self.delivered = 0
        self.dropped = 0

    def notify(self, event: Event) -> None:
        if not self.settings.admits(event):
            return
        body = json.dumps(
            {"event": event_document(event)}, separators=(",", ":"), sort_keys=True
        ).encode()
        import trio

        try:
            self._send.send_nowait(body)
        except trio.WouldBlock:
            self.dropped += 1
            log.warning("notifier=%s queue full; dropped event=%s", self.name, event.kind)

    async def run(self) -> None:
        import httpx

        async with httpx.AsyncClient() as client:
            async for body in self._receive:
                await self._deliver(client, body)

    async def _deliver(self, client: httpx.AsyncClient, body: bytes) -> None:
        import trio

        headers = {"Content-Type": "application/json", "User-Agent": "navarch"}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, body)
        delay = self.settings.backoff.total_seconds()
        for attempt in range(self.settings.retries + 1):
            problem = ""
            with trio.move_on_after(self.settings.timeout.total_seconds()) as scope:
                try:
                    response = await client.post(self.settings.url, content=body, headers=headers)
                except Exception as exc:  # any transport failure is retried the same way
                    problem = str(exc) or type(exc).__name__
                else:
                    if response.is_success:
                        self.delivered += 1
                        return
                    problem = f"HTTP {response.status_code}"
            if scope.cancelled_caught:
                problem = f"no answer within {self.settings.timeout.total_seconds():g}s"
            log.warning(
                "notifier=%s post to %s failed (attempt %d): %s",
                self.name,
                redact_url(self.settings.url),
                attempt + 1,
                problem,
            )
            if attempt < self.settings.retries:
                await trio.sleep(delay)
                delay *= 2
        self.dropped += 1


@hookimpl
def navarch_notifiers(register: Register) -> None:
    register("webhook", WebhookNotifier)
