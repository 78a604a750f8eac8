"""Hostile request bodies for every API method, for the fuzz tests and `bench/fuzz.py`.

A body is a valid one with one place replaced by something an attacker sends: lone surrogates,
control characters, text far past any limit, numbers JSON parsers turn into infinity or refuse,
times at the ends of what a datetime holds, deeply nested or huge values, and values of the wrong
type. Python's json.dumps cannot write some of these (`1e400`, a lone surrogate it escapes fine,
but not `NaN` as a literal of our choosing), so a value may be a raw JSON token (`raw`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from navarch.api.methods import METHODS

# A valid body per method, for a node "n1" that exists; mutations reach deep fields.
VALID: dict[str, dict[str, Any]] = {
    "RegisterNode": {"nodeId": "n1", "gpus": [{"index": 0, "uuid": "G0"}], "labels": {"a": "b"}},
    "SendHeartbeat": {"nodeId": "n1", "metrics": {"cpuPercent": 1.5, "gpus": [{"index": 0}]}},
    "GetNodeCommands": {"nodeId": "n1", "wait": "0s"},
    "AckCommand": {"nodeId": "n1", "commandId": "c1", "result": "COMMAND_RESULT_SUCCEEDED"},
    "ReportHealth": {
        "nodeId": "n1",
        "events": [
            {
                "type": "HEALTH_EVENT_TYPE_THERMAL",
                "time": "2026-01-01T00:00:00Z",
                "message": "hot",
                "metrics": {"temperature": 71.5},
                "details": {"sensor": "gpu"},
            },
        ],
    },
    "GetBootstrapIdentity": {},
    "ReportBootstrap": {
        "state": "BOOTSTRAP_STATE_FAILED",
        "detail": "failed while installing navarch",
        "logTail": "pip: no matching distribution\nexit status 1",
    },
    "ReportPreemption": {
        "nodeId": "n1",
        "kind": "spot",
        "at": "2026-01-01T00:02:00Z",
        "detail": "spot instance-action terminate",
    },
    "ListNodes": {
        "statuses": ["NODE_STATUS_ACTIVE"],
        "labels": {"a": "b"},
        "query": "n",
        "orderBy": "-last_heartbeat",
        "pageSize": 10,
    },
    "ListCommands": {"nodeId": "n1", "limit": 5},
    "GetFleetSummary": {"historyAfter": "2026-01-01T00:00:00Z"},
    "GetNode": {"nodeId": "n1"},
    "IssueCommand": {"nodeId": "n1", "type": "COMMAND_TYPE_CORDON", "parameters": {"k": "v"}},
    "GetCommand": {"commandId": "c1"},
    "ListEvents": {"nodeId": "n1", "kinds": ["node.registered"], "limit": 5},
    "ListPools": {},
    "GetPool": {"name": "train"},
    "ScalePool": {"name": "train", "target": 1, "reason": "more"},
    "ReportQueueDepth": {"pool": "train", "depth": 3},
    "ListRemediations": {"pool": "train", "limit": 5},
    "PauseRemediation": {"pool": "", "reason": "maintenance"},
    "ResumeRemediation": {"pool": ""},
    "CancelRemediation": {"episodeId": "e1", "reason": "no"},
    "ResetBreaker": {"pool": "train"},
}
assert set(VALID) == set(METHODS)

_RAW = "\x00raw:"
_RAW_TOKEN = re.compile(r'"\\u0000raw:([^"]*)"')


def raw(token: str) -> str:
    """A JSON token written into the body as it is, such as `1e400`."""
    return _RAW + token


def encode(body: Any) -> bytes:
    """The body as JSON text, with raw tokens in place; lone surrogates become `\\ud800`."""
    return _RAW_TOKEN.sub(lambda m: m.group(1), json.dumps(body)).encode()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

_bad_characters = st.text(st.characters(categories=["Cs", "Cc"]), min_size=1, max_size=2)

hostile_text = st.one_of(
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),
    st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), min_size=1, max_size=5),
    st.builds(
        lambda a, b, c: a + b + c,
        st.text(max_size=5),
        st.text(st.characters(categories=["Cs", "Cc"]), min_size=1, max_size=2),
        st.text(max_size=5),
    ),
    st.sampled_from([254, 1001, 1025, 4097, 70_000]).map(lambda n: "x" * n),
    st.sampled_from(["", " ", "../../etc/passwd", "%s%n", "' OR 1=1 --", "\u202e", "😀" * 300]),
    st.text(max_size=30),
)

hostile_numbers = st.sampled_from(
    [
        "1e400",
        "-1e400",
        "-0",
        "-0.0",
        "1e-400",
        "NaN",
        "Infinity",
        "-Infinity",
        "18446744073709551616",
        "9223372036854775808",
        "-9223372036854775809",
        "9" * 5000,
        "1.7976931348623157e308",
        "-1",
        "101",
        "1024",
        "2147483648",
    ]
).map(raw)

hostile_times = st.sampled_from(
    [
        "0001-01-01T00:00:00Z",
        "0999-12-31T23:59:59Z",
        "1969-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999Z",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "2026-02-30T00:00:00Z",
        "2026-01-01T00:00:00",
        "2026-01-01",
        "99999-01-01T00:00:00Z",
    ]
)

hostile_durations = st.sampled_from(
    ["99999999999d", "9" * 400 + "s", "25h", "-1s", "1e400s", "0.0000001ms", "1d1ms", "s"]
)

deep_values = st.sampled_from([100, 10_000, 100_000]).map(
    lambda n: raw("[" * n + "]" * n)
) | st.sampled_from([1000, 50_000]).map(lambda n: raw('{"a":' * n + "1" + "}" * n))

huge_values = st.sampled_from([10_000, 300_000]).map(lambda n: [0] * n) | st.sampled_from(
    [100, 5000]
).map(lambda n: {f"k{i}": "v" for i in range(n)})

hostile_values = st.one_of(
    hostile_text,
    hostile_numbers,
    hostile_times,
    hostile_durations,
    deep_values,
    huge_values,
    json_values,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


@st.composite
def mutated(draw: st.DrawFn, method: str, values: st.SearchStrategy[Any]) -> bytes:
    """A valid body with one place replaced by one of `values`, or a key added."""
    body = VALID.get(method, {})
    path = draw(st.sampled_from(list(_paths(body))))
    target = body
    for step in path:
        target = target[step]
    if isinstance(target, dict) and draw(st.booleans()):
        key = draw(hostile_text | st.text(min_size=1, max_size=10))
        body = _replace(body, path, {**target, key: draw(values)})
    else:
        body = _replace(body, path, draw(values))
    return encode(body)


def bodies(method: str) -> st.SearchStrategy[bytes]:
    """Malformed, mistyped and hostile bodies for `method`."""
    return st.one_of(
        st.binary(max_size=200),
        json_values.map(encode),
        mutated(method, json_values),
        mutated(method, hostile_values),
        mutated(method, hostile_values),
        st.text(max_size=50).map(lambda t: ('{"nodeId": "n1", ' + t).encode("utf-8", "replace")),
    )
