"""Built-in provider selectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from navarch.plugins import hookimpl


class PrioritySelector:
    """Tries provider entries by ascending `priority`; ties keep their configured order."""

    def order(self, candidates: Sequence[Any], request: Any = None) -> list[Any]:
        return sorted(candidates, key=lambda entry: entry.priority)


@hookimpl
def navarch_selectors(register: Any) -> None:
    register("priority", PrioritySelector)
