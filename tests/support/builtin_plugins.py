"""The built-in plugins alone, as the pool and configuration tests read their tables."""

from __future__ import annotations

import pytest

from navarch.plugins.manager import Plugins, load_plugins


@pytest.fixture(scope="session")
def plugins() -> Plugins:
    return load_plugins(entry_points=False)
