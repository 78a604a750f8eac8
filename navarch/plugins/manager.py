"""The plugin manager: one pluggy manager, one registry per kind of plugin object.

Built-in plugins are ordinary plugin modules registered by name, so they take the same path as a
third-party plugin found through the `navarch` entry-point group. A process loads its plugins
once (`installed_plugins`) and hands them to everything that needs them. A built-in plugin is
imported when a kind it registers is first used, so a daemon, which uses health checks alone,
does not hold the providers, autoscalers and notifiers in memory.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, Protocol, TypeVar, cast

import attrs
import pluggy
from attrs import define, field, frozen

from navarch.errors import NavarchError
from navarch.hints import unknown_key
from navarch.plugins import hookspecs
from navarch.plugins.settings import join, structure

__all__ = [
    "BUILTIN_PLUGINS",
    "KINDS",
    "PluginFailed",
    "PluginInfo",
    "Plugins",
    "Registration",
    "UnknownPlugin",
    "installed_plugins",
    "load_plugins",
]

ENTRY_POINT_GROUP = "navarch"

T = TypeVar("T")

# kind -> the hook that fills its registry
KINDS: dict[str, str] = {
    "provider": "navarch_providers",
    "autoscaler": "navarch_autoscalers",
    "selector": "navarch_selectors",
    "health_check": "navarch_health_checks",
    "notifier": "navarch_notifiers",
    "metrics_source": "navarch_metrics_sources",
}
_KIND_ORDER = {kind: index for index, kind in enumerate(KINDS)}  # how `registered` is sorted

# Each built-in plugin and the kinds it registers, in load order; a test checks the kinds against
# the module's hooks.
BUILTIN_PLUGINS: dict[str, tuple[str, ...]] = {
    "navarch.plugins.builtin.fake_provider": ("provider",),
    "navarch.plugins.builtin.autoscalers": ("autoscaler",),
    "navarch.plugins.builtin.selectors": ("selector",),
    "navarch.plugins.builtin.health_checks": ("health_check",),
    "navarch.plugins.builtin.webhook": ("notifier",),
    "navarch.plugins.builtin.slack": ("notifier",),
    "navarch.plugins.builtin.pagerduty": ("notifier",),
    "navarch.plugins.builtin.metrics_sources": ("metrics_source",),
}


class UnknownPlugin(NavarchError):
    pass


@frozen
class Registration:
    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str

    @property
    def settings_class(self) -> type | None:
        """The attrs class for the plugin's own table; a factory without one takes no keys."""
        cls = getattr(self.factory, "Settings", None)
        return cls if cls is not None and attrs.has(cls) else None

    def structure_settings(self, raw: Mapping[str, Any], path: str, problems: list[str]) -> Any:
        cls = self.settings_class
        if cls is None:
            problems.extend(unknown_key(join(path, key), key, []) for key in raw)
            return None
        return structure(dict(raw), cls, problems, path)

    def create(
        self,
        contract: type[T] | tuple[type[T], ...],
        settings: Any = None,
        *,
        path: str = "",
        **context: Any,
    ) -> T:
        """Builds the plugin object; settings default to the plugin's own defaults.

        The object must have every member of `contract` (of one of them, for a tuple). A factory
        that raises anything but a `NavarchError`, or an object that lacks a member, is a
        `PluginFailed` naming the table at `path`, the plugin and what went wrong, rather than a
        traceback or a failure later on.
        """
        where = f"{path}: " if path else ""
        what = f'{where}the {self.kind.replace("_", " ")} plugin "{self.name}"'
        cls = self.settings_class
        try:
            if cls is None:
                made = self.factory(**context)
            else:
                made = self.factory(settings if settings is not None else cls(), **context)
        except NavarchError:
            raise  # the plugin's own message for the person who runs it, e.g. a missing secret
        except Exception as exc:
            raise PluginFailed(
                f"{what} could not start: {type(exc).__name__}: {exc}", plugin=self.plugin
            ) from exc
        contracts = contract if isinstance(contract, tuple) else (contract,)
        gaps = [(c, missing_members(made, c)) for c in contracts]
        if all(missing for _, missing in gaps):
            c, missing = gaps[0]
            raise PluginFailed(
                f"{what} made an object ({type(made).__name__}) without "
                f"{', '.join(missing)}, which a {c.__name__} must have",
                plugin=self.plugin,
            )
        return cast(T, made)


