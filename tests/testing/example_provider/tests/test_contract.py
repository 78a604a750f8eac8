"""Example Cloud's provider keeps navarch's provider contract, against a fake of its API."""

import pytest
from fake_cloud import TOKEN, FakeCloud
from navarch_example import ExampleProvider, ExampleSettings

from navarch.testing import ProviderContract


class TestExampleProvider(ProviderContract):
    instance_type = "gpu-8x"
    region = "west"

    @pytest.fixture
    def provider(self, monkeypatch):
        monkeypatch.setenv("EXAMPLE_API_TOKEN", TOKEN)
        self.cloud = FakeCloud()
        return ExampleProvider(ExampleSettings(), transport=self.cloud.transport)

    async def exhaust_capacity(self, provider):
        self.cloud.capacity = 0

    async def exhaust_quota(self, provider):
        self.cloud.quota = 0

    async def refuse_credentials(self, provider):
        self.cloud.token = "revoked"

    async def fail_transiently(self, provider):
        self.cloud.unavailable = True
