"""The codec's fast path and the limits' quick pass against the paths they shortcut.

Every request and reply body, valid or hostile, must decode to the same object (the same types:
`1.0`, not `1`) or fail with the same Connect error, word for word, as through cattrs alone; and
a decoded request must meet its limits, or fail them with the same message, as when every field is
walked with its path. Nothing any body holds may raise anything but an ApiError.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attrs import frozen
from hostile import VALID, bodies
from hostile import encode as encode_hostile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from navarch.api import codec, limits
from navarch.api import wire as w
from navarch.api.codec import ApiError
from navarch.api.methods import METHODS
from navarch.errors import InvalidArgument

TRANSCRIPT = Path(__file__).parent / "data" / "wire-0.1.0.json"
_HOT = ("SendHeartbeat", "GetNodeCommands", "AckCommand", "ReportHealth", "RegisterNode")

Outcome = tuple[str, ...]


def _decoded(cls: type, body: bytes, *, lenient: bool = False) -> Outcome:
    try:
        value = codec.decode(cls, body, ignore_unknown_fields=lenient)
    except ApiError as exc:
        return ("error", exc.code, exc.message)
    # repr tells 1 from 1.0 and a tuple from a list, which == does not.
    return ("ok", repr(value), *_limited(value, lenient))


def _limited(value: object, lenient: bool) -> Outcome:
    if lenient:
        return ()
    try:
        limits.check(value)
    except InvalidArgument as exc:
        return ("limit", str(exc))
    return ("within limits",)


def _limited_slowly(value: object, lenient: bool) -> Outcome:
    if lenient:
        return ()
    problems = [f"{path}: {problem}" for path, problem in limits.checker(type(value))(value, "")]
    if not problems:
        return ("within limits",)
    shown = "; ".join(problems[:10])
    return ("limit", shown + (f"; and {len(problems) - 10} more" if len(problems) > 10 else ""))


def _decoded_slowly(cls: type, body: bytes, *, lenient: bool = False) -> Outcome:
    """As `_decoded`, with cattrs alone and every field's limits walked."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(codec, "_strict_fast", codec._strict)
        patch.setattr(codec, "_lenient_fast", codec._lenient)
        try:
            value = codec.decode(cls, body, ignore_unknown_fields=lenient)
        except ApiError as exc:
            return ("error", exc.code, exc.message)
    return ("ok", repr(value), *_limited_slowly(value, lenient))


def _assert_same(cls: type, body: bytes, *, lenient: bool = False) -> Outcome:
    fast = _decoded(cls, body, lenient=lenient)
    assert fast == _decoded_slowly(cls, body, lenient=lenient), body[:300]
    return fast


@pytest.mark.parametrize("method", sorted(METHODS))
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_a_hostile_request_decodes_and_fails_as_through_cattrs(
    method: str, data: st.DataObject
) -> None:
    _assert_same(METHODS[method].request, data.draw(bodies(method)))


@pytest.mark.parametrize("method", _HOT)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_daemons_frequent_requests_take_many_more_hostile_bodies(
    method: str, data: st.DataObject
) -> None:
    _assert_same(METHODS[method].request, data.draw(bodies(method)))


def _recorded() -> Iterator[tuple[str, str, str]]:
    for call in json.loads(TRANSCRIPT.read_text()):
        if call.get("method") in METHODS:
            yield call["method"], call["request"], call["response"]


@pytest.mark.parametrize(("method", "request_text", "response_text"), list(_recorded()))
def test_recorded_requests_and_replies_decode_as_through_cattrs(
    method: str, request_text: str, response_text: str
) -> None:
    _assert_same(METHODS[method].request, request_text.encode())
    # A client reads replies leniently; an error reply is no reply of the method.
    if '"code"' not in response_text:
        outcome = _assert_same(METHODS[method].response, response_text.encode(), lenient=True)
        assert outcome[0] == "ok"


def _gpu(**fields: Any) -> dict[str, Any]:
    return {"index": 0, **fields}


def _heartbeat(*gpus: dict[str, Any], **metrics: Any) -> bytes:
    return json.dumps({"nodeId": "n1", "metrics": {**metrics, "gpus": list(gpus)}}).encode()


