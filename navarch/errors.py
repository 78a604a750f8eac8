"""Errors that reach a person, and the domain's refusals.

The CLI prints each `NavarchError` as one line on stderr. `DomainError`s are what the core raises
when it refuses a request; the API maps each kind to a Connect code (`navarch.api.errors`), so the
core never names a code of the wire.
"""

from __future__ import annotations

import os
from pathlib import Path


class NavarchError(Exception):
    """A failure the user can act on; the CLI exits with status 1."""

    exit_code = 1


class UsageError(NavarchError):
    """Bad arguments or input; the CLI exits with status 2."""

    exit_code = 2


class ConfigValueError(ValueError):
    """A value that does not fit its key, raised by settings validators and structuring hooks.

    Its message is shown as is, after the key path; a message that starts with the key's own name
    (`"scale_up_at: expected ..."`) has that name folded into the path.
    """


class DomainError(NavarchError):
    """A request the core refuses; the API answers it with the Connect code of its kind."""


class InvalidArgument(DomainError):
    """A value in the request is wrong, whatever the state."""


class NotFound(DomainError):
    """The request names something that does not exist."""


class Conflict(DomainError):
    """The state does not allow the request now (a terminated node, an ended episode)."""


class Unauthenticated(DomainError):
    """The caller did not say who it is, or said it with a token nobody issued."""


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""


class ConfigError(UsageError):
    """One or more problems in a configuration file, each naming the file and key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(self._summary())

    def _summary(self) -> str:
        if len(self.problems) == 1:
            return f"{self.source}: {self.problems[0]}"
        lines = [f"{self.source}: {len(self.problems)} problems"]
        lines += [f"  {self.source}: {p}" for p in self.problems]
        return "\n".join(lines)


def read_config_file(path: str | os.PathLike[str]) -> str:
    """The text of a TOML file people wrote; ConfigError says why it cannot be read."""
    source = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError(source, [f"cannot read file: {exc.strerror}"]) from None
