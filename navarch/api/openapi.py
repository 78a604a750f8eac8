"""The OpenAPI 3.1 description of the wire API, generated from the models and the method table.

Served at `/openapi.json` for clients and API fuzzers. Schemas forbid unknown fields, as the codec
does for requests; a client that must work with later versions ignores response fields it does not
know (the codec's `ignore_unknown_fields`).
"""

from __future__ import annotations

import enum
import typing
from datetime import datetime

import attrs

from navarch import __version__
from navarch.api import limits
from navarch.api.codec import HTTP_STATUS, camel
from navarch.api.handlers import MAX_COMMANDS_PAGE
from navarch.api.methods import METHODS
from navarch.api.wire import SERVICE_PATH
from navarch.controlplane.node_pages import ORDERS

_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,253}$"
_DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
# Fields whose values the service checks beyond their JSON type.
_FIELD_RULES: dict[str, dict[str, object]] = {
    "node_id": {"pattern": _ID_PATTERN},
    "command_id": {"pattern": _ID_PATTERN},
    "wait": {"pattern": _DURATION_PATTERN},
    "limit": {"minimum": 1, "maximum": 1000},
    "order_by": {"enum": ["", *ORDERS, *(f"-{order}" for order in ORDERS)]},
}
# Rules of one request's field that differ from the field's rules elsewhere.
_REQUEST_RULES: dict[tuple[str, str], dict[str, object]] = {
    ("ListCommandsRequest", "limit"): {"maximum": MAX_COMMANDS_PAGE},
}


class _Schemas:
    def __init__(self, requests: frozenset[type] = frozenset()) -> None:
        # The models a request may hold, whose fields carry their limits (navarch.api.limits).
        self.requests = requests
        self.components: dict[str, object] = {
            "ConnectError": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": sorted(HTTP_STATUS)},
                    "message": {"type": "string"},
                },
            }
        }

    def ref(self, cls: type) -> dict[str, object]:
        name = cls.__name__
        if name not in self.components:
            self.components[name] = {}  # reserved first: models may refer to themselves
            self.components[name] = self._object(cls)
        return {"$ref": f"#/components/schemas/{name}"}

    def _object(self, cls: type) -> dict[str, object]:
        hints = typing.get_type_hints(cls)
        properties, required = {}, []
        for field in attrs.fields(cls):
            field_schema = self.of(hints[field.name])
            if cls in self.requests:
                field_schema = limits.json_schema(field.name, field_schema)
            if field.name in _FIELD_RULES and field_schema.get("type") in ("string", "integer"):
                field_schema = {**field_schema, **_FIELD_RULES[field.name]}
            if (cls.__name__, field.name) in _REQUEST_RULES:
                field_schema = {**field_schema, **_REQUEST_RULES[cls.__name__, field.name]}
            properties[camel(field.name)] = field_schema
            if field.default is attrs.NOTHING:
                required.append(camel(field.name))
        schema: dict[str, object] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):
            schema["description"] = " ".join(cls.__doc__.split())
        schema["additionalProperties"] = False
        return schema

    def of(self, hint: object) -> dict[str, object]:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if hint is str:
            return {"type": "string"}
        if hint is bool:
            return {"type": "boolean"}
        if hint is int:
            return {"type": "integer", "format": "int64"}
        if hint is float:
            return {"type": "number", "format": "double"}
        if hint is datetime:
            return {"type": "string", "format": "date-time"}
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return {"type": "string", "enum": [member.value for member in hint]}
        if origin is tuple:
            return {"type": "array", "items": self.of(args[0])}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.of(args[1])}
        if type(None) in args:
            (inner,) = [a for a in args if a is not type(None)]
            return {"anyOf": [self.of(inner), {"type": "null"}]}
        if isinstance(hint, type) and attrs.has(hint):
            return self.ref(hint)
        raise TypeError(f"no JSON schema for {hint!r}")


def _reachable(roots: typing.Iterable[type]) -> frozenset[type]:
    """The attrs classes `roots` are made of, themselves included."""
    found: set[type] = set()
    todo = list(roots)
    while todo:
        cls = todo.pop()
        if cls in found:
            continue
        found.add(cls)
        for hint in typing.get_type_hints(cls).values():
            parts = [hint, *typing.get_args(hint)]
            todo.extend(p for p in parts if isinstance(p, type) and attrs.has(p))
    return frozenset(found)


def openapi_document() -> dict[str, object]:
    """The description of every API method, and of the plain endpoints."""
    schemas = _Schemas(_reachable(m.request for m in METHODS.values()))
    error = {
        "description": "A Connect error.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ConnectError"}}},
    }
    paths: dict[str, object] = {}
    for method, entry in METHODS.items():
        request_cls, response_cls, access = entry.request, entry.response, entry.access
        who = {
            "admin": "an admin token",
            "node": "the node's own node token, or an admin token",
            "register": (
                "the join token, the machine's bootstrap token, the node's own node token, or an "
                "admin token"
            ),
            "bootstrap": "the machine's one-time bootstrap token",
        }[access]
        if entry.read_only:
            who = "an admin or viewer token"
        paths[f"{SERVICE_PATH}{method}"] = {
            "post": {
                "operationId": method,
                "summary": f"{method} (Connect unary, JSON); needs {who} when auth is on.",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schemas.ref(request_cls)}},
                },
                "responses": {
                    "200": {
                        "description": "The call succeeded.",
                        "content": {"application/json": {"schema": schemas.ref(response_cls)}},
                    },
                    "default": error,
                },
            }
        }
    text = {"text/plain": {"schema": {"type": "string"}}}
    paths["/healthz"] = {
        "get": {
            "operationId": "healthz",
            "summary": "Answers 200 while the process runs.",
            "responses": {"200": {"description": "Alive.", "content": text}},
        }
    }
    paths["/readyz"] = {
        "get": {
            "operationId": "readyz",
            "summary": "Answers 200 when the store answers, 503 otherwise.",
            "responses": {
                "200": {"description": "Ready.", "content": text},
                "503": {"description": "Not ready.", "content": text},
            },
        }
    }
    paths["/metrics"] = {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics in the text exposition format.",
            "responses": {"200": {"description": "Metrics.", "content": text}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "navarch control plane",
            "version": __version__,
            "description": "Connect unary calls with the JSON codec. Errors are Connect errors.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
