"""Compute Engine's errors, as recorded in its own shapes, become the kinds navarch reacts to."""

import json

import pytest
from gcp_requests import request

from navarch.plugins import (
    AuthError,
    CapacityError,
    InstanceNotFound,
    ProviderError,
    QuotaError,
    TransientError,
)

ZONE_URL = "https://www.googleapis.com/compute/v1/projects/navarch-test/zones/us-central1-a"


def sync_error(code, reason, message, domain="global", **extra):
    errors = [{"message": message, "domain": domain, "reason": reason}]
    return {"error": {"code": code, "message": message, "errors": errors, **extra}}


def failed_operation(status, code, message, details=None):
    error = {"code": code, "message": message}
    if details:
        error["errorDetails"] = details
    return {
        "kind": "compute#operation",
        "id": "4012391203918230",
        "name": "operation-1736961234567-62b7d9e0a1b2c-3d4e5f60-7a8b9c0d",
        "zone": ZONE_URL,
        "operationType": "insert",
        "targetLink": f"{ZONE_URL}/instances/train-0123456789",
        "status": "DONE",
        "progress": 100,
        "error": {"errors": [error]},
        "httpErrorStatusCode": status,
        "httpErrorMessage": {403: "FORBIDDEN", 503: "SERVICE UNAVAILABLE"}.get(status, "ERROR"),
    }


ALL_REGIONS = "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 0.0 globally."
REGIONAL = "Quota 'NVIDIA_H100_GPUS' exceeded.  Limit: 8.0 in region us-central1."
NO_RESOURCES = (
    "The zone 'projects/navarch-test/zones/us-central1-a' does not have enough resources "
    "available to fulfill the request.  Try a different zone, or try again later."
)

