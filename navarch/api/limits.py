"""What a request may carry: the limits every call is checked against before its handler runs.

The codec checks that each value has its field's JSON type; these limits check that it is a value
the control plane can keep and show again, and that one caller cannot grow the store without
bound:

- text is Unicode scalar values (no lone surrogates such as `"\\ud800"`) without control
  characters, within its field's length; free text (reasons, messages) may hold tabs and new lines;
- numbers are finite (`1e400` is infinity in JSON parsers) and within their field's range;
- timestamps lie in the years 1970 to 9999;
- lists and maps hold at most their field's number of items.

A limit belongs to a field name wherever that name appears in a request (`message` is the same in
AckCommand and in a health event). The check walks the request by its attrs fields, with a checker
built once per request type from the field types; a string, number, list or map field without a
limit here is an error when its checker is built, so a new field gets one on purpose. Most
requests are within every limit: one expression generated per type says so first, and only a
request past a limit is walked field by field to name each problem.
`methods.call` runs the check, so the in-process client meets the same limits as HTTP.
"""

from __future__ import annotations

import enum
import math
import re
import types
import typing
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import attrs
from attrs import frozen

from navarch.api.codec import camel
from navarch.errors import InvalidArgument


@frozen
class Text:
    max_length: int
    # Free text may hold tabs and line breaks; names may not.
    lines: bool = False


@frozen
class Number:
    low: float
    high: float


@frozen
class Items:
    """A list or a map: at most `max_items`, each key and item within its own limit."""

    max_items: int
    item: Text | Number | None = None
    key: Text | None = None


Limit = Text | Number | Items

_INT64 = Number(-(2**63), 2**63 - 1)
_COUNT = Number(0, 2**63 - 1)
_ANY_NUMBER = Number(-math.inf, math.inf)
_NAME = Text(253)
_REASON = Text(1024, lines=True)
_MESSAGE = Text(4096, lines=True)

LIMITS: dict[str, Limit] = {
    "node_id": _NAME,
    "command_id": _NAME,
    "episode_id": _NAME,
    "before": _NAME,
    "provider": _NAME,
    "region": _NAME,
    "zone": _NAME,
    "instance_type": _NAME,
    "pool": _NAME,
    "name": _NAME,
    "hostname": _NAME,
    "agent_version": _NAME,
    "uuid": _NAME,
    "gpu_uuid": _NAME,
    "pci_bus_id": _NAME,
    "kind": _NAME,
    "wait": Text(32),
    "reason": _REASON,
    "detail": Text(1000, lines=True),
    # The end of a bootstrap script's log.
    "log_tail": Text(8192, lines=True),
    "message": _MESSAGE,
    "labels": Items(64, key=_NAME, item=_NAME),
    "parameters": Items(32, key=_NAME, item=_REASON),
    "details": Items(32, key=_NAME, item=_REASON),
    # A health event's readings; a heartbeat's `metrics` is an object with limits of its own.
    "metrics": Items(32, key=_NAME, item=_ANY_NUMBER),
    "gpus": Items(64),
    "events": Items(256),
    "statuses": Items(16),
    "healths": Items(16),
    "kinds": Items(64, item=_NAME),
    "index": Number(0, 1023),
    "gpu_index": Number(-1, 1023),
    "xid": Number(0, 2**31 - 1),
    "memory_total_bytes": _COUNT,
    "memory_used_bytes": _COUNT,
    "cpu_percent": Number(0, 100),
    "memory_percent": Number(0, 100),
    "utilization_percent": Number(0, 100),
    "temperature_c": Number(-273.15, 1000),
    "power_watts": Number(0, 100_000),
    "ecc_corrected": _COUNT,
    "ecc_uncorrected": _COUNT,
    "limit": _INT64,
    # ListNodes: the search text, the sort, and the page.
    "query": Text(256),
    "order_by": Text(32),
    "page_size": Number(0, 1000),
    "page_token": Text(2048),
    "target": _COUNT,
    "depth": _COUNT,
}

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# Problems shown in one answer; a request with more says how many were left out.
_SHOWN = 10

