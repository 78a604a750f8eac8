"""The JSON codec of the wire API, and the Connect error that every bad call turns into.

Requests are checked strictly at this boundary, so the service can trust what it gets: every field
has the JSON type its model declares (no `"5"` for a number, no `5` for a string), enums are their
full names, timestamps are RFC 3339 with an offset, and a field the model does not have is an
error that names it and suggests the closest known name (proto3 JSON parsers would ignore it, and
accept snake_case names too; navarch's clients are its own, and a typo should not pass silently).
Output uses lowerCamelCase, omits fields that hold their default, and writes timestamps in UTC with
a `Z`.

A well-formed message takes a fast path (`navarch.api.fast_structure`); anything else goes
through cattrs, which finds and words each problem, so both give the same objects and errors.

A client that must keep working against a newer control plane decodes responses with
`ignore_unknown_fields=True`, so fields added later do not break it.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.dispatch import StructureHook, UnstructureHook
from cattrs.errors import (
    AttributeValidationNote,
    BaseValidationError,
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from navarch.api.fast_structure import FastStructure
from navarch.clock import format_timestamp
from navarch.errors import NavarchError

T = TypeVar("T")
A = TypeVar("A", bound=attrs.AttrsInstance)

# Connect error codes and the HTTP status each one travels with (connect-go's table).
HTTP_STATUS: dict[str, int] = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}

# What a client assumes when an error body is unusable (the Connect protocol's fallback table).
_CODE_FOR_STATUS: dict[int, str] = {
    400: "internal",
    401: "unauthenticated",
    403: "permission_denied",
    404: "unimplemented",
    429: "unavailable",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}


class ApiError(NavarchError):
    """A failed call, as the Connect protocol carries it: a code and a message for people."""

    def __init__(self, code: str, message: str) -> None:
        if code not in HTTP_STATUS:
            raise ValueError(f"unknown Connect error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_json(self) -> bytes:
        return json.dumps({"code": self.code, "message": self.message}).encode()

    @classmethod
    def from_json(cls, data: bytes, http_status: int) -> ApiError:
        """Reads an error body; falls back to the HTTP status when the body is not one."""
        try:
            body = json.loads(data)
            code, message = body["code"], body.get("message", "")
            if code in HTTP_STATUS and isinstance(message, str):
                return cls(code, message)
        except (ValueError, TypeError, KeyError):
            pass
        code = _CODE_FOR_STATUS.get(http_status, "unknown")
        text = data[:200].decode("utf-8", "replace").strip()
        return cls(code, f"HTTP {http_status}" + (f": {text}" if text else ""))

    def __repr__(self) -> str:
        return f"ApiError({self.code!r}, {self.message!r})"


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class _FieldError(ValueError):
    """A value that does not fit its field; the message says what was expected and what came."""


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        shown = json.dumps(value)
        return shown if len(shown) <= 40 else shown[:37] + '..."'
    return json.dumps(value)


def _structure_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise _FieldError(f"expected a string, got {_show(value)}")
    return value


def _structure_bool(value: object, _: type) -> bool:
    if not isinstance(value, bool):
        raise _FieldError(f"expected true or false, got {_show(value)}")
    return value


def _structure_int(value: object, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FieldError(f"expected an integer, got {_show(value)}")
    if not -(2**63) <= value < 2**63:
        raise _FieldError(f"expected a 64-bit integer, got {value}")
    return value


def _structure_float(value: object, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _FieldError(f"expected a number, got {_show(value)}")
    try:
        return float(value)
    except OverflowError:
        # An integer literal past a double's range: JSON allows it, no float holds it.
        raise _FieldError(
            f"expected a number, got an integer of {len(str(value))} digits"
        ) from None


def _structure_datetime(value: object, _: type) -> datetime:
    if not isinstance(value, str):
        raise _FieldError(f"expected an RFC 3339 timestamp string, got {_show(value)}")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None or "T" not in value.upper():
            raise ValueError(value)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _FieldError(
            f"expected an RFC 3339 timestamp such as 2026-01-02T15:04:05Z, got {_show(value)}"
        ) from None


def _is_tuple(t: object) -> bool:
    return typing.get_origin(t) is tuple


def _is_dict(t: object) -> bool:
    return typing.get_origin(t) is dict


def _is_enum(t: object) -> bool:
    return isinstance(t, type) and issubclass(t, enum.Enum)


def _is_optional(t: object) -> bool:
    union = typing.get_origin(t) in (typing.Union, types.UnionType)
    return union and type(None) in typing.get_args(t)


def _make_converter(*, ignore_unknown_fields: bool) -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_unstructure_hook(datetime, format_timestamp)

    def enum_hook(cls: type[enum.Enum]) -> StructureHook:
        members = {m.value: m for m in cls}

        def structure(value: object, _: type) -> enum.Enum:
            member = members.get(value) if isinstance(value, str) else None
            if member is None:
                raise _FieldError(f"expected one of {', '.join(members)}, got {_show(value)}")
            return member

        return structure

    # These factories get a type as a model spells it (`int | None`, `tuple[str, ...]`), for which
    # there is no static type but Any.
    def optional_hook(t: Any) -> StructureHook:
        (inner,) = [a for a in t.__args__ if a is not type(None)]
        inner_hook = conv.get_structure_hook(inner)

        def structure(value: object, _: type) -> object:
            return None if value is None else inner_hook(value, inner)

        return structure

    def tuple_hook(t: Any) -> StructureHook:
        elem = t.__args__[0]
        elem_hook = conv.get_structure_hook(elem)

        def structure(value: object, _: type) -> tuple[object, ...]:
            if not isinstance(value, list):
                raise _FieldError(f"expected an array, got {_show(value)}")
            out, errors = [], []
            for i, item in enumerate(value):
                try:
                    out.append(elem_hook(item, elem))
                except Exception as exc:
                    exc.add_note(IterableValidationNote(f"index {i}", i, elem))
                    errors.append(exc)
            if errors:
                raise IterableValidationError("invalid array", errors, t)
            return tuple(out)

        return structure

    def dict_hook(t: Any) -> StructureHook:
        _, value_type = t.__args__
        value_hook = conv.get_structure_hook(value_type)

        def structure(value: object, _: type) -> dict[str, object]:
            if not isinstance(value, dict):
                raise _FieldError(f"expected an object, got {_show(value)}")
            out, errors = {}, []
            for key, item in value.items():
                try:
                    out[key] = value_hook(item, value_type)
                except Exception as exc:
                    exc.add_note(IterableValidationNote(f"key {key!r}", key, value_type))
                    errors.append(exc)
            if errors:
                raise IterableValidationError("invalid map", errors, t)
            return out

        return structure

    def attrs_structure_hook(cls: type[A]) -> StructureHook:
        fields = attrs.fields(cls)
        renames = {a.name: override(rename=camel(a.name)) for a in fields}
        generated = make_dict_structure_fn(
            cls,
            conv,
            _cattrs_forbid_extra_keys=False,
            _cattrs_detailed_validation=True,
            # The keys are field names, but mypy also matches them to the _cattrs_ flags.
            **renames,  # type: ignore[arg-type]
        )
        known = frozenset(camel(a.name) for a in fields)

        def structure(value: object, _: type) -> A:
            if not isinstance(value, dict):
                raise _FieldError(f"expected an object, got {_show(value)}")
            if not ignore_unknown_fields and not known.issuperset(value):
                _reject_unknown(value, known)
            return generated(value, cls)

        return structure

    def attrs_unstructure_hook(cls: type) -> UnstructureHook:
        renames = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}
        return make_dict_unstructure_fn(
            cls,
            conv,
            _cattrs_omit_if_default=True,
            # The keys are field names, but mypy also matches them to the _cattrs_ flags.
            **renames,  # type: ignore[arg-type]
        )

    conv.register_structure_hook_factory(_is_enum, enum_hook)
    conv.register_structure_hook_factory(_is_optional, optional_hook)
    conv.register_structure_hook_factory(_is_tuple, tuple_hook)
    conv.register_structure_hook_factory(_is_dict, dict_hook)
    conv.register_structure_hook_factory(attrs.has, attrs_structure_hook)
    conv.register_unstructure_hook_factory(attrs.has, attrs_unstructure_hook)
    return conv


def _reject_unknown(value: dict[str, object], known: frozenset[str]) -> None:
    key = next(k for k in value if k not in known)
    names = sorted(known)
    hint = [k for k in names if k.lower() == key.lower().replace("_", "")]
    if not hint:
        import difflib  # only for a rejected request: a daemon at rest does without it

        hint = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise _FieldError(f"unknown field {key!r}{suggestion}")


_strict = _make_converter(ignore_unknown_fields=False)
_lenient = _make_converter(ignore_unknown_fields=True)


_strict_fast = FastStructure(_strict, camel, ignore_unknown_fields=False)
_lenient_fast = FastStructure(_lenient, camel, ignore_unknown_fields=True)


def _problems(exc: BaseException, path: str) -> list[str]:
    """Flattens a cattrs error tree into 'path: problem' lines with wire (camelCase) paths."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        lines: list[str] = []
        for sub in exc.exceptions:
            note = next(
                (
                    n
                    for n in getattr(sub, "__notes__", ())
                    if isinstance(n, AttributeValidationNote | IterableValidationNote)
                ),
                None,
            )
            if isinstance(note, AttributeValidationNote):
                sub_path = f"{path}.{camel(note.name)}" if path else camel(note.name)
            elif isinstance(note, IterableValidationNote):
                key = note.index
                sub_path = f"{path}[{key}]" if isinstance(key, int) else f"{path}[{key!r}]"
            else:
                sub_path = path
            lines.extend(_problems(sub, sub_path))
        return lines
    if isinstance(exc, KeyError):
        problem = "required field is missing"
    elif isinstance(exc, _FieldError):
        problem = str(exc)
    elif isinstance(exc, ValueError | TypeError):
        # Validators on the models raise these with a message meant for people.
        problem = str(exc) or "invalid value"
    else:
        raise exc
    return [f"{path}: {problem}" if path else problem]


