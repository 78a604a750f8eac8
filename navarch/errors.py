"""Errors that reach a person. The CLI prints each as one line on stderr."""

from __future__ import annotations

import os
from pathlib import Path


class NavarchError(Exception):
    """A failure the user can act on; the CLI exits with status 1."""

    exit_code = 1


class UsageError(NavarchError):
    """Bad arguments or input; the CLI exits with status 2."""

    exit_code = 2


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
