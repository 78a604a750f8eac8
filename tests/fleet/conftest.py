from __future__ import annotations

import pytest
from support.fleet import Fleet


@pytest.fixture
def fleet(tmp_path):
    fleet = Fleet(tmp_path)
    yield fleet
    fleet.stop()


@pytest.fixture
def secure_fleet(tmp_path):
    fleet = Fleet(tmp_path, auth=True)
    yield fleet
    fleet.stop()
