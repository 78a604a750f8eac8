"""navarch.toml: TOML parsed into frozen attrs classes through cattrs, with path-qualified errors.

Every problem is reported at once, each as `FILE: KEY.PATH: what was expected, what was found`.
Plugin-owned tables (a provider's parameters, an autoscaler's thresholds) are structured with the
class the plugin registered, through the same converter, so their errors carry the full key path.
"""

from __future__ import annotations

import os
import sys
import typing
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
from attrs import field, frozen

from navarch.durations import format_duration
from navarch.errors import ConfigError, ConfigValueError, read_config_file
from navarch.hints import show_toml, unknown_key
from navarch.plugins import validators
from navarch.plugins.manager import Plugins, installed_plugins
from navarch.plugins.settings import PluginTable, converter, join, structure
from navarch.redaction import redact_url

if sys.version_info >= (3, 15):
    import tomllib
else:
    import tomli as tomllib

__all__ = [
    "AuthConfig",
    "Config",
    "HealthConfig",
    "PluginTable",
    "PoolConfig",
    "PoolHealthConfig",
    "PoolProviderEntry",
    "PoolScalingConfig",
    "ScaleDownConfig",
    "ScaleUpConfig",
    "ServerConfig",
    "StoreConfig",
    "config_from_data",
    "default_config",
    "effective_dict",
    "load_config",
    "parse_config",
    "read_config",
]


@frozen(kw_only=True)
class ServerConfig:
    listen: str = "127.0.0.1:50051"
    # The URL nodes use to reach this control plane; empty means derived from `listen`.
    external_url: str = ""
    heartbeat_interval: timedelta = field(
        default=timedelta(seconds=30), validator=validators.positive
    )
    # Empty means three heartbeat intervals.
    heartbeat_timeout: timedelta | None = field(default=None, validator=validators.positive)
    health_check_interval: timedelta = field(
        default=timedelta(seconds=60), validator=validators.positive
    )
    command_poll_wait: timedelta = field(
        default=timedelta(seconds=20), validator=validators.positive
    )
    max_body_bytes: int = field(default=1_048_576, validator=validators.at_least(1024))
    # A client must send a request's headers within this long of its first byte (of opening the
    # connection, for the first request), and its body within this long of the headers.
    header_timeout: timedelta = field(default=timedelta(seconds=10), validator=validators.positive)
    body_timeout: timedelta = field(default=timedelta(seconds=30), validator=validators.positive)
    # Connections served at once; more wait in the listen backlog until one closes.
    max_connections: int = field(default=30_000, validator=validators.at_least(1))
    # How long a terminated node is kept after it was last heard from; then it is pruned from the
    # store, and its events once they are as old.
    terminated_retention: timedelta = field(
        default=timedelta(days=7), validator=validators.positive
    )

    @property
    def effective_heartbeat_timeout(self) -> timedelta:
        return self.heartbeat_timeout or 3 * self.heartbeat_interval


@frozen(kw_only=True)
class StoreConfig:
    backend: str = field(default="sqlite", validator=validators.one_of("sqlite"))
    # SQLite file; empty means `navarch.db` in the user's data directory.
    path: str = ""


@frozen(kw_only=True)
class AuthConfig:
    # Tokens are read from these environment variables, never from the file itself.
    admin_token_env: str = "NAVARCH_ADMIN_TOKEN"
    join_token_env: str = "NAVARCH_JOIN_TOKEN"


@frozen(kw_only=True)
class PoolProviderEntry:
    # The name of a `[providers.NAME]` table.
    provider: str
    priority: int = 0
    weight: int = field(default=1, validator=validators.at_least(1))
    regions: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    # Overrides the provider's mapping of the pool's abstract instance type.
    instance_type: str = ""
    # Spot (preemptible) machines; the provider's plugin must offer them.
    spot: bool = False
    # After this many spot capacity errors in a row, the entry asks for on-demand machines until
    # a capacity block would have ended, then tries spot again; 0 never falls back.
    spot_fallback_after: int = field(default=3, validator=validators.at_least(0))


