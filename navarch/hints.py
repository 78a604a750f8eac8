"""How navarch names a wrong value or key in an error message people read.

Every file people write (configuration, daemon configuration, health policy, scenario) reports
its problems the same way: the key path, what was expected, the value as TOML writes it, and for
a key that does not exist, the closest known one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def did_you_mean(name: str, known: Iterable[str], *, cutoff: float = 0.6) -> str:
    """` (did you mean 'x'?)` for the known name closest to `name`, or "" when none is close."""
    import difflib  # only on an error: a daemon at rest does without it (0.2 MiB)

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_key(path: str, key: str, known: Iterable[str]) -> str:
    """The problem line for `key`, at `path` (which ends with it), that its table lacks."""
    return f"{path}: unknown key{did_you_mean(key, known)}"


def show_toml(value: object) -> str:
    """A value read from TOML, written as TOML would write it, or as the kind of thing it is."""
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)
