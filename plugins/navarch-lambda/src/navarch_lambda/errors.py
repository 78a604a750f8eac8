"""Lambda's error replies mapped onto the kinds of navarch error that tell the core how to react.

Lambda's error body is `{"error": {"code", "message", "suggestion"?}}`. The mapping branches on
`code`, which Lambda keeps stable, and never on `message`, which it may reword.
"""

from __future__ import annotations

import json

from navarch.plugins import (
    AuthError,
    CapacityError,
    InstanceNotFound,
    ProviderError,
    QuotaError,
    TransientError,
)

_AUTH = {
    "global/invalid-api-key",
    "global/account-inactive",
    "global/forbidden",
    "global/invalid-address",
}
_NOT_FOUND = {"global/object-does-not-exist", "global/not-found"}


class Throttled(TransientError):
    """A 429: Lambda asks the caller to slow down, for `retry_after` seconds when it says."""

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_for(
    status: int, body: bytes, call: str, *, retry_after: str = "", instance_call: bool = False
) -> ProviderError:
    """The error for a reply of HTTP `status` to `call`. `instance_call` says the call names one
    instance, so that "does not exist" means the instance is gone rather than, on a launch, that
    an SSH key or file system it names is unknown."""
    code, message = _read(body)
    text = f"lambda: {call}: HTTP {status}" + (f" {code}" if code else "") + f": {message}"
    if code == "instance-operations/launch/insufficient-capacity":
        return CapacityError(text)
    if code == "global/quota-exceeded":
        # Lambda's quota belongs to the account, not to a region.
        return QuotaError(text, all_regions=True)
    if code in _AUTH or status == 401:
        return AuthError(text)
    if code in _NOT_FOUND and instance_call:
        return InstanceNotFound(text)
    if status == 429:
        return Throttled(text, retry_after=_seconds(retry_after))
    if status >= 500:
        return TransientError(text)
    return ProviderError(text)


def _read(body: bytes) -> tuple[str, str]:
    """The code and the message (with Lambda's suggestion) of an error body. A body in another
    shape, such as a proxy's HTML page, gives no code and a message that says so."""
    try:
        error = json.loads(body)["error"]
        code, message = error["code"], error["message"]
        suggestion = error.get("suggestion") or ""
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        return "", f"an error reply that is not Lambda's ({len(body)} bytes)"
    if not all(isinstance(part, str) for part in (code, message, suggestion)):
        return "", "an error reply whose code, message or suggestion is not a string"
    if suggestion:
        message = f"{message.rstrip('.')}. {suggestion}"
    return code, message


def _seconds(retry_after: str) -> float | None:
    """The delay of a `Retry-After` header given in seconds; None for none or an HTTP date."""
    try:
        seconds = float(retry_after)
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None
