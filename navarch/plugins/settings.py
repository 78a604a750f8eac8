"""Settings tables: TOML tables structured into frozen attrs classes, with path-qualified errors.

A plugin's `Settings` class, and every section of navarch's own configuration files, is built by
`structure`, which never raises for a bad value: it appends one `KEY.PATH: what was expected, what
was found` line per problem, so that a file's problems are all reported at once. Validators on the
classes raise `ConfigValueError` with a message that starts with the key's name.

A table that names another plugin of the same kind (a composite autoscaler's members) is a
`PluginTable`: its `type` picks the plugin and its other keys are that plugin's settings.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import attrs
import cattrs
from attrs import field, frozen
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from navarch.durations import format_duration, parse_duration
from navarch.errors import ConfigValueError, NavarchError
from navarch.hints import show_toml, unknown_key

T = TypeVar("T")


class _Creates(Protocol):
    def create(
        self,
        contract: type[T] | tuple[type[T], ...],
        settings: Any = None,
        *,
        path: str = "",
        **context: Any,
    ) -> T: ...


@frozen(kw_only=True)
class PluginTable:
    """A table that names a plugin by `type` and hands the rest of its keys to that plugin."""

    type: str
    # The plugin's own structured settings (or, before they are checked, the raw table).
    settings: Any = None
    # The registration the table was checked against; set when the configuration is read.
    registration: _Creates | None = field(default=None, eq=False, repr=False)
    # Where the table is in its file (`pools.train.autoscaler`), for messages; set with it.
    path: str = field(default="", eq=False, repr=False)

    def create(self, contract: builtins.type[T], **context: Any) -> T:
        """Builds the plugin object that this table configures, which must keep `contract`."""
        if self.registration is None:
            raise NavarchError(
                f'the "{self.type}" plugin table was not checked against the loaded plugins; '
                "read the configuration with load_config or parse_config"
            )
        return self.registration.create(contract, self.settings, path=self.path, **context)


def _strict(kind: type, expected: str) -> Callable[[Any, type], Any]:
    def hook(value: Any, _type: type) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigValueError(f"expected {expected}, got {show_toml(value)}")
        return value

    return hook


def _duration(value: Any, _type: type) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigValueError(str(exc)) from None


converter = cattrs.Converter(forbid_extra_keys=True)
converter.register_structure_hook(int, _strict(int, "an integer"))
converter.register_structure_hook(float, _strict(float, "a number"))
converter.register_structure_hook(str, _strict(str, "a string"))
converter.register_structure_hook(bool, _strict(bool, "true or false"))
converter.register_structure_hook(timedelta, _duration)
converter.register_unstructure_hook(timedelta, format_duration)


# The hooks below take whatever TOML gave (Any: any TOML value) and return the class they build.


def _table_hook(cls: type[T]) -> Callable[[Any, type], T]:
    from_dict: Callable[[Mapping[str, Any], type[T]], T] = converter.gen_structure_attrs_fromdict(
        cls
    )

    def hook(value: Any, _type: type) -> T:
        if not isinstance(value, Mapping):
            raise ConfigValueError(f"expected a table, got {show_toml(value)}")
        return from_dict(value, cls)

    return hook


converter.register_structure_hook_factory(attrs.has, _table_hook)


def _plugin_table(value: Any, _type: type) -> PluginTable:
    if not isinstance(value, Mapping):
        raise ConfigValueError(f"expected a table, got {show_toml(value)}")
    settings = dict(value)
    if "type" not in settings:
        raise ConfigValueError("type: required key is missing")
    kind = settings.pop("type")
    if not isinstance(kind, str):
        raise ConfigValueError(f"type: expected a string, got {show_toml(kind)}")
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


# An attribute's name, then perhaps `.KEY` or `[INDEX]` parts, with no spaces.
_ATTRIBUTE_HEAD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:[.\[][^\s]*)?)$")


def _explain(exc: BaseException, path: str) -> list[str]:
    if isinstance(exc, ForbiddenExtraKeysError):
        known = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        return [unknown_key(join(path, key), key, known) for key in sorted(exc.extra_fields)]
    if isinstance(exc, ClassValidationError):
        # A class note names an attribute; a list or table note names an index or key.
        out: list[str] = []
        with_names, without = exc.group_exceptions()
        for sub, named in with_names:
            out += _explain(sub, join(path, named.name))
        for sub in without:
            out += _explain(sub, path)
        return out
    if isinstance(exc, IterableValidationError):
        out = []
        with_indexes, without = exc.group_exceptions()
        for sub, indexed in with_indexes:
            out += _explain(sub, f"{path}[{indexed.index}]")
        for sub in without:
            out += _explain(sub, path)
        return out
    if isinstance(exc, BaseExceptionGroup):
        return [line for sub in exc.exceptions for line in _explain(sub, path)]
    if isinstance(exc, KeyError):
        return [f"{path}: required key is missing"]
    if isinstance(exc, ConfigValueError):
        message = str(exc)
        # Validators name their own attribute, or a key or index under it (`images.us-east-1`,
        # `zones[2]`); fold it into the path.
        head, sep, rest = message.partition(": ")
        attribute = _ATTRIBUTE_HEAD.match(head)
        if sep and attribute is not None and not head.startswith("expected "):
            return [f"{join(path, attribute.group(1))}{attribute.group(2)}: {rest}"]
        return [f"{path or '(top level)'}: {message}"]
    if isinstance(exc, TypeError | ValueError):
        return [f"{path or '(top level)'}: {exc}"]
    raise exc


def join(path: str, key: object) -> str:
    """`path.key`, with the key quoted where TOML would quote it."""
    key = str(key)
    if not key.replace("_", "").replace("-", "").isalnum():
        key = f'"{key}"'
    return f"{path}.{key}" if path else key
