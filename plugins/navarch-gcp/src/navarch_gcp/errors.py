"""Compute Engine's errors, in its own shapes, mapped onto the kinds of error navarch reacts to.

A synchronous error is `{"error": {"code": HTTP, "message", "errors": [{"domain", "reason",
"message"}]}}`; a failed operation carries `error.errors[{code, message, errorDetails?}]` and
`httpErrorStatusCode`. Both go through `classify`, which reads the codes before the HTTP status:
a zone without capacity answers 503 and an exhausted quota 403.
"""

from __future__ import annotations

import json
import re
from typing import Any

from attrs import frozen

from navarch.plugins import (
    AuthError,
    CapacityError,
    ProviderError,
    QuotaError,
    TransientError,
)

CAPACITY = frozenset(
    {
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        "resourcePoolExhausted",
    }
)
QUOTA = frozenset({"QUOTA_EXCEEDED", "quotaExceeded"})
# Throttling and passing server trouble: worth the same request again, after a while.
PASSING = frozenset(
    {
        "rateLimitExceeded",
        "userRateLimitExceeded",
        "RESOURCE_OPERATION_RATE_EXCEEDED",
        "backendError",
        "internalError",
    }
)
AUTH = frozenset(
    {
        "authError",
        "forbidden",
        "insufficientPermissions",
        "accessNotConfigured",
        "PERMISSIONS_ERROR",
    }
)
ALREADY_EXISTS = frozenset({"alreadyExists", "RESOURCE_ALREADY_EXISTS"})
NOT_FOUND = frozenset({"notFound", "RESOURCE_NOT_FOUND"})

_ALL_REGIONS = re.compile(r"gpus[_-]all[_-]regions", re.IGNORECASE)


@frozen
class Failure:
    """One error reply: the HTTP status and the codes GCP gave, before it becomes an exception."""

    status: int
    codes: tuple[str, ...]
    message: str
    # The error's errorDetails as text, where a quota's name may be.
    details: str = ""

    def has(self, codes: frozenset[str]) -> bool:
        return any(code in codes for code in self.codes)

    def error(self, what: str) -> ProviderError:
        """The navarch error for this failure of `what` (`insert us-central1-a/train-1a2b`)."""
        text = f"gcp: {what}: {'/'.join(self.codes) or self.status}: {self.message}"
        if self.has(CAPACITY):
            return CapacityError(text)
        if self.has(QUOTA):
            all_regions = bool(_ALL_REGIONS.search(self.message + " " + self.details))
            return QuotaError(text, all_regions=all_regions)
        if self.has(PASSING) or self.status == 429 or self.status >= 500:
            return TransientError(text)
        if self.has(AUTH) or self.status in (401, 403):
            return AuthError(text)
        return ProviderError(text)


def http_failure(status: int, content: bytes) -> Failure:
    """The failure a non-2xx reply describes; a reply not in GCP's shape (a proxy's HTML page)
    keeps its status and the start of its text."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        text = content.decode("utf-8", "replace").strip().replace("\n", " ")[:200]
        return Failure(status, (), text or "an empty reply")
    entries = [e for e in _list(error.get("errors")) if isinstance(e, dict)]
    codes = tuple(str(e["reason"]) for e in entries if e.get("reason"))
    message = str(error.get("message") or "; ".join(str(e.get("message", "")) for e in entries))
    return Failure(status, codes, message, json.dumps(error.get("details", "")))


def operation_failure(operation: dict[str, Any]) -> Failure | None:
    """The failure a finished operation reports, or None when it succeeded."""
    error = operation.get("error")
    if not error:
        return None
    listed = _list(error.get("errors") if isinstance(error, dict) else None)
    entries = [e for e in listed if isinstance(e, dict)]
    status = operation.get("httpErrorStatusCode")
    return Failure(
        status if isinstance(status, int) else 400,
        tuple(str(e["code"]) for e in entries if e.get("code")),
        "; ".join(str(e.get("message", "")) for e in entries)
        or str(operation.get("httpErrorMessage") or "the operation failed"),
        json.dumps([e.get("errorDetails", []) for e in entries]),
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
