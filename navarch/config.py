"""navarch.toml: TOML parsed into frozen attrs classes through cattrs, with path-qualified errors.

Every problem is reported at once, each as `FILE: KEY.PATH: what was expected, what was found`.
Plugin-owned tables (a provider's parameters, an autoscaler's thresholds) are structured with the
class the plugin registered, through the same converter, so their errors carry the full key path.
"""

from __future__ import annotations

import difflib
import os
import sys
import typing
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
from attrs import field, frozen
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)

from navarch.durations import format_duration, parse_duration
from navarch.errors import ConfigError, NavarchError, read_config_file

if sys.version_info >= (3, 15):
    import tomllib
else:
    import tomli as tomllib

T = TypeVar("T")


class ConfigValueError(ValueError):
    """Raised by hooks and plugin validators; its message is shown as is, after the key path."""


def _ge(minimum: float) -> Callable[[Any, attrs.Attribute, Any], None]:
    def check(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value < minimum:
            raise ConfigValueError(f"{attribute.name}: expected at least {minimum}, got {value!r}")

    return check


def _positive_duration(_inst: Any, attribute: attrs.Attribute, value: timedelta | None) -> None:
    if value is not None and value <= timedelta(0):
        raise ConfigValueError(
            f'{attribute.name}: expected a positive duration, got "{format_duration(value)}"'
        )


def _non_negative_duration(_inst: Any, attribute: attrs.Attribute, value: timedelta) -> None:
    if value < timedelta(0):
        raise ConfigValueError(f"{attribute.name}: expected a duration of 0s or more")


def _percent_at_most_100(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0 <= value <= 100:
        raise ConfigValueError(f"{attribute.name}: expected a number from 0 to 100, got {value:g}")


@frozen(kw_only=True)
class ServerConfig:
    listen: str = "127.0.0.1:50051"
    # The URL nodes use to reach this control plane; empty means derived from `listen`.
    external_url: str = ""
    heartbeat_interval: timedelta = field(
        default=timedelta(seconds=30), validator=_positive_duration
    )
    # Empty means three heartbeat intervals.
    heartbeat_timeout: timedelta | None = field(default=None, validator=_positive_duration)
    health_check_interval: timedelta = field(
        default=timedelta(seconds=60), validator=_positive_duration
    )
    command_poll_wait: timedelta = field(
        default=timedelta(seconds=20), validator=_positive_duration
    )
    max_body_bytes: int = field(default=1_048_576, validator=_ge(1024))

    @property
    def effective_heartbeat_timeout(self) -> timedelta:
        return self.heartbeat_timeout or 3 * self.heartbeat_interval


@frozen(kw_only=True)
class StoreConfig:
    backend: str = field(default="sqlite")
    # SQLite file; empty means `navarch.db` in the user's data directory.
    path: str = ""

    @backend.validator
    def _check_backend(self, _attribute: attrs.Attribute, value: str) -> None:
        if value != "sqlite":
            raise ConfigValueError(f'backend: expected "sqlite", got {value!r}')


@frozen(kw_only=True)
class AuthConfig:
    # Tokens are read from these environment variables, never from the file itself.
    admin_token_env: str = "NAVARCH_ADMIN_TOKEN"
    join_token_env: str = "NAVARCH_JOIN_TOKEN"


@frozen(kw_only=True)
class PluginTable:
    """A table that names a plugin by `type` and hands the rest of its keys to that plugin.

    A plugin's settings may hold plugin tables of their own (a composite autoscaler's members);
    they are checked through the same registry, with the same kind, and their errors carry the
    full key path.
    """

    type: str
    settings: Any = None  # the plugin's own structured settings (or the raw table)
    # The registration the table was checked against; set by parse_config, used by create().
    registration: Any = field(default=None, eq=False, repr=False)

    def create(self, **context: Any) -> Any:
        """Builds the plugin object that this table configures."""
        if self.registration is None:
            raise NavarchError(
                f'the "{self.type}" plugin table was not checked against the loaded plugins; '
                "read the configuration with load_config or parse_config"
            )
        return self.registration.create(self.settings, **context)


@frozen(kw_only=True)
class PoolProviderEntry:
    # The name of a `[providers.NAME]` table.
    provider: str
    priority: int = 0
    weight: int = field(default=1, validator=_ge(1))
    regions: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    # Overrides the provider's mapping of the pool's abstract instance type.
    instance_type: str = ""


@frozen(kw_only=True)
class PoolHealthConfig:
    # Replace nodes the health policy judges for replacement.
    auto_replace: bool = True
    drain_timeout: timedelta = field(default=timedelta(minutes=10), validator=_positive_duration)
    # What a remediation does when the drain outlasts drain_timeout: "proceed" terminates the
    # node anyway, "hold" leaves it cordoned for an operator.
    on_drain_timeout: str = field(default="proceed")
    # The circuit breaker: when more than this percent of the pool enters remediation within
    # breaker_window, no new episode starts until an operator resets it.
    breaker_percent: float = field(default=50.0, validator=_percent_at_most_100)
    breaker_window: timedelta = field(default=timedelta(minutes=5), validator=_positive_duration)

    @on_drain_timeout.validator
    def _check_on_drain_timeout(self, _attribute: attrs.Attribute, value: str) -> None:
        if value not in ("proceed", "hold"):
            raise ConfigValueError(f'on_drain_timeout: expected "proceed" or "hold", got {value!r}')


@frozen(kw_only=True)
class ScaleUpConfig:
    # Scale up only as far as the lowest recommendation of this window; 0 acts at once.
    window: timedelta = field(default=timedelta(0), validator=_non_negative_duration)
    # At most this many nodes, or this percent of the pool, per period; the larger applies.
    nodes: int = field(default=4, validator=_ge(0))
    percent: float = field(default=100.0, validator=_ge(0))
    period: timedelta = field(default=timedelta(minutes=1), validator=_positive_duration)


@frozen(kw_only=True)
class ScaleDownConfig:
    # Scale down only as far as the highest recommendation of this window.
    window: timedelta = field(default=timedelta(minutes=5), validator=_non_negative_duration)
    nodes: int = field(default=0, validator=_ge(0))
    percent: float = field(default=100.0, validator=_percent_at_most_100)
    period: timedelta = field(default=timedelta(minutes=1), validator=_positive_duration)
    # No scale-down until this long after the pool last grew.
    delay_after_scale_up: timedelta = field(
        default=timedelta(minutes=10), validator=_non_negative_duration
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
    providers: tuple[PoolProviderEntry, ...] = field()
    min_nodes: int = field(default=0, validator=_ge(0))
    max_nodes: int = field(default=1, validator=_ge(1))
    scale_interval: timedelta = field(default=timedelta(seconds=30), validator=_positive_duration)
    labels: dict[str, str] = field(factory=dict)
    autoscaler: PluginTable | None = None
    selector: PluginTable = PluginTable(type="priority")
    # A metrics-source plugin the manager asks for the pool's queue depth each round.
    metrics: PluginTable | None = None
    scaling: PoolScalingConfig = PoolScalingConfig()
    health: PoolHealthConfig = PoolHealthConfig()
    # An instance whose daemon has not registered this long after provisioning is terminated
    # and replaced.
    registration_timeout: timedelta = field(
        default=timedelta(minutes=10), validator=_positive_duration
    )

    @max_nodes.validator
    def _check_max(self, _attribute: attrs.Attribute, value: int) -> None:
        if value < self.min_nodes:
            raise ConfigValueError(
                f"max_nodes: expected at least min_nodes ({self.min_nodes}), got {value}"
            )

    @providers.validator
    def _check_providers(self, _attribute: attrs.Attribute, value: tuple) -> None:
        if not value:
            raise ConfigValueError("providers: expected at least one provider entry, got none")


@frozen(kw_only=True)
class HealthConfig:
    # A policy file of CEL rules; empty means the built-in default policy.
    policy: str = ""
    # A node's health is the worst result over this window.
    window: timedelta = field(default=timedelta(minutes=10), validator=_positive_duration)


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


def load_config(path: str | os.PathLike[str], plugins: Any | None = None) -> Config:
    """Reads and checks a configuration file; raises ConfigError listing every problem.

    `plugins` is a `navarch.plugins.Plugins`; when omitted, the installed plugins are loaded.
    """
    source = str(path)
    text = read_config_file(path)
    return parse_config(text, source, plugins, base_dir=Path(path).parent)


def parse_config(
    text: str,
    source: str = "navarch.toml",
    plugins: Any | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Parses configuration text. Relative file names in it are relative to `base_dir`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"TOML syntax error: {exc}"]) from None
    return config_from_data(data, source, plugins, base_dir)


def config_from_data(
    data: dict[str, Any],
    source: str = "navarch.toml",
    plugins: Any | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Checks configuration already read from TOML (the simulator's `[config]` table, say)."""
    if plugins is None:
        from navarch.plugins import load_plugins

        plugins = load_plugins()
    problems: list[str] = []
    data = _default_plugin_types(data)
    config = _structure_config(data, problems)
    config = _structure_plugin_settings(config, plugins, problems)
    _check_references(config, set(data.get("providers") or {}), plugins, problems)
    config = _check_policy(config, base_dir, problems)
    if problems:
        raise ConfigError(source, problems)
    return attrs.evolve(config, source=source)


_NAMED_SECTIONS = ("providers", "pools", "notifiers")


def _structure_config(data: dict[str, Any], problems: list[str]) -> Config:
    """Structures each section (and each named table) on its own, so every problem is found."""
    known = [f.name for f in attrs.fields(Config) if f.name != "source"]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            problems.append(_unknown_key("", key, known))
            continue
        field_type = typing.get_type_hints(Config)[key]
        if key in _NAMED_SECTIONS:
            if not isinstance(value, Mapping):
                problems.append(f"{key}: expected a table, got {_show(value)}")
                continue
            item_type = typing.get_args(field_type)[1]
            items = {
                name: structure(table, item_type, problems, _join(key, name))
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


# Structuring with readable errors.


def _strict(kind: type, expected: str) -> Callable[[Any, type], Any]:
    def hook(value: Any, _type: type) -> Any:
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise ConfigValueError(f"expected {expected}, got {_show(value)}")
        return value

    return hook


def _duration(value: Any, _type: type) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigValueError(str(exc)) from None


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value) if not isinstance(value, str) else f'"{value}"'


converter = cattrs.Converter(forbid_extra_keys=True)
converter.register_structure_hook(int, _strict(int, "an integer"))
converter.register_structure_hook(float, _strict(float, "a number"))
converter.register_structure_hook(str, _strict(str, "a string"))
converter.register_structure_hook(bool, _strict(bool, "true or false"))
converter.register_structure_hook(timedelta, _duration)
converter.register_unstructure_hook(timedelta, format_duration)


def _table_hook(cls: type) -> Callable[[Any, type], Any]:
    from_dict = converter.gen_structure_attrs_fromdict(cls)

    def hook(value: Any, _type: type) -> Any:
        if not isinstance(value, Mapping):
            raise ConfigValueError(f"expected a table, got {_show(value)}")
        return from_dict(value, cls)

    return hook


converter.register_structure_hook_factory(attrs.has, _table_hook)


def _plugin_table(value: Any, _type: type) -> PluginTable:
    if not isinstance(value, Mapping):
        raise ConfigValueError(f"expected a table, got {_show(value)}")
    settings = dict(value)
    if "type" not in settings:
        raise ConfigValueError("type: required key is missing")
    kind = settings.pop("type")
    if not isinstance(kind, str):
        raise ConfigValueError(f"type: expected a string, got {_show(kind)}")
    return PluginTable(type=kind, settings=settings)


def _unstructure_plugin_table(table: PluginTable) -> dict[str, Any]:
    """A plugin table as it is written in the file: `type` beside the plugin's own keys."""
    settings = table.settings
    if settings is None:
        settings = {}
    elif not isinstance(settings, Mapping):
        settings = converter.unstructure(settings)
    return {"type": table.type, **settings}


converter.register_structure_hook(PluginTable, _plugin_table)
converter.register_unstructure_hook(PluginTable, _unstructure_plugin_table)


def structure(data: Any, cls: type[T], problems: list[str], path: str = "") -> T | None:
    """Structures `data` as `cls`, appending `KEY.PATH: message` lines to `problems` on failure."""
    try:
        return converter.structure(data, cls)
    except Exception as exc:  # cattrs raises exception groups; each leaf becomes one line
        problems.extend(_explain(exc, path))
        return None


def _explain(exc: BaseException, path: str) -> list[str]:
    if isinstance(exc, ForbiddenExtraKeysError):
        known = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        return [_unknown_key(path, key, known) for key in sorted(exc.extra_fields)]
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        # A class note names an attribute; a list or table note names an index or key.
        out: list[str] = []
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            if isinstance(exc, ClassValidationError):
                out += _explain(sub, _join(path, note.name))
            else:
                out += _explain(sub, f"{path}[{note.index}]")
        for sub in without:
            out += _explain(sub, path)
        return out
    if isinstance(exc, BaseExceptionGroup):
        return [line for sub in exc.exceptions for line in _explain(sub, path)]
    if isinstance(exc, KeyError):
        return [f"{path}: required key is missing"]
    if isinstance(exc, ConfigValueError):
        message = str(exc)
        # Validators name their own attribute; fold it into the path.
        head, sep, rest = message.partition(": ")
        if sep and head.isidentifier() and not message.startswith("expected"):
            return [f"{_join(path, head)}: {rest}"]
        return [f"{path or '(top level)'}: {message}"]
    if isinstance(exc, (TypeError, ValueError)):
        return [f"{path or '(top level)'}: {exc}"]
    raise exc


def _unknown_key(path: str, key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{_join(path, key)}: unknown key{hint}"


def _join(path: str, key: object) -> str:
    key = str(key)
    if not key.replace("_", "").replace("-", "").isalnum():
        key = f'"{key}"'
    return f"{path}.{key}" if path else key


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


def _structure_plugin_settings(config: Config, plugins: Any, problems: list[str]) -> Config:
    def settle(table: PluginTable, kind: str, path: str, nested: bool = False) -> PluginTable:
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
            changes: dict[str, Any] = {}
            for f in attrs.fields(type(settings)):
                value = getattr(settings, f.name)
                if isinstance(value, PluginTable):
                    changes[f.name] = settle(value, kind, f"{path}.{f.name}", nested=True)
                elif isinstance(value, tuple) and any(isinstance(v, PluginTable) for v in value):
                    changes[f.name] = tuple(
                        settle(v, kind, f"{path}.{f.name}[{i}]", nested=True)
                        for i, v in enumerate(value)
                    )
            if changes:
                settings = attrs.evolve(settings, **changes)
        return attrs.evolve(table, settings=settings, registration=registration)

    providers = {
        name: settle(t, "provider", f"providers.{name}") for name, t in config.providers.items()
    }
    notifiers = {
        name: settle(t, "notifier", f"notifiers.{name}") for name, t in config.notifiers.items()
    }
    pools = {}
    for name, pool in config.pools.items():
        changes: dict[str, Any] = {
            "selector": settle(pool.selector, "selector", f"pools.{name}.selector")
        }
        if pool.autoscaler is not None:
            changes["autoscaler"] = settle(
                pool.autoscaler, "autoscaler", f"pools.{name}.autoscaler"
            )
        if pool.metrics is not None:
            changes["metrics"] = settle(pool.metrics, "metrics_source", f"pools.{name}.metrics")
        pools[name] = attrs.evolve(pool, **changes)
    return attrs.evolve(config, providers=providers, notifiers=notifiers, pools=pools)


def _check_references(
    config: Config, provider_tables: set[str], plugins: Any, problems: list[str]
) -> None:
    def known(kind: str, name: str, path: str) -> None:
        names = sorted(plugins.registry(kind))
        if name not in names:
            listed = ", ".join(names) or "none"
            problems.append(f'{path}: no {kind} plugin named "{name}" (registered: {listed})')

    for name, table in config.providers.items():
        known("provider", table.type, f"providers.{name}.type")
    for name, table in config.notifiers.items():
        known("notifier", table.type, f"notifiers.{name}.type")
    for pool_name, pool in config.pools.items():
        base = f"pools.{pool_name}"
        if pool.autoscaler is not None:
            known("autoscaler", pool.autoscaler.type, f"{base}.autoscaler.type")
        known("selector", pool.selector.type, f"{base}.selector.type")
        if pool.metrics is not None:
            known("metrics_source", pool.metrics.type, f"{base}.metrics.type")
        seen: set[tuple[str, tuple[str, ...], tuple[str, ...]]] = set()
        for i, entry in enumerate(pool.providers):
            path = f"{base}.providers[{i}].provider"
            if entry.provider not in provider_tables:
                listed = ", ".join(sorted(provider_tables)) or "none"
                problems.append(
                    f"{path}: no [providers.{entry.provider}] table (configured: {listed})"
                )
            key = (entry.provider, entry.regions, entry.zones)
            if key in seen:
                problems.append(
                    f'{path}: duplicate entry for provider "{entry.provider}" with the same '
                    "regions and zones"
                )
            seen.add(key)


# Showing the effective configuration.

_SECRET_HINTS = ("token", "secret", "password", "api_key", "apikey", "credential")


def effective_dict(config: Config) -> dict[str, Any]:
    """The configuration with defaults filled in and anything secret-looking redacted."""
    raw = converter.unstructure(config)
    raw.pop("source", None)
    if raw["server"].get("heartbeat_timeout") is None:
        raw["server"]["heartbeat_timeout"] = format_duration(
            config.server.effective_heartbeat_timeout
        )
    return _redact(_drop_none(raw))


def _drop_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    return value


def _redact(value: Any, key: str = "") -> Any:
    if isinstance(value, Mapping):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, key) for v in value]
    lowered = key.lower()
    # A key ending in `_env` names a variable, which is not itself a secret.
    if value and not lowered.endswith("_env") and any(h in lowered for h in _SECRET_HINTS):
        return "<redacted>"
    return value
