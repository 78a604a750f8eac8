"""EC2's errors as navarch's kinds of provider error, by EC2's error code."""

from __future__ import annotations

from typing import Any

from navarch.plugins import (
    AuthError,
    CapacityError,
    InstanceNotFound,
    ProviderError,
    QuotaError,
    TransientError,
)

# No machines of the type here now: fail over to the next candidate at once. EC2 answers several
# of these with a 500, so the code decides before the status does.
CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "MaxSpotInstanceCountExceeded",
        "SpotMaxPriceTooLow",
        "UnfulfillableCapacity",
        "InsufficientCapacity",
        "Unsupported",
    }
)
# EC2's quotas (vCPUs by instance family, instances) are regional.
QUOTA_CODES = frozenset({"VcpuLimitExceeded", "InstanceLimitExceeded"})
THROTTLING_CODES = frozenset({"RequestLimitExceeded", "Throttling"})
AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "OptInRequired",
        "ExpiredToken",
    }
)
NOT_FOUND_CODES = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})


def error_for(code: str, status: int, message: str) -> ProviderError:
    """The kind of navarch error for EC2's error `code`, answered with HTTP `status`."""
    if code in CAPACITY_CODES:
        return CapacityError(message)
    if code in QUOTA_CODES:
        return QuotaError(message)
    if code in AUTH_CODES:
        return AuthError(message)
    if code in NOT_FOUND_CODES:
        return InstanceNotFound(message)
    if code in THROTTLING_CODES or status >= 500:
        return TransientError(message)
    return ProviderError(message)


def classify(exc: Exception, what: str) -> ProviderError:
    """The navarch error for what boto3 raised while doing `what` ("RunInstances in us-east-1");
    an exception that is not botocore's becomes a plain `ProviderError`."""
    from botocore import exceptions  # type: ignore[import-untyped, unused-ignore]

    if isinstance(exc, exceptions.ClientError):
        reply: Any = exc.response if isinstance(exc.response, dict) else {}
        error = reply.get("Error") or {}
        code = str(error.get("Code") or "")
        status = (reply.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
        detail = str(error.get("Message") or "") or f"HTTP {status}"
        shown = f"{code}: {detail}" if code and code != str(status) else detail
        return error_for(code, int(status), f"aws: {what}: {shown}")
    if isinstance(
        exc,
        exceptions.NoCredentialsError
        | exceptions.PartialCredentialsError
        | exceptions.CredentialRetrievalError
        | exceptions.ProfileNotFound,
    ):
        return AuthError(f"aws: {what}: {exc}")
    if isinstance(exc, exceptions.HTTPClientError | exceptions.ConnectionError):
        return TransientError(f"aws: {what}: {exc}")
    return ProviderError(f"aws: {what}: {type(exc).__name__}: {exc}")