@pytest.mark.parametrize(
    "body",
    [
        encode_hostile(VALID["SendHeartbeat"]),
        _heartbeat(_gpu(utilizationPercent=97), cpuPercent=1, memoryPercent=2.5),
        _heartbeat(*[_gpu(index=i, powerWatts=600.5, eccCorrected=3) for i in range(8)]),
        b'{"nodeId": "n1"}',
        b'{"nodeId": "n1", "metrics": null}',
        b'{"nodeId": "n1", "metrics": {}}',
        _heartbeat(_gpu(utilizationPercent=True)),
        _heartbeat(_gpu(index=1.0)),
        _heartbeat(_gpu(index=-1), _gpu(index=1024), _gpu(memoryUsedBytes=-5)),
        _heartbeat(_gpu(temperatureC="hot"), cpuPercent=None),
        _heartbeat(_gpu(utilizationPercent=100.5), cpuPercent=-0.0),
        _heartbeat(*[_gpu()] * 65),
        _heartbeat(_gpu(index=2**63)),
        _heartbeat(_gpu(memoryUsedBytes=2**63 - 1)),
        _heartbeat(_gpu(utilizationPercent=10**400)),
        _heartbeat(_gpu(power_watts=1.0)),
        _heartbeat(_gpu(powerWatt=1.0)),
        _heartbeat({"utilizationPercent": 1.0}),
        b'{"nodeId": "n1", "metrics": {"cpuPercent": 1e400}}',
        b'{"nodeId": "n1", "metrics": {"cpuPercent": NaN}}',
        rb'{"nodeId": "n1\ud800"}',
        rb'{"nodeId": "n1\u0000"}',
        b'{"nodeId": "' + b"x" * 300 + b'"}',
        b'{"nodeId": 5}',
        b'{"metrics": {}}',
        b'{"nodeId": "n1", "nodeId": 3}',
        b'{"nodeId": "n1", "metrics": {"gpus": {"0": {}}}}',
        b'{"nodeId": "n1", "metrics": {"gpus": [[]]}}',
        b"[]",
        b'"n1"',
        b"{",
        b"\xff",
    ],
)
def test_heartbeats_right_and_wrong_decode_as_through_cattrs(body: bytes) -> None:
    _assert_same(w.SendHeartbeatRequest, body)


@pytest.mark.parametrize(
    ("cls", "body"),
    [
        (w.GetNodeCommandsRequest, b'{"nodeId": "n1"}'),
        (w.GetNodeCommandsRequest, b'{"nodeId": "n1", "wait": 20}'),
        (
            w.AckCommandRequest,
            b'{"nodeId": "n1", "commandId": "c", "result": "COMMAND_RESULT_FAILED"}',
        ),
        (w.AckCommandRequest, b'{"nodeId": "n1", "commandId": "c", "result": "FAILED"}'),
        (w.AckCommandRequest, b'{"nodeId": "n1", "commandId": "c", "result": 1}'),
        (w.AckCommandRequest, b'{"nodeId": "n1", "commandId": "c"}'),
        (
            w.ReportHealthRequest,
            b'{"nodeId": "n1", "events": [{"type": "HEALTH_EVENT_TYPE_XID", "time": '
            b'"2026-01-01T00:00:00+02:00", "xid": 79, "metrics": {"t": 3}, "details": {}}]}',
        ),
        (
            w.ReportHealthRequest,
            b'{"nodeId": "n1", "events": [{"type": "HEALTH_EVENT_TYPE_XID", '
            b'"time": "2026-01-01"}]}',
        ),
        (
            w.ReportHealthRequest,
            b'{"nodeId": "n1", "events": [{"type": "HEALTH_EVENT_TYPE_XID", "time": '
            b'"1969-12-31T23:59:59Z", "metrics": {"t": "3"}, "details": {"k": 3}}]}',
        ),
        (w.ListNodesRequest, b'{"statuses": ["NODE_STATUS_ACTIVE", "NODE_STATUS_GONE"]}'),
        (
            w.ReportHealthRequest,
            b'{"nodeId": "n1", "events": [{"type": "HEALTH_EVENT_TYPE_THERMAL", "time": '
            b'"2026-01-01T00:00:00Z", "metrics": {"t": 1e400, "u": -1e400, "v": 1e308}}]}',
        ),
        (w.ListNodesRequest, rb'{"labels": {"\u0001": "v"}, "pageSize": 1001}'),
    ],
)
def test_other_requests_right_and_wrong_decode_as_through_cattrs(cls: type, body: bytes) -> None:
    _assert_same(cls, body)


def test_a_number_past_a_doubles_range_is_a_bad_argument_not_a_crash() -> None:
    body = _heartbeat(_gpu(utilizationPercent=10**400))
    assert _decoded(w.SendHeartbeatRequest, body) == (
        "error",
        "invalid_argument",
        "metrics.gpus[0].utilizationPercent: expected a number, got an integer of 401 digits",
    )


def test_absent_fields_take_their_defaults_each_their_own() -> None:
    first = codec.decode(
        w.ReportHealthRequest,
        b'{"nodeId": "n1", "events": [{"type": '
        b'"HEALTH_EVENT_TYPE_XID", "time": "2026-01-01T00:00:00Z"}]}',
    )
    second = codec.decode(w.IssueCommandRequest, b'{"nodeId": "n1", "type": "COMMAND_TYPE_CORDON"}')
    assert first.events[0].metrics == {} and second.parameters == {}
    assert first.events[0].metrics is not first.events[0].details


@frozen
class _Reading:
    # No limit is named `value`: any finite number passes.
    value: float
    count: int


@pytest.mark.parametrize("number", [0.0, -1e308, math.inf, -math.inf, math.nan])
def test_a_number_without_a_range_must_be_finite(number: float) -> None:
    reading = _Reading(value=number, count=2**63 - 1)
    assert _limited(reading, False) == _limited_slowly(reading, False)
    assert (_limited(reading, False)[0] == "within limits") is math.isfinite(number)