class PluginFailed(NavarchError):
    """A plugin could not make its object, or made one that breaks its contract."""

    def __init__(self, message: str, *, plugin: str) -> None:
        super().__init__(f"{message} (plugin {plugin!r}; fix or update it, or remove its table)")
        self.plugin = plugin


def missing_members(obj: object, contract: type) -> list[str]:
    """The public methods and attributes `contract` (a Protocol) declares that `obj` lacks."""
    members: dict[str, None] = {}
    for base in reversed(contract.__mro__):
        if base in (object, Protocol, Generic):
            continue
        for name in [*vars(base), *vars(base).get("__annotations__", {})]:
            if not name.startswith("_"):
                members[name] = None
    return [name for name in members if not hasattr(obj, name)]


@define
class PluginInfo:
    name: str
    distribution: str
    version: str
    builtin: bool
    error: str = ""
    registered: list[str] = field(factory=list)


# What one plugin's hook offered: (name, factory) in the order it called `register`.
_Offers = list[tuple[str, Callable[..., Any]]]


@define
class _Entry:
    """One plugin in load order, and what its hooks offered by kind."""

    info: PluginInfo
    # A built-in plugin's module until it is imported, and the kinds it registers.
    module: str = ""
    kinds: tuple[str, ...] = ()
    offers: dict[str, _Offers] = field(factory=dict)


class Plugins:
    """The loaded plugins and everything they registered.

    A kind's registry is made on its first use, from what every plugin offered in load order
    (built-ins first), so the first plugin to register a name keeps it, however late a built-in
    was imported. `manager` holds the plugins imported so far.
    """

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self.infos: dict[str, PluginInfo] = {}
        self._entries: list[_Entry] = []
        self._registries: dict[str, dict[str, Registration]] = {}

    def registry(self, kind: str) -> dict[str, Registration]:
        registry = self._registries.get(kind)
        if registry is None:
            registry = self._registries[kind] = self._make_registry(kind)
        return registry

    def get(self, kind: str, name: str) -> Registration:
        registry = self.registry(kind)
        if name not in registry:
            listed = ", ".join(sorted(registry)) or "none"
            raise UnknownPlugin(f'no {kind} plugin named "{name}" (registered: {listed})')
        return registry[name]

    def broken(self, *kinds: str) -> list[PluginInfo]:
        """The plugins that failed: to import, in a hook, or to keep a name of one of `kinds`
        (every kind by default) that a plugin before them registered.

        Which plugin keeps a name is settled when its kind is first used, so this uses `kinds`,
        importing the built-ins that register them.
        """
        for kind in kinds or KINDS:
            self.registry(kind)
        return [info for info in self.infos.values() if info.error]

    def __iter__(self) -> Iterator[PluginInfo]:
        for kind in KINDS:
            self.registry(kind)
        return iter(self.infos.values())

    def add_plugin(self, module: Any, info: PluginInfo) -> None:
        """Registers one plugin module or object and collects what its hooks offer."""
        self.infos[info.name] = info
        entry = _Entry(info)
        self._entries.append(entry)
        self._register(module, entry)

    def add_builtin(self, module_name: str, kinds: tuple[str, ...], info: PluginInfo) -> None:
        """Adds a built-in plugin in its place in load order, to import when `kinds` are used."""
        self.infos[info.name] = info
        self._entries.append(_Entry(info, module=module_name, kinds=kinds))

    def _register(self, module: Any, entry: _Entry) -> None:
        info = entry.info
        try:
            self.manager.register(module, name=info.name)
            self.manager.check_pending()
        except Exception as exc:
            if self.manager.is_registered(module):
                self.manager.unregister(module)
            info.error = f"{type(exc).__name__}: {exc}"
            return
        for kind, hook_name in KINDS.items():
            hook = getattr(self.manager.hook, hook_name)
            for impl in hook.get_hookimpls():
                if impl.plugin is not module:
                    continue
                try:
                    impl.function(register=_offer_to(entry.offers.setdefault(kind, [])))
                except Exception as exc:
                    info.error = f"{hook_name} failed: {type(exc).__name__}: {exc}"

    def _make_registry(self, kind: str) -> dict[str, Registration]:
        if kind not in KINDS:
            raise KeyError(kind)
        for entry in self._entries:
            if entry.module and kind in entry.kinds:
                module = importlib.import_module(entry.module)
                entry.module = ""
                self._register(module, entry)
        registry: dict[str, Registration] = {}
        for entry in self._entries:
            info = entry.info
            for name, factory in entry.offers.get(kind, []):
                if name in registry:
                    info.error = (
                        f'{kind} "{name}" is registered by both plugin "{registry[name].plugin}" '
                        f'and plugin "{info.name}"; uninstall or disable one of them'
                    )
                    break
                registry[name] = Registration(
                    kind=kind, name=name, factory=factory, plugin=info.name
                )
                info.registered.append(f"{kind}:{name}")
            info.registered.sort(key=lambda registered: _KIND_ORDER[registered.split(":")[0]])
        return registry


