"""Waiting between attempts while the control plane does not answer, or asks the node to wait."""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n)).

    Full jitter spreads a fleet's retries evenly, so a control plane that comes back is not hit by
    every node in the same instant. A control plane that sheds load says how long to wait
    (`honour`): then the node waits that long plus up to as long again, at random, so the nodes
    it refused in one instant come back spread over the next interval of that length.
    """

    def __init__(self, base: float = 1.0, cap: float = 30.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()
        self._attempt = 0

    def next_delay(self, cap: float | None = None) -> float:
        """The wait before the next attempt; `cap` lowers the ceiling for this one wait."""
        ceiling = min(self.cap if cap is None else min(cap, self.cap), self.base * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 62)
        return self._rng.uniform(0, ceiling)

    def honour(self, hint: float) -> float:
        """The wait after a refusal that asked for `hint` seconds: from `hint` to twice it.

        The client already bounded the hint (`navarch.api.client.retry_after`).
        """
        return hint + self._rng.uniform(0, hint)

    def reset(self) -> None:
        self._attempt = 0
