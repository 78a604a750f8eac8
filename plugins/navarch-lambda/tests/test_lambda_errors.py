"""Lambda's errors become the kinds of navarch error that tell the core how to react, and a reply
that is not what the API documents raises a clear error instead of crashing the provider."""

import json
import logging
import socket

import attrs
import pytest
from fake_lambda import API_KEY, BAD_GATEWAY, TOO_MANY, UNAVAILABLE, error_body
from navarch_lambda import LambdaProvider

from navarch.plugins import (
    POOL_LABEL,
    AuthError,
    CapacityError,
    InstanceNotFound,
    ProviderError,
    ProvisionRequest,
    QuotaError,
    TransientError,
)

LAUNCH = "/instance-operations/launch"
TERMINATE = "/instance-operations/terminate"

REQUEST = ProvisionRequest(
    name="train",
    instance_type="gpu_8x_h100_sxm5",
    region="us-east-1",
    pool="train",
    labels={POOL_LABEL: "train"},
    request_id="errors-1",
)

# Error replies in the shape Lambda gives them, one per documented code.
RECORDED = [
    (
        400,
        "instance-operations/launch/insufficient-capacity",
        "Not enough capacity to fulfill launch request.",
        CapacityError,
    ),
    (400, "global/quota-exceeded", "Quota exceeded.", QuotaError),
    (401, "global/invalid-api-key", "API key was invalid, expired, or deleted.", AuthError),
    (403, "global/account-inactive", "Your account is inactive.", AuthError),
    (403, "global/forbidden", "Forbidden.", AuthError),
    (403, "global/invalid-address", "Requests from this address are not allowed.", AuthError),
    (400, "global/invalid-parameters", "Invalid instance type.", ProviderError),
    (
        400,
        "instance-operations/launch/file-system-in-wrong-region",
        "File system is in a different region.",
        ProviderError,
    ),
    # On a launch, "does not exist" names the SSH key or file system, not an instance.
    (400, "global/object-does-not-exist", "Specified SSH key does not exist.", ProviderError),
    (409, "global/conflict", "Conflict.", ProviderError),
]


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"), RECORDED, ids=[r[1] for r in RECORDED]
)
async def test_a_launch_error_becomes_the_kind_its_code_says(
    provider, fake, status, code, message, kind
):
    fake.script("POST", LAUNCH, status, error_body(code, message, "Try again."))
    with pytest.raises(ProviderError) as raised:
        await provider.provision(REQUEST)
    assert type(raised.value) is kind
    assert str(raised.value) == (
        f"lambda: POST {LAUNCH}: HTTP {status} {code}: {message.rstrip('.')}. Try again."
    )


async def test_lambdas_quota_spans_every_region(provider, fake):
    fake.quota = 0
    with pytest.raises(QuotaError) as raised:
        await provider.provision(REQUEST)
    assert raised.value.all_regions


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, "global/object-does-not-exist"),
        (400, "global/object-does-not-exist"),
        (404, "global/not-found"),
    ],
)
async def test_terminating_an_instance_lambda_does_not_know_raises_instance_not_found(
    provider, fake, status, code
):
    fake.script("POST", TERMINATE, status, error_body(code, "Specified instance does not exist."))
    with pytest.raises(InstanceNotFound, match=code):
        await provider.terminate("0123456789abcdef0123456789abcdef")


async def test_a_failing_api_is_tried_again_before_the_core_hears_of_it(provider, fake):
    fake.script("GET", "/instances", *UNAVAILABLE)
    fake.script("GET", "/instances", *BAD_GATEWAY)
    assert await provider.list() == []
    assert len(fake.calls) == 3


async def test_an_api_that_keeps_failing_raises_transient_error_after_the_retries(
    provider, fake, caplog
):
    fake.failing = True
    with (
        caplog.at_level(logging.WARNING, logger="navarch_lambda"),
        pytest.raises(TransientError, match="HTTP 503: an error reply that is not Lambda's"),
    ):
        await provider.list()
    assert len(fake.calls) == 3  # the call and its two retries
    assert "trying again in" in caplog.text
    assert API_KEY not in caplog.text


async def test_a_rate_limited_launch_waits_and_is_spaced_again(provider, fake):
    fake.script("POST", LAUNCH, *TOO_MANY, {"Retry-After": "0.2"})
    instance = await provider.provision(REQUEST)
    times = [at for at, method, path, *_ in fake.calls if path == LAUNCH]
    assert len(times) == 2 and times[1] - times[0] >= 0.2
    assert list(fake.instances) == [instance.instance_id]


async def test_an_unreachable_api_raises_transient_error(settings):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    provider = LambdaProvider(attrs.evolve(settings, url=f"http://127.0.0.1:{port}/api/v1"))
    with pytest.raises(TransientError, match="GET /instances: ConnectError"):
        await provider.list()


def instance(**changes):
    found = {
        "id": "0123456789abcdef0123456789abcdef",
        "name": "train-1",
        "status": "active",
        "region": {"name": "us-east-1", "description": "Virginia, USA"},
        "instance_type": {"name": "gpu_8x_h100_sxm5"},
        "tags": [{"key": POOL_LABEL, "value": "train"}],
    }
    found.update(changes)
    return found


def offer(**changes):
    found = {
        "instance_type": {
            "name": "gpu_8x_h100_sxm5",
            "description": "8x H100 (80 GB SXM5)",
            "gpu_description": "H100 (80 GB SXM5)",
            "price_cents_per_hour": 2392,
            "specs": {"vcpus": 208, "memory_gib": 1800, "storage_gib": 22000, "gpus": 8},
        },
        "regions_with_capacity_available": [{"name": "us-east-1", "description": "Virginia"}],
    }
    found.update(changes)
    return found


