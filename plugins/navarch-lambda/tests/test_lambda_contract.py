"""The Lambda provider keeps navarch's provider contract, against the fake Lambda API."""

import pytest
from navarch_lambda import LambdaProvider

from navarch.testing import ProviderContract


class TestLambdaProvider(ProviderContract):
    instance_type = "gpu_8x_h100_sxm5"
    region = "us-east-1"
    # Lambda's instance ids are 32 hex digits.
    unknown_instance_id = "0123456789abcdef0123456789abcdef"

    @pytest.fixture
    def provider(self, fake, settings):
        self.cloud = fake
        return LambdaProvider(settings)

    async def exhaust_capacity(self, provider):
        self.cloud.capacity = dict.fromkeys(self.cloud.capacity, 0)

    async def exhaust_quota(self, provider):
        self.cloud.quota = 0

    async def refuse_credentials(self, provider):
        self.cloud.api_key = "secret_revoked"

    async def fail_transiently(self, provider):
        self.cloud.failing = True