@frozen(kw_only=True)
class PoolHealthConfig:
    # Replace nodes the health policy judges for replacement.
    auto_replace: bool = True
    drain_timeout: timedelta = field(default=timedelta(minutes=10), validator=validators.positive)
    # What a remediation does when the drain outlasts drain_timeout: "proceed" terminates the
    # node anyway, "hold" leaves it cordoned for an operator.
    on_drain_timeout: str = field(default="proceed", validator=validators.one_of("proceed", "hold"))
    # The circuit breaker: when more than this percent of the pool enters remediation within
    # breaker_window, no new episode starts until an operator resets it.
    breaker_percent: float = field(default=50.0, validator=validators.percent)
    breaker_window: timedelta = field(default=timedelta(minutes=5), validator=validators.positive)


@frozen(kw_only=True)
class ScaleUpConfig:
    # Scale up only as far as the lowest recommendation of this window; 0 acts at once.
    window: timedelta = field(default=timedelta(0), validator=validators.not_negative)
    # At most this many nodes, or this percent of the pool, per period; the larger applies.
    nodes: int = field(default=4, validator=validators.at_least(0))
    percent: float = field(default=100.0, validator=validators.at_least(0))
    period: timedelta = field(default=timedelta(minutes=1), validator=validators.positive)


@frozen(kw_only=True)
class ScaleDownConfig:
    # Scale down only as far as the highest recommendation of this window.
    window: timedelta = field(default=timedelta(minutes=5), validator=validators.not_negative)
    nodes: int = field(default=0, validator=validators.at_least(0))
    percent: float = field(default=100.0, validator=validators.percent)
    period: timedelta = field(default=timedelta(minutes=1), validator=validators.positive)
    # No scale-down until this long after the pool last grew.
    delay_after_scale_up: timedelta = field(
        default=timedelta(minutes=10), validator=validators.not_negative
    )
    # Drain a node before terminating it.
    drain: bool = True


@frozen(kw_only=True)
class PoolScalingConfig:
    """How the core turns any autoscaler's recommendation into a target (navarch.pools)."""

    scale_up: ScaleUpConfig = ScaleUpConfig()
    scale_down: ScaleDownConfig = ScaleDownConfig()


