"""The metrics-source contract: where a pool's queue depth comes from.

A pool with a `[pools.NAME.metrics]` table asks its source at the start of every scaling round.
"""

from __future__ import annotations

from typing import Protocol


class MetricsSource(Protocol):
    async def queue_depth(self, pool: str) -> int | None:
        """Jobs waiting for or running on `pool`: a whole number of 0 or more, or None when there
        is no data. Raising, or taking longer than 5 seconds, keeps the last known depth."""
        ...
