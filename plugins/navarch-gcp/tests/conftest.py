import pytest
from fake_gce import FakeGce
from navarch_gcp import GcpProvider, GcpSettings


@pytest.fixture
def gce():
    """The fake Compute Engine and OAuth token endpoint, served on loopback for one test."""
    with FakeGce() as fake:
        yield fake


@pytest.fixture
def key(gce, tmp_path):
    """A service-account key the fake accepts."""
    return gce.service_account_key(tmp_path / "key.json")


@pytest.fixture
def provider(gce, key, monkeypatch):
    """The provider on the fake, with no waits between its own retries."""
    monkeypatch.setattr("navarch_gcp.compute.BACKOFF", (0.0, 0.0))
    return GcpProvider(
        GcpSettings(project=gce.project, compute_url=gce.compute_url, credentials_file=str(key))
    )