def decode(cls: type[T], data: bytes, *, ignore_unknown_fields: bool = False) -> T:
    """Parses one JSON message into `cls`; any problem is an `invalid_argument` ApiError."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError("invalid_argument", f"body: not valid UTF-8 at byte {exc.start}") from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise ApiError(
            "invalid_argument",
            f"body: malformed JSON at line {exc.lineno} column {exc.colno} ({exc.msg})",
        ) from None
    except _FieldError as exc:
        raise ApiError("invalid_argument", f"body: {exc}") from None
    except ValueError:
        # Python refuses to convert integer literals of more than 4,300 digits.
        raise ApiError("invalid_argument", "body: a number has too many digits") from None
    except RecursionError:
        raise ApiError("invalid_argument", "body: JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ApiError("invalid_argument", f"body: expected a JSON object, got {_show(value)}")
    if ignore_unknown_fields:
        try:
            return _lenient_fast.structure(value, cls)
        except (BaseValidationError, _FieldError, KeyError, ValueError, TypeError) as exc:
            raise ApiError("invalid_argument", "; ".join(_problems(exc, ""))) from None
    return structure(value, cls)


def _reject_constant(name: str) -> float:
    raise _FieldError(f"{name} is not valid JSON")


# What `json.loads(text, parse_constant=...)` builds on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def unstructure(obj: object) -> Any:
    """The JSON-ready value of a wire model (dicts, lists, strings, numbers)."""
    return _strict.unstructure(obj)


def encode(obj: object) -> bytes:
    """The JSON of a wire model; a value JSON cannot carry (infinity, a lone surrogate) raises."""
    return _ENCODER.encode(_strict.unstructure(obj)).encode()


# What `json.dumps(value, ...)` with these options builds on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def structure(value: object, cls: type[T]) -> T:
    """Builds `cls` from an already parsed JSON value, with the same checks as `decode`."""
    try:
        return _strict_fast.structure(value, cls)
    except (BaseValidationError, _FieldError, KeyError, ValueError, TypeError) as exc:
        raise ApiError("invalid_argument", "; ".join(_problems(exc, ""))) from None