# A checker yields (wire path, problem) for each problem of a value.
Checker = Callable[[Any, str], Iterator[tuple[str, str]]]
# A pass says whether a value is within every limit, without saying where it is not: most requests
# are, and the checker then need not build a path for every field they have.
Pass = Callable[[Any], bool]


@frozen
class _Rule:
    """The two views of one field's limits; `passes` is true exactly when `check` yields
    nothing."""

    check: Checker
    passes: Pass
    # Set for a number, so that an object checks its number fields without a call each.
    number: tuple[float, float, bool] | None = None


_NAME_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_TEXT_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_rules: dict[type, _Rule] = {}
# The same characters as JSON Schema patterns write them.
_NAME_CONTROLS = r"\u0000-\u001f\u007f-\u009f"
_TEXT_CONTROLS = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"


def check(request: object) -> None:
    """Raises InvalidArgument naming every field of `request` that is past its limit."""
    rule = _rule(type(request))
    if rule.passes(request):
        return
    problems = [f"{path}: {problem}" for path, problem in rule.check(request, "")]
    if problems:
        more = len(problems) - _SHOWN
        shown = "; ".join(problems[:_SHOWN])
        raise InvalidArgument(shown + (f"; and {more} more" if more > 0 else ""))


def checker(cls: type) -> Checker:
    """The checker of a request type; LookupError when one of its fields has no limit."""
    return _rule(cls).check


def _rule(cls: type) -> _Rule:
    found = _rules.get(cls)
    if found is None:
        found = _rules[cls] = _object(cls)
    return found


def text_problem(value: str, limit: Text) -> str | None:
    if len(value) > limit.max_length:
        return f"expected at most {limit.max_length} characters"
    bad = (_TEXT_BAD if limit.lines else _NAME_BAD).search(value)
    if bad is None:
        return None
    char = ord(bad.group())
    what = "a lone surrogate" if 0xD800 <= char <= 0xDFFF else "a control character"
    return f"holds {what} (U+{char:04X}) at character {bad.start()}"


def _object(cls: type) -> _Rule:
    hints = typing.get_type_hints(cls)
    fields = [
        (a.name, camel(a.name), _for_type(hints[a.name], a.name, f"{cls.__name__}.{a.name}"))
        for a in attrs.fields(cls)
    ]
    checked = [(name, wire_name, rule.check) for name, wire_name, rule in fields if rule]

    def check_object(value: Any, path: str) -> Iterator[tuple[str, str]]:
        for name, wire_name, check_field in checked:
            where = f"{path}.{wire_name}" if path else wire_name
            yield from check_field(getattr(value, name), where)

    return _Rule(check_object, _object_passes(cls, [(name, rule) for name, _, rule in fields]))


def _object_passes(cls: type, fields: list[tuple[str, _Rule | None]]) -> Pass:
    """One expression over the object's fields, generated as attrs generates its methods: a
    heartbeat holds 56 numbers, and a call and a loop step for each cost more than comparing."""
    scope: dict[str, Any] = {"isfinite": math.isfinite}
    terms = []
    for i, (name, rule) in enumerate(fields):
        if rule is None:
            continue
        if rule.number is None:
            scope[f"passes{i}"] = rule.passes
            terms.append(f"passes{i}(value.{name})")
            continue
        low, high, whole = rule.number
        scope[f"low{i}"], scope[f"high{i}"] = low, high
        term = f"low{i} <= value.{name} <= high{i}"
        # NaN fails both comparisons; infinity passes only unbounded ones, hence isfinite.
        if not whole and (math.isinf(low) or math.isinf(high)):
            term += f" and isfinite(value.{name})"
        terms.append(f"({term})")
    source = f"def passes(value):\n    return {' and '.join(terms) or 'True'}\n"
    exec(compile(source, f"<limits of {cls.__qualname__}>", "exec"), scope)
    passes: Pass = scope["passes"]
    return passes


