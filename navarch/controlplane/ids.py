"""Identifiers for commands, events and health reports.

Each id is 26 characters of Crockford base32: 48 bits of milliseconds since the epoch, then 80
random bits (the ULID layout). Ids from one process sort in the order they were made, even within
one millisecond, so `ORDER BY event_id` lists events in order and an id works as a page cursor.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_last = 0


def new_id() -> str:
    global _last
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    if value <= _last:
        value = _last + 1
    _last = value
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))
