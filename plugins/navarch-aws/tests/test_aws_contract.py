"""The AWS provider keeps navarch's provider contract, against moto's EC2 on loopback."""

import pytest
from aws_cloud import (
    INSUFFICIENT_CAPACITY,
    REGION,
    UNAVAILABLE,
    VCPU_LIMIT,
    aws_env,
    ec2_proxy,
    image_id,
    moto_url,
)
from navarch_aws import AwsProvider, AwsSettings

from navarch.testing import ProviderContract

__all__ = ["aws_env", "ec2_proxy", "image_id", "moto_url"]


class TestAwsProvider(ProviderContract):
    instance_type = "g5.xlarge"
    region = REGION
    unknown_instance_id = "i-0123456789abcdef0"

    @pytest.fixture
    def provider(self, aws_env, ec2_proxy, image_id):
        self.cloud = ec2_proxy
        return AwsProvider(AwsSettings(endpoint_url=ec2_proxy.url, image_id=image_id))

    async def exhaust_capacity(self, provider):
        self.cloud.answers["RunInstances"] = INSUFFICIENT_CAPACITY

    async def exhaust_quota(self, provider):
        self.cloud.answers["RunInstances"] = VCPU_LIMIT

    async def refuse_credentials(self, provider):
        self.cloud.access_key = "AKIAREVOKEDKEY000000"

    async def fail_transiently(self, provider):
        self.cloud.answers["*"] = UNAVAILABLE
