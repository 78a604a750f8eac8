from __future__ import annotations

import pytest

from navarch.plugins.manager import load_plugins


@pytest.fixture(scope="session")
def plugins():
    return load_plugins(entry_points=False)
