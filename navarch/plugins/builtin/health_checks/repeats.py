"""When a condition that lasts is worth another event: the rule the `gpu` and `boot` checks share.

Checks run every health-check interval, but the control plane needs an event only when a
condition starts or changes, and often enough after that to keep its verdict.
"""

from __future__ import annotations


class Repeats:
    """Decides when a condition is worth an event.

    A condition that lasts (a hot GPU, a pending row remap) is reported when it starts or
    changes, then again every `every` seconds while it lasts, so the control plane's verdict
    holds without one event per sample pushing the node's history out. News (a counter that
    increased) is reported at once.
    """

    def __init__(self, every: float) -> None:
        self._every = every
        self._last: dict[tuple[str, ...], tuple[object, float]] = {}

    def due(self, key: tuple[str, ...], *, ongoing: bool, news: bool, signature: object) -> bool:
        import trio

        if not (ongoing or news):
            self._last.pop(key, None)
            return False
        now = trio.current_time()
        last = self._last.get(key)
        if news or last is None or last[0] != signature or now - last[1] >= self._every:
            self._last[key] = (signature, now)
            return True
        return False

    def holds(self, first: str) -> bool:
        """Whether any condition whose key starts with `first` may be reported again."""
        return any(key[0] == first for key in self._last)
