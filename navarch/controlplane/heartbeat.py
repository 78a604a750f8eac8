"""The heartbeat monitor: finds nodes that have gone silent.

A node counts as seen when it registers and on every heartbeat, so a node that registers and never
sends a heartbeat is found too. A node silent for longer than the timeout is reported once; it is
watched again only after it is seen again. Times come from `trio.current_time()`, so the monitor
runs unchanged on `MockClock`. After a control-plane restart every node gets a full timeout to
check in, because the silence was the control plane's, not the node's. The same holds while the
control plane sheds load (`overloaded`, at each call it refuses): a refused heartbeat is not the
node's silence, so no node is reported until a full timeout has passed since the last refusal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio


class HeartbeatMonitor:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        # How often to look: a tenth of the timeout, so a loss is noticed within 110% of it.
        self.check_interval = timeout / 10
        self._last_seen: dict[str, float] = {}
        self._overloaded_at = -float("inf")

    def seen(self, node_id: str) -> None:
        self._last_seen[node_id] = trio.current_time()

    def overloaded(self) -> None:
        """The control plane refused a call for load: silences count from now at the earliest."""
        self._overloaded_at = trio.current_time()

    def forget(self, node_id: str) -> None:
        self._last_seen.pop(node_id, None)

    def ages(self) -> list[float]:
        """Seconds since each watched node was last seen."""
        now = trio.current_time()
        return [now - seen for seen in self._last_seen.values()]

    def take_silent(self) -> list[str]:
        """The nodes silent past the timeout; each is forgotten until it is seen again."""
        limit = trio.current_time() - self.timeout
        if self._overloaded_at >= limit:
            return []
        silent = [node_id for node_id, seen in self._last_seen.items() if seen < limit]
        for node_id in silent:
            del self._last_seen[node_id]
        return silent

    async def run(self, on_silent: Callable[[list[str]], Awaitable[None]]) -> None:
        while True:
            await trio.sleep(self.check_interval)
            silent = self.take_silent()
            if silent:
                await on_silent(silent)
