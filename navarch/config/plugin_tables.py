"""Plugin tables: their types, their settings structured by each plugin, and the references
between pools and providers."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import attrs

from navarch.plugins.manager import Plugins
from navarch.plugins.settings import PluginTable, structure

if sys.version_info >= (3, 15):
    pass
else:
    pass

from navarch.config.tables import (
    Config,
    PoolProviderEntry,
)

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