# Field types as a wire model spells them (`int | None`, `tuple[str, ...]`) have no static type.
def _for_type(t: Any, name: str, where: str) -> _Rule | None:
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(t) if a is not type(None)]
        inner_rule = _for_type(inner, name, where)
        return None if inner_rule is None else _optional(inner_rule)
    if t is datetime:
        return _Rule(_check_time, _time_passes)
    if t is bool or (isinstance(t, type) and issubclass(t, enum.Enum)):
        return None
    if attrs.has(t):
        return _rule(t)
    limit = LIMITS.get(name)
    if t is str or t is int or t is float:
        return _scalar(t, limit, where)
    if not isinstance(limit, Items):
        raise LookupError(f"{where}: no limit on the number of items (LIMITS has {limit!r})")
    if origin is tuple:
        (elem,) = [a for a in typing.get_args(t) if a is not Ellipsis]
        return _sequence(limit, _item(elem, limit, name, where))
    if origin is dict:
        _, value_type = typing.get_args(t)
        if limit.key is None:
            raise LookupError(f"{where}: no limit on the keys")
        return _mapping(limit, limit.key, _item(value_type, limit, name, where))
    raise LookupError(f"{where}: no limit for a field of type {t}")


def _item(t: Any, items: Items, name: str, where: str) -> _Rule | None:
    if t is str or t is int or t is float:
        return _scalar(t, items.item, f"{where}[]")
    return _for_type(t, name, where)


def _scalar(t: type, limit: Limit | None, where: str) -> _Rule:
    if t is str:
        if not isinstance(limit, Text):
            raise LookupError(f"{where}: no length limit (LIMITS has {limit!r})")
        return _text(limit)
    if limit is None:
        limit = _INT64 if t is int else _ANY_NUMBER
    if not isinstance(limit, Number):
        raise LookupError(f"{where}: no range (LIMITS has {limit!r})")
    return _number(limit, whole=t is int)


def _optional(inner: _Rule) -> _Rule:
    check_inner, inner_passes = inner.check, inner.passes

    def check_optional(value: Any, path: str) -> Iterator[tuple[str, str]]:
        if value is not None:
            yield from check_inner(value, path)

    def optional_passes(value: Any) -> bool:
        return value is None or inner_passes(value)

    return _Rule(check_optional, optional_passes)


def _text(limit: Text) -> _Rule:
    max_length = limit.max_length
    search = (_TEXT_BAD if limit.lines else _NAME_BAD).search

    def check_text(value: str, path: str) -> Iterator[tuple[str, str]]:
        problem = text_problem(value, limit)
        if problem is not None:
            yield path, problem

    def text_passes(value: str) -> bool:
        return len(value) <= max_length and search(value) is None

    return _Rule(check_text, text_passes)


def _number(limit: Number, *, whole: bool) -> _Rule:
    low, high = limit.low, limit.high
    if math.isinf(low) and math.isinf(high):
        expected = "a finite number"
    elif whole and high >= _INT64.high:
        expected = f"{int(low)} or more" if low > _INT64.low else "a 64-bit integer"
    elif whole:
        expected = f"an integer from {int(low)} to {int(high)}"
    else:
        expected = f"a number from {low:g} to {high:g}"
    isfinite = math.isfinite

    def check_number(value: float, path: str) -> Iterator[tuple[str, str]]:
        if not number_passes(value):
            yield path, f"expected {expected}, got {value}"

    def number_passes(value: float) -> bool:
        # NaN fails both comparisons; infinity passes only unbounded ones, hence isfinite.
        return low <= value <= high and (whole or isfinite(value))

    return _Rule(check_number, number_passes, (low, high, whole))