# (id, HTTP status of the insert reply, its body, the error provision raises, all_regions)
RECORDED = [
    (
        "capacity in the operation",
        200,
        failed_operation(503, "ZONE_RESOURCE_POOL_EXHAUSTED", NO_RESOURCES),
        CapacityError,
        None,
    ),
    (
        "capacity with details",
        200,
        failed_operation(
            503,
            "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
            "The zone 'projects/navarch-test/zones/us-central1-a' does not have enough resources "
            "available to fulfill the request. '(resource type:compute)'.",
        ),
        CapacityError,
        None,
    ),
    (
        "capacity, synchronous",
        503,
        sync_error(503, "resourcePoolExhausted", NO_RESOURCES),
        CapacityError,
        None,
    ),
    ("regional quota", 200, failed_operation(403, "QUOTA_EXCEEDED", REGIONAL), QuotaError, False),
    (
        "all-regions quota",
        200,
        failed_operation(403, "QUOTA_EXCEEDED", ALL_REGIONS),
        QuotaError,
        True,
    ),
    (
        "all-regions quota named in the details",
        200,
        failed_operation(
            403,
            "QUOTA_EXCEEDED",
            "Quota exceeded for quota metric 'GPUs (all regions)' and limit 'GPUs (all regions) "
            "per project' of service 'compute.googleapis.com'.",
            [
                {
                    "quotaInfo": {
                        "metricName": "compute.googleapis.com/gpus_all_regions",
                        "limitName": "GPUS-ALL-REGIONS-per-project",
                        "limit": 0,
                    }
                }
            ],
        ),
        QuotaError,
        True,
    ),
    (
        "synchronous quota",
        403,
        sync_error(403, "quotaExceeded", ALL_REGIONS, "usageLimits"),
        QuotaError,
        True,
    ),
    (
        "refused credentials",
        401,
        sync_error(
            401,
            "authError",
            "Request had invalid authentication credentials.",
            status="UNAUTHENTICATED",
        ),
        AuthError,
        None,
    ),
    (
        "missing permission",
        403,
        sync_error(
            403,
            "forbidden",
            "Required 'compute.instances.create' permission for "
            "'projects/navarch-test/zones/us-central1-a/instances/train-0123456789'",
        ),
        AuthError,
        None,
    ),
    (
        "API disabled",
        403,
        sync_error(
            403,
            "accessNotConfigured",
            "Compute Engine API has not been used in project 123456789 before or it is disabled.",
            "usageLimits",
        ),
        AuthError,
        None,
    ),
    (
        "rate limit",
        403,
        sync_error(403, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits"),
        TransientError,
        None,
    ),
    (
        "too many requests",
        429,
        sync_error(429, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits"),
        TransientError,
        None,
    ),
    (
        "operation rate",
        200,
        failed_operation(
            403,
            "RESOURCE_OPERATION_RATE_EXCEEDED",
            "Operation rate exceeded for resource 'projects/navarch-test/zones/us-central1-a'.",
        ),
        TransientError,
        None,
    ),
    (
        "server error",
        500,
        sync_error(500, "backendError", "Internal error. Please try again."),
        TransientError,
        None,
    ),
    ("a proxy's page", 502, b"<html><body>502 Bad Gateway</body></html>", TransientError, None),
    (
        "bad machine type",
        400,
        sync_error(400, "invalid", "Invalid value for field 'resource.machineType': 'a9-none'."),
        ProviderError,
        None,
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "error", "all_regions"),
    [r[1:] for r in RECORDED],
    ids=[r[0] for r in RECORDED],
)
async def test_a_recorded_error_becomes_its_kind(gce, provider, status, body, error, all_regions):
    # Three replies: the plugin retries what fails in passing before it gives up.
    gce.scripted = [(status, body)] * 3
    with pytest.raises(ProviderError) as raised:
        await provider.provision(request())
    assert type(raised.value) is error
    assert str(raised.value).startswith("gcp: insert us-central1-a/train-")
    if all_regions is not None:
        assert raised.value.all_regions is all_regions
    assert gce.instances == {}


async def test_a_passing_failure_is_retried_inside_the_plugin(gce, provider):
    gce.scripted = [(503, sync_error(503, "backendError", "Internal error."))] * 2
    instance = await provider.provision(request())
    assert instance.instance_id in gce.instances


async def test_a_refused_token_exchange_is_an_auth_error_that_names_the_endpoint(gce, provider):
    gce.revoke_keys()
    with pytest.raises(AuthError, match=r"token endpoint .*/token .*refused.*invalid_grant"):
        await provider.list()


@pytest.mark.parametrize(
    ("reply", "complaint"),
    [
        (b"<html>maintenance</html>", "the reply is not a JSON object"),
        ({"kind": "compute#operation", "status": "RUNNING"}, "the operation has no 'name' field"),
        ([1, 2], "the reply is not a JSON object"),
    ],
    ids=["html", "operation without a name", "a list"],
)
async def test_a_reply_out_of_shape_is_a_clear_error(gce, provider, reply, complaint):
    gce.scripted = [(200, reply)]
    with pytest.raises(ProviderError, match=complaint):
        await provider.provision(request())


async def test_a_listed_instance_without_its_fields_is_a_clear_error(gce, provider):
    gce.scripted = [(200, {"items": {"zones/us-central1-a": {"instances": [{"name": "x"}]}}})]
    with pytest.raises(ProviderError, match="instance x has no 'status' field"):
        await provider.list()


async def test_an_error_never_shows_the_token(gce, provider):
    gce.scripted = [(400, sync_error(400, "invalid", "bad"))]
    with pytest.raises(ProviderError) as raised:
        await provider.provision(request())
    assert "ya29" not in str(raised.value)
    assert json.dumps(gce.inserted).count("ya29") == 0


async def test_rebooting_an_unknown_machine_raises_instance_not_found(gce, provider):
    with pytest.raises(InstanceNotFound, match="no instance train-0123456789 in navarch-test"):
        await provider.reboot("train-0123456789")
    assert gce.resets == []


async def test_rebooting_a_machine_deleted_behind_navarchs_back_raises_instance_not_found(
    gce, provider
):
    instance = await provider.provision(request())
    del gce.instances[instance.instance_id]
    with pytest.raises(InstanceNotFound, match=r"reset us-central1-a/train-.*not found"):
        await provider.reboot(instance.instance_id)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (
            (403, sync_error(403, "forbidden", "Required 'compute.instances.reset' permission")),
            AuthError,
        ),
        (
            (503, sync_error(503, "backendError", "Internal error. Please try again.")),
            TransientError,
        ),
        (
            (
                200,
                {
                    **failed_operation(
                        403,
                        "RESOURCE_OPERATION_RATE_EXCEEDED",
                        "Operation rate exceeded for resource "
                        "'projects/navarch-test/zones/us-central1-a'.",
                    ),
                    "operationType": "reset",
                },
            ),
            TransientError,
        ),
    ],
    ids=["missing permission", "server error", "operation rate"],
)
async def test_a_refused_reset_becomes_its_kind(gce, provider, reply, error):
    instance = await provider.provision(request())
    # Three replies: the plugin retries what fails in passing before it gives up.
    gce.scripted = [reply] * 3
    with pytest.raises(ProviderError) as raised:
        await provider.reboot(instance.instance_id)
    assert type(raised.value) is error
    assert str(raised.value).startswith(f"gcp: reset us-central1-a/{instance.instance_id}: ")
    assert gce.resets == []


async def test_a_reboot_with_revoked_credentials_raises_auth_error(gce, provider):
    instance = await provider.provision(request())
    gce.revoke_keys()
    with pytest.raises(AuthError):
        await provider.reboot(instance.instance_id)
