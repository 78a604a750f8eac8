"""Calls to the Lambda Cloud API v1: the API key, one HTTP request, and the retries of a call that
failed for a while (429, a 5xx or the network) before `TransientError` reaches the core."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from navarch.plugins import AuthError, TransientError
from navarch_lambda.errors import Throttled, error_for
from navarch_lambda.reply import Reply
from navarch_lambda.settings import KeyProblem, LambdaSettings, read_api_key

T = TypeVar("T")

log = logging.getLogger("navarch_lambda")

# The longest wait between two tries, whatever the backoff or a Retry-After header asks.
_LONGEST_WAIT = 60.0


class LambdaApi:
    def __init__(self, settings: LambdaSettings, *, transport: Any = None) -> None:
        self._settings = settings
        # An httpx transport that tests hand in; None is the network.
        self._transport = transport

    async def call(
        self, method: str, path: str, *, body: object = None, instance_call: bool = False
    ) -> Reply:
        """The reply to a call, tried again while it fails for a while."""
        return await self.retried(
            lambda: self.once(method, path, body=body, instance_call=instance_call)
        )

    async def once(
        self, method: str, path: str, *, body: object = None, instance_call: bool = False
    ) -> Reply:
        """The reply to one try of a call; raises the `ProviderError` its failure maps to.
        `instance_call` says that the call names one instance (see `error_for`)."""
        import httpx  # here, as trio below, so that loading the plugin keeps navarch fast
        import trio

        call = f"{method} {path}"
        try:
            key = await trio.to_thread.run_sync(read_api_key, self._settings)
        except KeyProblem as exc:
            raise AuthError(f"lambda: {exc}") from None
        try:
            async with httpx.AsyncClient(
                base_url=self._settings.url,
                timeout=self._settings.request_timeout.total_seconds(),
                transport=self._transport,
            ) as http:
                response = await http.request(
                    method, path, json=body, headers={"Authorization": f"Bearer {key}"}
                )
        except httpx.TransportError as exc:
            raise TransientError(f"lambda: {call}: {type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return Reply.parse(response.content, call)
        raise error_for(
            response.status_code,
            response.content,
            call,
            retry_after=response.headers.get("Retry-After", ""),
            instance_call=instance_call,
        )

    async def retried(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """What `attempt` returns, tried up to `retries` more times while it raises
        `TransientError`, after a backoff that doubles (or a 429's Retry-After, if longer)."""
        import trio

        delay = self._settings.backoff.total_seconds()
        tries_left = self._settings.retries
        while True:
            try:
                return await attempt()
            except TransientError as exc:
                if not tries_left:
                    raise
                wait = delay
                if isinstance(exc, Throttled) and exc.retry_after is not None:
                    wait = max(wait, exc.retry_after)
                wait = min(wait, _LONGEST_WAIT)
                log.warning("%s; trying again in %gs", exc, wait)
                await trio.sleep(wait)
                delay *= 2
                tries_left -= 1
