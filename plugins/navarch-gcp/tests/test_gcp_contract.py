"""The gcp provider keeps navarch's provider contract, against the fake Compute Engine."""

import pytest
from fake_gce import FakeGce
from navarch_gcp import GcpProvider, GcpSettings

from navarch.testing import ProviderContract


class TestGcpProvider(ProviderContract):
    instance_type = "a3-highgpu-8g"
    region = "us-central1"
    zone = "us-central1-a"

    @pytest.fixture
    def provider(self, tmp_path):
        with FakeGce() as gce:
            self.gce = gce
            key = gce.service_account_key(tmp_path / "key.json")
            yield GcpProvider(
                GcpSettings(
                    project=gce.project, compute_url=gce.compute_url, credentials_file=str(key)
                )
            )

    async def exhaust_capacity(self, provider):
        self.gce.capacity = 0

    async def exhaust_quota(self, provider):
        self.gce.quota = 0

    async def refuse_credentials(self, provider):
        self.gce.revoke_keys()

    async def fail_transiently(self, provider):
        self.gce.unavailable = True