def _offer_to(offers: _Offers) -> Callable[[str, Callable[..., Any]], None]:
    def register(name: str, factory: Callable[..., Any]) -> None:
        offers.append((name, factory))

    return register


def load_plugins(
    *,
    builtins: bool = True,
    entry_points: bool | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Plugins:
    """Loads the built-in plugins and those installed under the `navarch` entry-point group.

    A plugin that fails to import is recorded with its error and distribution; the others load.
    `NAVARCH_DISABLE_PLUGIN_AUTOLOAD=1` skips entry points. `extra` adds plugin objects by name
    (tests, embedding). Built-in plugins are imported when a kind they register is first used.
    """
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    plugins = Plugins(manager)
    if builtins:
        from navarch import __version__

        for module_name, kinds in BUILTIN_PLUGINS.items():
            plugins.add_builtin(
                module_name,
                kinds,
                PluginInfo(
                    name=module_name.rsplit(".", 1)[-1],
                    distribution="navarch",
                    version=__version__,
                    builtin=True,
                ),
            )
    if entry_points is None:
        entry_points = os.environ.get("NAVARCH_DISABLE_PLUGIN_AUTOLOAD", "") in ("", "0")
    if entry_points:
        for ep in sorted(
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
        ):
            dist = ep.dist
            info = PluginInfo(
                name=ep.name,
                distribution=dist.name if dist else "unknown",
                version=dist.version if dist else "",
                builtin=False,
            )
            if ep.name in plugins.infos:
                info.error = f'a plugin named "{ep.name}" is already loaded'
                plugins.infos[f"{ep.name} ({info.distribution})"] = info
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break navarch
                info.error = f"import failed: {type(exc).__name__}: {exc}"
                plugins.infos[ep.name] = info
                continue
            plugins.add_plugin(module, info)
    for name, obj in (extra or {}).items():
        plugins.add_plugin(
            obj, PluginInfo(name=name, distribution="(in process)", version="", builtin=False)
        )
    return plugins


@functools.cache
def installed_plugins() -> Plugins:
    """This process's plugins: the built-ins and the installed ones, loaded once, on first use.

    Every part of a command that needs plugins (its CLI commands, its configuration, the
    simulator's scenario) shares this one load.
    """
    return load_plugins()
