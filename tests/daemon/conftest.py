from __future__ import annotations

import pytest
from cp_harness import open_control_plane


@pytest.fixture
async def control_plane(tmp_path):
    async with open_control_plane(tmp_path / "navarch.db") as service:
        yield service


# The fake libnvidia-ml fixtures of the telemetry tests (tests/ is on sys.path through its
# conftest), so the daemon's health checks are driven by the same compiled fake.
from telemetry.conftest import (  # noqa: E402, F401
    backend,
    build_fake_nvml,
    fake_nvml,
    make_fake_nvml,
    open_fake,
)