def listed(*instances):
    return json.dumps({"data": list(instances)}).encode()


# Replies that the API does not document, and the message each one gives.
HOSTILE = [
    ("/instances", b"<html>Welcome to nginx</html>", "GET /instances: the reply is not JSON"),
    ("/instances", b'{"data": {}}', "GET /instances: data: expected a list, got an object"),
    ("/instances", b"[]", "GET /instances: the reply: expected an object, got a list"),
    ("/instances", listed(instance(id=7)), "data[0].id: expected a string, got 7"),
    ("/instances", listed(instance(region=None)), "data[0].region is missing"),
    ("/instances", listed(instance(tags="train")), "data[0].tags: expected a list, got a string"),
    (
        "/instances",
        listed(instance(status="hibernating")),
        "data[0].status: unknown status 'hibernating'",
    ),
    (
        "/instances",
        listed(instance(tags=[{"key": POOL_LABEL}])),
        "data[0].tags[0].value is missing",
    ),
    (
        "/instance-types",
        # The price one level up, where the old Go client read it.
        json.dumps(
            {
                "data": {
                    "gpu_8x_h100_sxm5": {
                        **offer(),
                        "price_cents_per_hour": 2392,
                        "instance_type": {
                            k: v
                            for k, v in offer()["instance_type"].items()
                            if k != "price_cents_per_hour"
                        },
                    }
                }
            }
        ).encode(),
        "data.gpu_8x_h100_sxm5.instance_type.price_cents_per_hour is missing",
    ),
    (
        "/instance-types",
        json.dumps({"data": {"x": offer(regions_with_capacity_available="us-east-1")}}).encode(),
        "data.x.regions_with_capacity_available: expected a list, got a string",
    ),
]


@pytest.mark.parametrize(("path", "reply", "message"), HOSTILE)
async def test_a_reply_the_api_does_not_document_raises_a_provider_error_naming_it(
    provider, fake, path, reply, message
):
    fake.script("GET", path, 200, reply)
    read = provider.list if path == "/instances" else provider.instance_types
    with pytest.raises(ProviderError) as raised:
        await read()
    assert type(raised.value) is ProviderError
    assert message in str(raised.value)


async def test_the_catalog_leaves_out_lambdas_cpu_only_types(provider, fake):
    cpu = offer()
    cpu["instance_type"] = {**cpu["instance_type"], "name": "cpu_4x_general", "gpu_description": ""}
    cpu["instance_type"]["specs"] = {**cpu["instance_type"]["specs"], "gpus": 0}
    fake.script(
        "GET", "/instance-types", 200, json.dumps({"data": {"a": offer(), "b": cpu}}).encode()
    )
    assert [t.name for t in await provider.instance_types()] == ["gpu_8x_h100_sxm5"]


async def test_a_launch_reply_without_an_id_raises_a_provider_error(provider, fake):
    fake.script("POST", LAUNCH, 200, b'{"data": {"instance_ids": []}}')
    with pytest.raises(ProviderError, match=r"data\.instance_ids: expected an id, got none"):
        await provider.provision(REQUEST)


async def test_an_error_reply_in_another_shape_is_still_classified_by_its_status(provider, fake):
    fake.script("POST", LAUNCH, 400, b'{"message": "bad request"}')
    with pytest.raises(ProviderError, match="HTTP 400: an error reply that is not Lambda's"):
        await provider.provision(REQUEST)
    fake.script("POST", LAUNCH, 401, b"Unauthorized")
    with pytest.raises(AuthError):
        await provider.provision(REQUEST)


RESTART = "/instance-operations/restart"


async def test_rebooting_an_instance_lambda_does_not_know_raises_instance_not_found(provider, fake):
    with pytest.raises(InstanceNotFound, match="global/object-does-not-exist"):
        await provider.reboot("0123456789abcdef0123456789abcdef")
    assert fake.restarts == []


async def test_rebooting_a_terminated_instance_raises_instance_not_found(provider, fake):
    instance = await provider.provision(REQUEST)
    await provider.terminate(instance.instance_id)
    with pytest.raises(InstanceNotFound):
        await provider.reboot(instance.instance_id)


async def test_a_reboot_with_a_refused_key_raises_auth_error(provider, fake):
    instance = await provider.provision(REQUEST)
    fake.api_key = "secret_revoked"
    with pytest.raises(AuthError, match="global/invalid-api-key"):
        await provider.reboot(instance.instance_id)
    assert fake.restarts == []


async def test_a_reboot_is_tried_again_while_the_api_fails_and_then_raises_transient_error(
    provider, fake
):
    instance = await provider.provision(REQUEST)
    fake.script("POST", RESTART, *UNAVAILABLE)
    await provider.reboot(instance.instance_id)
    assert fake.restarts == [instance.instance_id]
    fake.failing = True
    with pytest.raises(TransientError, match=f"POST {RESTART}: HTTP 503"):
        await provider.reboot(instance.instance_id)


async def test_a_restart_reply_without_the_instance_raises_a_provider_error(provider, fake):
    fake.script("POST", RESTART, 200, b'{"data": {"restarted_instances": []}}')
    with pytest.raises(ProviderError, match="is not among the instances Lambda restarted"):
        await provider.reboot("0123456789abcdef0123456789abcdef")
