"""EC2's refusals, served over loopback in EC2's XML, reach navarch as the right kind of error."""

import socket
import time
from datetime import timedelta

import pytest
from aws_cloud import REGION, aws_env, ec2_error, ec2_proxy, image_id, moto_url
from navarch_aws import AwsProvider, AwsSettings

from navarch.plugins import (
    AuthError,
    CapacityError,
    InstanceNotFound,
    ProviderError,
    ProvisionRequest,
    QuotaError,
    TransientError,
)

__all__ = ["aws_env", "ec2_proxy", "image_id", "moto_url"]

# Each code EC2 answers RunInstances with, its HTTP status, and the kind navarch makes of it.
CODES = [
    ("InsufficientInstanceCapacity", 500, CapacityError),
    ("InsufficientHostCapacity", 500, CapacityError),
    ("InsufficientReservedInstanceCapacity", 500, CapacityError),
    ("InsufficientCapacity", 500, CapacityError),
    ("MaxSpotInstanceCountExceeded", 400, CapacityError),
    ("SpotMaxPriceTooLow", 400, CapacityError),
    ("UnfulfillableCapacity", 400, CapacityError),
    ("Unsupported", 400, CapacityError),
    ("VcpuLimitExceeded", 400, QuotaError),
    ("InstanceLimitExceeded", 400, QuotaError),
    ("RequestLimitExceeded", 503, TransientError),
    ("Throttling", 400, TransientError),
    ("InternalError", 500, TransientError),
    ("Unavailable", 503, TransientError),
    ("AuthFailure", 401, AuthError),
    ("UnauthorizedOperation", 403, AuthError),
    ("InvalidClientTokenId", 403, AuthError),
    ("SignatureDoesNotMatch", 403, AuthError),
    ("OptInRequired", 403, AuthError),
    ("InvalidParameterValue", 400, ProviderError),
    ("InvalidAMIID.NotFound", 400, ProviderError),
]


def request(**changes):
    fields = {
        "name": "train",
        "instance_type": "g5.xlarge",
        "region": REGION,
        "pool": "train",
        "labels": {"navarch.io/pool": "train"},
        "request_id": "8d7f2c1e-0b4a-4d1e-9a51-3f2b6c9e7a10",
    }
    return ProvisionRequest(**{**fields, **changes})


def in_pool(pool):
    """A request in a pool of its own: moto's instances outlive the test that made them."""
    return request(name=pool, pool=pool, labels={"navarch.io/pool": pool}, request_id=pool)


@pytest.fixture
def provider(aws_env, ec2_proxy, image_id):
    return AwsProvider(AwsSettings(endpoint_url=ec2_proxy.url, image_id=image_id))


@pytest.mark.parametrize(("code", "status", "kind"), CODES, ids=[c[0] for c in CODES])
async def test_each_ec2_error_code_raises_its_kind(provider, ec2_proxy, code, status, kind):
    ec2_proxy.answers["RunInstances"] = (status, ec2_error(code, f"the cloud says {code}"))
    with pytest.raises(ProviderError) as raised:
        await provider.provision(request())
    assert type(raised.value) is kind
    assert str(raised.value) == f"aws: RunInstances in {REGION}: {code}: the cloud says {code}"
    # botocore's own retries are off: navarch sees each refusal once and decides.
    assert len(ec2_proxy.of("RunInstances")) == 1


@pytest.mark.parametrize("code", ["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"])
async def test_terminating_an_instance_ec2_does_not_know_raises_instance_not_found(
    provider, ec2_proxy, code
):
    ec2_proxy.answers["TerminateInstances"] = (400, ec2_error(code, "no such instance"))
    with pytest.raises(InstanceNotFound, match="no instance i-0fffffffffffffff0 in us-east-1"):
        await provider.terminate("i-0fffffffffffffff0")


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (502, "<html><body>502 Bad Gateway</body></html>", TransientError),
        (500, "", TransientError),
        (400, "not xml at all", ProviderError),
        (200, "<RunInstancesResponse><instancesSet/></RunInstancesResponse>", ProviderError),
        (200, "<html>a captive portal</html>", ProviderError),
    ],
    ids=["gateway-html", "empty-500", "garbage-400", "no-instance", "html-200"],
)
async def test_an_odd_reply_is_a_provider_error_not_a_crash(
    provider, ec2_proxy, status, body, kind
):
    ec2_proxy.answers["RunInstances"] = (status, body)
    with pytest.raises(ProviderError) as raised:
        await provider.provision(request())
    assert type(raised.value) is kind, raised.value


async def test_a_closed_endpoint_is_a_transient_error(aws_env, image_id):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}"
    provider = AwsProvider(AwsSettings(endpoint_url=closed, image_id=image_id))
    with pytest.raises(TransientError, match="Could not connect to the endpoint URL"):
        await provider.provision(request())


async def test_an_endpoint_that_does_not_answer_in_time_is_a_transient_error(aws_env, image_id):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        provider = AwsProvider(
            AwsSettings(
                endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
                image_id=image_id,
                request_timeout=timedelta(milliseconds=300),
            )
        )
        started = time.monotonic()
        with pytest.raises(TransientError, match="Read timeout"):
            await provider.provision(request())
    assert time.monotonic() - started < 5


async def test_missing_credentials_are_an_auth_error(aws_env, ec2_proxy, image_id, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    provider = AwsProvider(AwsSettings(endpoint_url=ec2_proxy.url, image_id=image_id))
    with pytest.raises(AuthError, match="Unable to locate credentials"):
        await provider.provision(request())
    assert ec2_proxy.calls == []


async def test_a_region_without_an_image_is_refused_before_calling_ec2(aws_env, ec2_proxy):
    provider = AwsProvider(
        AwsSettings(endpoint_url=ec2_proxy.url, images={"eu-west-1": "ami-0aaaaaaaaaaaaaaa0"})
    )
    with pytest.raises(ProviderError, match="no image for us-east-1"):
        await provider.provision(request())
    assert ec2_proxy.calls == []


async def test_rebooting_an_instance_ec2_does_not_know_raises_instance_not_found(provider):
    with pytest.raises(InstanceNotFound, match="no instance i-0fffffffffffffff0 in us-east-1"):
        await provider.reboot("i-0fffffffffffffff0")


async def test_rebooting_an_instance_navarch_terminated_raises_instance_not_found(
    provider, ec2_proxy
):
    # EC2 ignores a reboot of a terminated instance; the provider says it is gone.
    instance = await provider.provision(in_pool("reboot-terminated"))
    await provider.terminate(instance.instance_id)
    with pytest.raises(InstanceNotFound, match="was terminated"):
        await provider.reboot(instance.instance_id)
    assert ec2_proxy.of("RebootInstances") == []


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("UnauthorizedOperation", 403, AuthError),
        ("RequestLimitExceeded", 503, TransientError),
        ("IncorrectState", 400, ProviderError),
    ],
)
async def test_a_refused_reboot_raises_its_kind(provider, ec2_proxy, code, status, kind):
    instance = await provider.provision(in_pool(f"reboot-{code}"))
    ec2_proxy.answers["RebootInstances"] = (status, ec2_error(code, f"the cloud says {code}"))
    with pytest.raises(ProviderError) as raised:
        await provider.reboot(instance.instance_id)
    assert type(raised.value) is kind
    assert str(raised.value) == f"aws: RebootInstances in {REGION}: {code}: the cloud says {code}"
