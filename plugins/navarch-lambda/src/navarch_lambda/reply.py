"""Lambda's JSON replies, read at the boundary: each field is checked as it is read, and one that
is missing or of the wrong kind raises `ProviderError` naming its path (`data[2].region.name`)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from attrs import frozen

from navarch.plugins import ProviderError


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return {
        bool: "true or false",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


@frozen
class Reply:
    """One value of a reply, with where it came from for messages."""

    value: object
    # The call that answered, `GET /instances`.
    call: str
    # The value's path in the reply; empty for the whole reply.
    path: str = ""

    @classmethod
    def parse(cls, content: bytes, call: str) -> Reply:
        try:
            return cls(json.loads(content), call)
        except (ValueError, UnicodeDecodeError):
            raise ProviderError(
                f"lambda: {call}: the reply is not JSON ({len(content)} bytes)"
            ) from None

    def _error(self, expected: str) -> ProviderError:
        where = self.path or "the reply"
        return ProviderError(
            f"lambda: {self.call}: {where}: expected {expected}, got {_kind(self.value)}"
        )

    def _child(self, value: object, step: str) -> Reply:
        joined = step.startswith("[") or not self.path
        path = f"{self.path}{step}" if joined else f"{self.path}.{step}"
        return Reply(value, self.call, path)

    def _object(self) -> dict[str, object]:
        if not isinstance(self.value, dict):
            raise self._error("an object")
        return self.value

    def __getitem__(self, key: str) -> Reply:
        """The field `key` of this object; raises when it is missing or null."""
        found = self.optional(key)
        if found is None:
            where = self._child(None, key).path
            raise ProviderError(f"lambda: {self.call}: {where} is missing")
        return found

    def optional(self, key: str) -> Reply | None:
        """The field `key` of this object; None when it is missing or null."""
        value = self._object().get(key)
        return None if value is None else self._child(value, key)

    def items(self) -> Iterator[tuple[str, Reply]]:
        """The fields of this object."""
        for key, value in self._object().items():
            yield key, self._child(value, key)

    def __iter__(self) -> Iterator[Reply]:
        """The items of this list."""
        if not isinstance(self.value, list):
            raise self._error("a list")
        for index, value in enumerate(self.value):
            yield self._child(value, f"[{index}]")

    def text(self) -> str:
        if not isinstance(self.value, str):
            raise self._error("a string")
        return self.value

    def count(self) -> int:
        """A whole number of 0 or more."""
        if not isinstance(self.value, int) or isinstance(self.value, bool) or self.value < 0:
            raise self._error("a whole number of 0 or more")
        return self.value

    def number(self) -> float:
        """A finite number of 0 or more."""
        value = self.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._error("a number")
        if not 0 <= value < float("inf"):
            raise self._error("a number of 0 or more")
        return float(value)