@frozen(kw_only=True)
class PoolConfig:
    instance_type: str
    providers: tuple[PoolProviderEntry, ...] = field(
        validator=validators.not_empty("provider entry")
    )
    min_nodes: int = field(default=0, validator=validators.at_least(0))
    max_nodes: int = field(default=1, validator=validators.at_least(1))
    scale_interval: timedelta = field(default=timedelta(seconds=30), validator=validators.positive)
    labels: dict[str, str] = field(factory=dict)
    autoscaler: PluginTable | None = None
    selector: PluginTable = field(factory=lambda: PluginTable(type="priority"))
    # A metrics-source plugin the manager asks for the pool's queue depth each round.
    metrics: PluginTable | None = None
    scaling: PoolScalingConfig = PoolScalingConfig()
    health: PoolHealthConfig = PoolHealthConfig()
    # An instance whose daemon has not registered this long after provisioning is terminated
    # and replaced.
    registration_timeout: timedelta = field(
        default=timedelta(minutes=10), validator=validators.positive
    )

    @max_nodes.validator
    def _check_max(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if value < self.min_nodes:
            raise ConfigValueError(
                f"max_nodes: expected at least min_nodes ({self.min_nodes}), got {value}"
            )


@frozen(kw_only=True)
class HealthConfig:
    # A policy file of CEL rules; empty means the built-in default policy.
    policy: str = ""
    # A node's health is the worst result over this window.
    window: timedelta = field(default=timedelta(minutes=10), validator=validators.positive)


@frozen(kw_only=True)
class Config:
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    auth: AuthConfig = AuthConfig()
    providers: dict[str, PluginTable] = field(factory=dict)
    pools: dict[str, PoolConfig] = field(factory=dict)
    health: HealthConfig = HealthConfig()
    notifiers: dict[str, PluginTable] = field(factory=dict)
    # Where this configuration came from, for messages; not a key in the file.
    source: str = field(default="<defaults>", eq=False)


def default_config() -> Config:
    return Config()


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
    config = _check_policy(config, base_dir, problems)
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


def _check_policy(
    config: Config, base_dir: str | os.PathLike[str] | None, problems: list[str]
) -> Config:
    """Resolves `[health] policy` against the file's directory and checks the policy in it."""
    if not config.health.policy:
        return config
    path = Path(config.health.policy).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    from navarch.health import load_policy  # imports the CEL engine only when a policy is named

    try:
        load_policy(path)
    except ConfigError as exc:
        problems.extend(f"health.policy: {exc.source}: {problem}" for problem in exc.problems)
    return attrs.evolve(config, health=attrs.evolve(config.health, policy=str(path)))


# Plugin-owned tables.

_PLUGIN_TABLES = ("providers", "notifiers")


def _default_plugin_types(data: dict[str, Any]) -> dict[str, Any]:
    """Gives each provider and notifier table its default `type`: the table's own name."""
    data = dict(data)
    for section in _PLUGIN_TABLES:
        tables = data.get(section)
        if isinstance(tables, Mapping):
            data[section] = {
                name: {"type": name, **table}
                if isinstance(table, Mapping) and "type" not in table
                else table
                for name, table in tables.items()
            }
    return data


def _settle(
    table: PluginTable,
    kind: str,
    path: str,
    plugins: Plugins,
    problems: list[str],
    nested: bool = False,
) -> PluginTable:
    """Structures a plugin table's settings with the class its plugin registered."""
    registration = plugins.registry(kind).get(table.type)
    if registration is None:
        if nested:  # top-level tables are reported by _check_references
            names = ", ".join(sorted(plugins.registry(kind))) or "none"
            problems.append(
                f'{path}.type: no {kind} plugin named "{table.type}" (registered: {names})'
            )
        return table
    settings = registration.structure_settings(table.settings or {}, path, problems)
    if settings is not None and attrs.has(type(settings)):
        changes: dict[str, object] = {}
        for f in attrs.fields(type(settings)):
            value = getattr(settings, f.name)
            if isinstance(value, PluginTable):
                changes[f.name] = _settle(
                    value, kind, f"{path}.{f.name}", plugins, problems, nested=True
                )
            elif isinstance(value, tuple) and any(isinstance(v, PluginTable) for v in value):
                changes[f.name] = tuple(
                    _settle(v, kind, f"{path}.{f.name}[{i}]", plugins, problems, nested=True)
                    for i, v in enumerate(value)
                )
        if changes:
            settings = attrs.evolve(settings, **changes)
    return attrs.evolve(table, settings=settings, registration=registration, path=path)


# The plugin tables of a pool: its key, and the kind of plugin that key names.
_POOL_PLUGINS = (
    ("autoscaler", "autoscaler"),
    ("selector", "selector"),
    ("metrics", "metrics_source"),
)


def _structure_plugin_settings(config: Config, plugins: Plugins, problems: list[str]) -> Config:
    providers = {
        name: _settle(t, "provider", f"providers.{name}", plugins, problems)
        for name, t in config.providers.items()
    }
    notifiers = {
        name: _settle(t, "notifier", f"notifiers.{name}", plugins, problems)
        for name, t in config.notifiers.items()
    }
    pools = {}
    for name, pool in config.pools.items():
        changes: dict[str, Any] = {
            key: _settle(table, kind, f"pools.{name}.{key}", plugins, problems)
            for key, kind in _POOL_PLUGINS
            if (table := getattr(pool, key)) is not None
        }
        pools[name] = attrs.evolve(pool, **changes)
    return attrs.evolve(config, providers=providers, notifiers=notifiers, pools=pools)


def _check_failed_pools(
    data: Mapping[str, Any],
    config: Config,
    provider_tables: set[str],
    plugins: Plugins,
    problems: list[str],
) -> None:
    """Checks the parts of each pool table that did not structure as a whole (a `max_nodes`
    below `min_nodes`, say): its plugin tables and provider entries, as for a sound pool."""
    pools = data.get("pools")
    if not isinstance(pools, Mapping):
        return
    for name, table in pools.items():
        if name in config.pools or not isinstance(table, Mapping):
            continue
        base = f"pools.{name}"
        # The pool's own structuring already reported these parts' problems.
        scratch: list[str] = []
        tables: dict[str, tuple[str, PluginTable]] = {}
        for key, kind in _POOL_PLUGINS:
            if key in table:
                part = structure(table[key], PluginTable, scratch, f"{base}.{key}")
                if part is not None:
                    tables[key] = (kind, _settle(part, kind, f"{base}.{key}", plugins, problems))
        raw_entries = table.get("providers")
        entries = [
            structure(entry, PoolProviderEntry, scratch, f"{base}.providers[{i}]")
            for i, entry in enumerate(raw_entries if isinstance(raw_entries, list) else [])
        ]
        _check_pool_references(base, tables, entries, config, provider_tables, plugins, problems)


# The distributions that bring the plugins navarch's documentation names, for the hint when one
# is not installed.
_PLUGIN_PACKAGES = {
    ("provider", "lambda"): "navarch-lambda",
    ("provider", "gcp"): "navarch-gcp",
    ("provider", "aws"): "navarch-aws",
}


def _check_plugin_named(
    kind: str, name: str, path: str, plugins: Plugins, problems: list[str]
) -> None:
    names = sorted(plugins.registry(kind))
    if name not in names:
        listed = ", ".join(names) or "none"
        package = _PLUGIN_PACKAGES.get((kind, name))
        install = f"; install it with: pip install {package}" if package else ""
        problems.append(f'{path}: no {kind} plugin named "{name}" (registered: {listed}){install}')


def _check_references(
    config: Config, provider_tables: set[str], plugins: Plugins, problems: list[str]
) -> None:
    for name, table in config.providers.items():
        _check_plugin_named("provider", table.type, f"providers.{name}.type", plugins, problems)
    for name, table in config.notifiers.items():
        _check_plugin_named("notifier", table.type, f"notifiers.{name}.type", plugins, problems)
    for pool_name, pool in config.pools.items():
        tables = {
            key: (kind, table)
            for key, kind in _POOL_PLUGINS
            if (table := getattr(pool, key)) is not None
        }
        _check_pool_references(
            f"pools.{pool_name}",
            tables,
            list(pool.providers),
            config,
            provider_tables,
            plugins,
            problems,
        )


def _check_pool_references(
    base: str,
    tables: Mapping[str, tuple[str, PluginTable]],
    entries: list[PoolProviderEntry | None],
    config: Config,
    provider_tables: set[str],
    plugins: Plugins,
    problems: list[str],
) -> None:
    """The plugins a pool names exist, and its provider entries name provider tables once."""
    for key, (kind, table) in tables.items():
        _check_plugin_named(kind, table.type, f"{base}.{key}.type", plugins, problems)
    seen: set[tuple[str, tuple[str, ...], tuple[str, ...]]] = set()
    for i, entry in enumerate(entries):
        if entry is None:
            continue
        path = f"{base}.providers[{i}].provider"
        if entry.provider not in provider_tables:
            listed = ", ".join(sorted(provider_tables)) or "none"
            problems.append(f"{path}: no [providers.{entry.provider}] table (configured: {listed})")
        kind = config.providers[entry.provider].type if entry.provider in config.providers else ""
        registration = plugins.registry("provider").get(kind)
        if (
            entry.spot
            and registration is not None
            and not getattr(registration.factory, "supports_spot", False)
        ):
            problems.append(
                f'{base}.providers[{i}].spot: provider "{entry.provider}" (type {kind}) '
                "offers no spot machines; "
                "remove spot or use a provider that has them"
            )
        place = (entry.provider, entry.regions, entry.zones)
        if place in seen:
            problems.append(
                f'{path}: duplicate entry for provider "{entry.provider}" with the same '
                "regions and zones"
            )
        seen.add(place)


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
