"""Delivery for the Slack and PagerDuty notifiers: a bounded queue of JSON posts and the task
that sends them, in order, one at a time.

A post that fails for a reason that may pass (no connection, no answer in time, HTTP 429 or
5xx) is retried after a delay that doubles from `backoff` with random jitter, or after the
receiver's `Retry-After` when it sends one. Any other refusal (HTTP 400, 403, 404...) is not
retried: it is logged once, in one line, with the receiver's explanation. When the queue is
full, the newest post is dropped and logged. No log line carries the URL or the body, since
either may hold the secret (a Slack webhook URL is one; a PagerDuty body carries the routing
key).
"""

from __future__ import annotations

import email.utils
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import httpx
import trio
from attrs import frozen

log = logging.getLogger("navarch.notifiers")

# The longest delay before a retry, the receiver's Retry-After included.
MAX_DELAY = 300.0
# How much of a refusal's body the log line quotes.
_QUOTE = 200


@frozen
class Post:
    body: bytes
    # What the post is about, for log lines: "remediation.started for gpu-1".
    about: str


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """The delay a `Retry-After` header asks for, in seconds (delta-seconds or an HTTP date),
    or None for no header or a value that is neither."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_delay(backoff: float, attempt: int) -> float:
    """The delay before retry number `attempt` (0 first): `backoff` doubled per attempt, with
    jitter that takes up to half of it away, so that many senders do not retry in step."""
    delay = min(backoff * 2**attempt, MAX_DELAY)
    return random.uniform(delay / 2, delay)


class Delivery:
    """Posts JSON bodies to one URL for one notifier."""

    def __init__(
        self,
        notifier: str,
        receiver: str,
        url: str,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        queue_size: int,
        secrets: Sequence[str] = (),
    ) -> None:
        self.notifier = notifier
        self.receiver = receiver  # "Slack", "PagerDuty": names the other end in log lines
        self._url = url
        # Never shown: the URL (a Slack webhook's is the secret) and any other secret given.
        self._secrets = [url, *(secret for secret in secrets if secret)]
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._headers = {"Content-Type": "application/json", "User-Agent": "navarch"}
        self._send, self._receive = trio.open_memory_channel[Post](queue_size)
        self.delivered = 0
        self.dropped = 0
        # How the delay before a retry is waited; tests replace it to see the delays.
        self.sleep: Callable[[float], Awaitable[None]] = trio.sleep

    def put(self, body: bytes, about: str) -> None:
        """Queues a post; never blocks. A full queue drops it and logs that."""
        try:
            self._send.send_nowait(Post(body, about))
        except trio.WouldBlock:
            self.dropped += 1
            log.warning("notifier=%s queue full; dropped the post about %s", self.notifier, about)

    async def run(self) -> None:
        async with httpx.AsyncClient() as client:
            async for post in self._receive:
                await self._deliver(client, post)

    async def _deliver(self, client: httpx.AsyncClient, post: Post) -> None:
        for attempt in range(self.retries + 1):
            problem, wait = await self._attempt(client, post)
            if not problem:
                self.delivered += 1
                return
            if wait is None:  # refused: retrying would be refused again
                self.dropped += 1
                log.warning(
                    "notifier=%s %s refused the post about %s: %s; it is dropped, not retried",
                    self.notifier,
                    self.receiver,
                    post.about,
                    problem,
                )
                return
            if attempt == self.retries:
                break
            delay = min(wait, MAX_DELAY) if wait else backoff_delay(self.backoff, attempt)
            log.warning(
                "notifier=%s post about %s to %s failed (attempt %d): %s; retrying in %.3gs",
                self.notifier,
                post.about,
                self.receiver,
                attempt + 1,
                problem,
                delay,
            )
            await self.sleep(delay)
        self.dropped += 1
        log.warning(
            "notifier=%s post about %s to %s failed %d times (last: %s); it is dropped",
            self.notifier,
            post.about,
            self.receiver,
            self.retries + 1,
            problem,
        )

    async def _attempt(self, client: httpx.AsyncClient, post: Post) -> tuple[str, float | None]:
        """One post: ("", _) when delivered, else the problem and the wait before a retry
        (0 for the usual backoff, None when the post must not be retried)."""
        with trio.move_on_after(self.timeout):
            try:
                response = await client.post(self._url, content=post.body, headers=self._headers)
            except Exception as exc:  # any transport failure may pass: retried the same way
                return self._hide(f"{type(exc).__name__}: {exc}"), 0
            if response.is_success:
                return "", 0
            status = response.status_code
            problem = f"HTTP {status}"
            said = self._hide(" ".join(response.text[:_QUOTE].split()))
            if said:
                problem += f" ({said})"
            if status == 429:
                return problem, retry_after(response.headers.get("Retry-After")) or 0
            if status >= 500:
                return problem, 0
            return problem, None
        return f"no answer within {self.timeout:g}s", 0

    def _hide(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text
