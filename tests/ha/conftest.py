"""A fresh PostgreSQL database for each HA test (`support.postgres`). The tests skip when no
server answers, unless NAVARCH_REQUIRE_POSTGRES=1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.postgres import fresh_database


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of an empty database, dropped after the test."""
    with fresh_database("navarch_ha") as url:
        yield url
