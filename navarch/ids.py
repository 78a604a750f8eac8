"""Identifiers for commands, events, health reports and remediation episodes.

Each id is 26 characters of Crockford base32: 48 bits of milliseconds since the epoch, then 80
random bits (the ULID layout). Ids from one factory sort in the order they were made, even within
one millisecond, so `ORDER BY event_id` lists events in order and an id works as a page cursor. A
service owns one factory; the simulator seeds its own, so that a run repeats.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from datetime import datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class IdFactory:
    def __init__(
        self,
        wall: Callable[[], datetime] | None = None,
        random_bits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        self._wall = wall
        self._random_bits = random_bits
        self._last = 0

    @classmethod
    def seeded(cls, seed: str, wall: Callable[[], datetime]) -> IdFactory:
        """Ids that follow `seed` and `wall`: the same seed and times give the same ids."""
        return cls(wall, random.Random(seed).getrandbits)

    def new(self) -> str:
        if self._wall is None:
            import time

            now_ms = time.time_ns() // 1_000_000
        else:
            now_ms = int(self._wall().timestamp() * 1000)
        value = now_ms << 80 | self._random_bits(80)
        if value <= self._last:
            value = self._last + 1
        self._last = value
        chars = []
        for _ in range(26):
            value, digit = divmod(value, 32)
            chars.append(_ALPHABET[digit])
        return "".join(reversed(chars))