def _sequence(items: Items, item: _Rule | None) -> _Rule:
    max_items = items.max_items
    check_item = None if item is None else item.check
    item_passes = None if item is None else item.passes

    def check_sequence(value: tuple[Any, ...], path: str) -> Iterator[tuple[str, str]]:
        if len(value) > max_items:
            yield path, f"expected at most {max_items} items, got {len(value)}"
            return
        if check_item is not None:
            for i, each in enumerate(value):
                yield from check_item(each, f"{path}[{i}]")

    def sequence_passes(value: tuple[Any, ...]) -> bool:
        if len(value) > max_items:
            return False
        if item_passes is not None:
            for each in value:
                if not item_passes(each):
                    return False
        return True

    return _Rule(check_sequence, sequence_passes)


def _mapping(items: Items, key: Text, item: _Rule | None) -> _Rule:
    max_items = items.max_items
    check_item = None if item is None else item.check
    item_passes = None if item is None else item.passes
    key_passes = _text(key).passes

    def check_mapping(value: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
        if len(value) > max_items:
            yield path, f"expected at most {max_items} entries, got {len(value)}"
            return
        for k, each in value.items():
            shown = f"{path}[{k[:40]!r}]"
            problem = text_problem(k, key)
            if problem is not None:
                yield shown, f"key {problem}"
            elif check_item is not None:
                yield from check_item(each, shown)

    def mapping_passes(value: dict[str, Any]) -> bool:
        if len(value) > max_items:
            return False
        for k, each in value.items():
            if not key_passes(k) or (item_passes is not None and not item_passes(each)):
                return False
        return True

    return _Rule(check_mapping, mapping_passes)


def _check_time(value: datetime, path: str) -> Iterator[tuple[str, str]]:
    if value.tzinfo is None:
        yield path, "expected a time with an offset"
    elif value < EARLIEST:
        yield path, f"expected a time from 1970 to 9999, got {value.isoformat()}"


def _time_passes(value: datetime) -> bool:
    return value.tzinfo is not None and value >= EARLIEST


def json_schema(name: str, schema: dict[str, object]) -> dict[str, object]:
    """A request field's JSON schema with its limits added, for the OpenAPI document."""
    limit = LIMITS.get(name)
    kind = schema.get("type")
    if isinstance(limit, Text) and kind == "string":
        return {**schema, **_text_schema(limit)}
    if isinstance(limit, Number) and kind in ("integer", "number"):
        return {**schema, **_number_schema(limit)}
    if isinstance(limit, Items) and kind == "array":
        items = schema.get("items")
        if isinstance(items, dict):
            items = {**items, **_item_schema(limit.item, items)}
        return {**schema, "maxItems": limit.max_items, "items": items}
    if isinstance(limit, Items) and kind == "object" and limit.key is not None:
        values = schema.get("additionalProperties")
        if isinstance(values, dict):
            values = {**values, **_item_schema(limit.item, values)}
        return {
            **schema,
            "maxProperties": limit.max_items,
            "propertyNames": _text_schema(limit.key),
            "additionalProperties": values,
        }
    return schema


def _text_schema(limit: Text) -> dict[str, object]:
    controls = _TEXT_CONTROLS if limit.lines else _NAME_CONTROLS
    return {"maxLength": limit.max_length, "pattern": f"^[^{controls}]*$"}


def _number_schema(limit: Number) -> dict[str, object]:
    schema: dict[str, object] = {}
    if math.isfinite(limit.low):
        schema["minimum"] = limit.low
    if math.isfinite(limit.high):
        schema["maximum"] = limit.high
    return schema


def _item_schema(item: Text | Number | None, schema: dict[str, object]) -> dict[str, object]:
    if isinstance(item, Text) and schema.get("type") == "string":
        return _text_schema(item)
    if isinstance(item, Number) and schema.get("type") in ("integer", "number"):
        return _number_schema(item)
    return {}
