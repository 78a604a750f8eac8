"""Identifiers for commands, events and health reports.

Each id is 26 characters of Crockford base32: 48 bits of milliseconds since the epoch, then 80
random bits (the ULID layout). Ids from one process sort in the order they were made, even within
one millisecond, so `ORDER BY event_id` lists events in order and an id works as a page cursor.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_last = 0
_random_bits: Callable[[int], int] = secrets.randbits
_now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000  # noqa: E731


@contextlib.contextmanager
def seeded(seed: str, wall_clock: Callable[[], datetime]) -> Iterator[None]:
    """Makes ids follow `seed` and `wall_clock` for a while: the simulator's runs repeat."""
    global _random_bits, _now_ms, _last
    saved = (_random_bits, _now_ms, _last)
    _random_bits = random.Random(seed).getrandbits
    _now_ms = lambda: int(wall_clock().timestamp() * 1000)  # noqa: E731
    _last = 0
    try:
        yield
    finally:
        _random_bits, _now_ms, _last = saved


def new_id() -> str:
    global _last
    value = _now_ms() << 80 | _random_bits(80)
    if value <= _last:
        value = _last + 1
    _last = value
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))
