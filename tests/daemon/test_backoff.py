from __future__ import annotations

import random

from navarch.daemon.backoff import Backoff


def test_full_jitter_grows_to_the_cap_and_resets():
    backoff = Backoff(base=1, cap=30, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [min(30, 2**n) for n in range(12)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[6:]) > 8  # late attempts spread over the whole window
    backoff.reset()
    assert backoff.next_delay() <= 1
    assert all(backoff.next_delay(cap=2) <= 2 for _ in range(20))
