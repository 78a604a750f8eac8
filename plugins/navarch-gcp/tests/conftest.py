import pytest
from fake_gce import FakeGce


@pytest.fixture
def gce():
    """The fake Compute Engine and OAuth token endpoint, served on loopback for one test."""
    with FakeGce() as fake:
        yield fake
