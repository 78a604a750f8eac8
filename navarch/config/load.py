"""Reading navarch.toml: TOML into the tables, every check in one pass, and the effective
configuration shown with secrets redacted."""

from __future__ import annotations

import os
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from navarch.durations import format_duration
from navarch.errors import ConfigError, read_config_file
from navarch.hints import show_toml, unknown_key
from navarch.plugins.manager import Plugins, installed_plugins
from navarch.plugins.settings import converter, join, structure
from navarch.redaction import redact_url

if sys.version_info >= (3, 15):
    import tomllib
else:
    import tomli as tomllib

from navarch.config.checks import _check_bootstrap, _check_policy, _check_tls
from navarch.config.plugin_tables import (
    _check_failed_pools,
    _check_references,
    _default_plugin_types,
    _structure_plugin_settings,
)
from navarch.config.tables import (
    Config,
)


def load_config(path: str | os.PathLike[str], plugins: Plugins | None = None) -> Config:
    """Reads and checks a configuration file; raises ConfigError listing every problem.

    `plugins` is a `navarch.plugins.Plugins`; when omitted, the installed plugins are loaded.
    """
    config, problems = read_config(path, plugins)
    if problems:
        raise ConfigError(config.source, problems)
    return config


def read_config(
    path: str | os.PathLike[str], plugins: Plugins | None = None
) -> tuple[Config, list[str]]:
    """A configuration file as far as it is valid, with every problem found in it.

    Only a file that cannot be read or is not TOML raises ConfigError; `navarch config check`
    goes on to check the providers of the valid part.
    """
    source = str(path)
    data = _parse_toml(read_config_file(path), source)
    return _checked(data, source, plugins, Path(path).parent)


def parse_config(
    text: str,
    source: str = "navarch.toml",
    plugins: Plugins | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Parses configuration text. Relative file names in it are relative to `base_dir`."""
    return config_from_data(_parse_toml(text, source), source, plugins, base_dir)


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"TOML syntax error: {exc}"]) from None


def config_from_data(
    data: dict[str, Any],
    source: str = "navarch.toml",
    plugins: Plugins | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Checks configuration already read from TOML (the simulator's `[config]` table, say)."""
    config, problems = _checked(data, source, plugins, base_dir)
    if problems:
        raise ConfigError(source, problems)
    return config


def _checked(
    data: dict[str, Any],
    source: str,
    plugins: Plugins | None,
    base_dir: str | os.PathLike[str] | None,
) -> tuple[Config, list[str]]:
    """Every check in one pass: a table that fails one check is still given the others."""
    if plugins is None:
        plugins = installed_plugins()
    problems: list[str] = []
    data = _default_plugin_types(data)
    config = _structure_config(data, problems)
    config = _structure_plugin_settings(config, plugins, problems)
    provider_tables = set(data.get("providers") or {})
    _check_references(config, provider_tables, plugins, problems)
    _check_failed_pools(data, config, provider_tables, plugins, problems)
    config = _check_bootstrap(config, base_dir, problems)
    config = _check_policy(config, base_dir, problems)
    config = _check_tls(config, base_dir, problems)
    return attrs.evolve(config, source=source), list(dict.fromkeys(problems))


_NAMED_SECTIONS = ("providers", "pools", "notifiers")


def _structure_config(data: dict[str, Any], problems: list[str]) -> Config:
    """Structures each section (and each named table) on its own, so every problem is found."""
    known = [f.name for f in attrs.fields(Config) if f.name != "source"]
    kwargs: dict[str, Any] = {}  # each section's value, of that section's own type
    for key, value in data.items():
        if key not in known:
            problems.append(unknown_key(key, key, known))
            continue
        field_type = typing.get_type_hints(Config)[key]
        if key in _NAMED_SECTIONS:
            if not isinstance(value, Mapping):
                problems.append(f"{key}: expected a table, got {show_toml(value)}")
                continue
            item_type = typing.get_args(field_type)[1]
            items = {
                name: structure(table, item_type, problems, join(key, name))
                for name, table in value.items()
            }
            kwargs[key] = {name: item for name, item in items.items() if item is not None}
        else:
            section = structure(value, field_type, problems, key)
            if section is not None:
                kwargs[key] = section
    return Config(**kwargs)


# Showing the effective configuration.

_SECRET_HINTS = ("token", "secret", "password", "api_key", "apikey", "credential")


def effective_dict(config: Config) -> dict[str, object]:
    """The configuration with defaults filled in and anything secret-looking redacted."""
    raw: dict[str, Any] = converter.unstructure(config)  # the TOML document
    raw.pop("source", None)
    if raw["server"].get("heartbeat_timeout") is None:
        raw["server"]["heartbeat_timeout"] = format_duration(
            config.server.effective_heartbeat_timeout
        )
    return {key: _redact(_drop_none(value), key) for key, value in raw.items() if value is not None}


def _drop_none(value: object) -> object:
    if isinstance(value, Mapping):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    return value


def _redact(value: object, key: str = "") -> object:
    if isinstance(value, Mapping):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, key) for v in value]
    lowered = key.lower()
    # A key ending in `_env` names a variable, which is not itself a secret.
    if value and not lowered.endswith("_env") and any(h in lowered for h in _SECRET_HINTS):
        return "<redacted>"
    if isinstance(value, str):
        return redact_url(value)
    return value
