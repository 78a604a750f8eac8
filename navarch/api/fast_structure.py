"""The codec's fast path: well-formed messages structured without cattrs' per-field bookkeeping.

cattrs with detailed validation wraps every field of every object in its own error handling, so
that it can say where each problem lies; a heartbeat with 8 GPUs spends more time there than in
building its objects. Most requests have no problem at all, so this path only tells whether a
value is well formed, in one function generated per class as attrs and cattrs generate theirs.
Each value must have exactly its field's JSON type (a float field also takes an integer, as the
codec's converter does); on anything else, the converter structures the whole value again and
raises the error it always raises. The fast path therefore changes what a caller gets in speed
alone: the same objects for a good message, the same error for a bad one.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import attrs
import cattrs

T = TypeVar("T")

# A fast hook takes a parsed JSON value and returns the field's value, or raises anything at all.
FastHook = Callable[[object], object]
_INT_LOW, _INT_HIGH = -(2**63), 2**63
_MISSING = object()


class _Unsure(Exception):
    """The fast path leaves this value to the converter."""


class FastStructure:
    """Structures like `converter` (the codec's), which must take JSON types as strictly as this
    class does; `rename` gives a field's wire name."""

    def __init__(
        self,
        converter: cattrs.Converter,
        rename: Callable[[str], str],
        *,
        ignore_unknown_fields: bool,
    ) -> None:
        self._converter = converter
        self._rename = rename
        self._ignore_unknown_fields = ignore_unknown_fields
        self._hooks: dict[Any, FastHook | None] = {}

    def structure(self, value: object, cls: type[T]) -> T:
        """The converter's `structure(value, cls)`, faster when `value` is well formed."""
        try:
            hook = self._hooks[cls]
        except KeyError:
            hook = self._hooks[cls] = self._build_or_none(cls)
        if hook is not None:
            try:
                return hook(value)  # type: ignore[return-value]
            except Exception:
                pass
        return self._converter.structure(value, cls)

    def _build_or_none(self, t: Any) -> FastHook | None:
        try:
            return self._build(t)
        except LookupError:
            return None

    # Field types as a model spells them (`int | None`, `tuple[str, ...]`) have no static type.
    def _build(self, t: Any) -> FastHook:
        if t is str:
            return _fast_str
        if t is bool:
            return _fast_bool
        if t is int:
            return _fast_int
        if t is float:
            return _fast_float
        if t is datetime:
            # The converter's own parser: times have many spellings, and they are rare.
            parse = self._converter.get_structure_hook(datetime)
            return lambda value: parse(value, datetime)
        origin = typing.get_origin(t)
        args = typing.get_args(t)
        if isinstance(t, type) and issubclass(t, enum.Enum):
            return _fast_enum({m.value: m for m in t})
        if origin in (typing.Union, types.UnionType) and type(None) in args:
            (inner,) = [a for a in args if a is not type(None)]
            return _fast_optional(self._build(inner))
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return _fast_tuple(self._build(args[0]))
        if origin is dict and args[0] is str:
            return _fast_dict(self._build(args[1]))
        if attrs.has(t):
            return self._attrs(t)
        raise LookupError(f"no fast hook for {t}")

    def _attrs(self, cls: type) -> FastHook:
        # One function per class: a call per field and a loop over the fields would cost more
        # than the checks themselves.
        hints = typing.get_type_hints(cls)
        fields = attrs.fields(cls)
        scope: dict[str, Any] = {
            "cls": cls,
            "known": frozenset(self._rename(a.name) for a in fields),
            "missing": _MISSING,
            "Unsure": _Unsure,
            "to_float": _fast_float,
            "low": _INT_LOW,
            "high": _INT_HIGH,
        }
        lines = ["def structure(value):", "    if type(value) is not dict:", "        raise Unsure"]
        if not self._ignore_unknown_fields:
            lines += ["    if not known.issuperset(value):", "        raise Unsure"]
        arguments = []
        for i, a in enumerate(fields):
            if not a.init or a.converter is not None or a.alias != a.name:
                raise LookupError(f"no fast hook for {cls.__name__}.{a.name}")
            lines.append(f"    v{i} = value.get({self._rename(a.name)!r}, missing)")
            if a.default is attrs.NOTHING:
                lines += [f"    if v{i} is missing:", "        raise Unsure"]
                indent = "    "
            else:
                # An absent field gets its default here, as `cls` would give it.
                lines += [f"    if v{i} is missing:", f"        v{i} = {_default(a, i, scope)}"]
                lines.append("    else:")
                indent = "        "
            lines += [indent + line for line in self._field(hints[a.name], i, scope)]
            arguments.append(f"{a.name}=v{i}")
        lines.append(f"    return cls({', '.join(arguments)})")
        exec(compile("\n".join(lines), f"<fast structure {cls.__qualname__}>", "exec"), scope)
        hook: FastHook = scope["structure"]
        return hook

    def _field(self, t: Any, i: int, scope: dict[str, Any]) -> list[str]:
        """The lines that check and convert `v{i}`, of type `t`, in place."""
        if t is str or t is bool:
            return [f"if type(v{i}) is not {t.__name__}:", "    raise Unsure"]
        if t is int:
            return [f"if type(v{i}) is not int or not low <= v{i} < high:", "    raise Unsure"]
        if t is float:
            return [f"if type(v{i}) is not float:", f"    v{i} = to_float(v{i})"]
        scope[f"hook{i}"] = self._build(t)
        return [f"v{i} = hook{i}(v{i})"]


def _default(a: attrs.Attribute[Any], i: int, scope: dict[str, Any]) -> str:
    """The expression of the field's default, with what it needs put in `scope`."""
    default: Any = a.default
    scope[f"default{i}"] = default
    if not isinstance(default, attrs.Factory):  # type: ignore[arg-type]  # a class at run time
        return f"default{i}"
    if default.takes_self:
        raise LookupError(f"no fast hook for the field {a.name}")
    return f"default{i}.factory()"


def _fast_str(value: object) -> object:
    if type(value) is not str:
        raise _Unsure
    return value


def _fast_bool(value: object) -> object:
    if type(value) is not bool:
        raise _Unsure
    return value


def _fast_int(value: object) -> object:
    if type(value) is not int or not _INT_LOW <= value < _INT_HIGH:
        raise _Unsure
    return value


def _fast_float(value: object) -> object:
    if type(value) is float:
        return value
    if type(value) is not int:
        raise _Unsure
    # An integer past a double's range raises OverflowError: the converter words it.
    return float(value)


def _fast_enum(members: dict[object, enum.Enum]) -> FastHook:
    def structure(value: object) -> object:
        if type(value) is not str:
            raise _Unsure
        return members[value]

    return structure


def _fast_optional(inner: FastHook) -> FastHook:
    def structure(value: object) -> object:
        return None if value is None else inner(value)

    return structure


def _fast_tuple(item: FastHook) -> FastHook:
    def structure(value: object) -> object:
        if type(value) is not list:
            raise _Unsure
        return tuple([item(v) for v in value])

    return structure


def _fast_dict(item: FastHook) -> FastHook:
    def structure(value: object) -> object:
        if type(value) is not dict:
            raise _Unsure
        return {k: item(v) for k, v in value.items()}

    return structure
