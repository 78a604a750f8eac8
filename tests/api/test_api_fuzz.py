"""Malformed bodies thrown at every method of a real control-plane process.

Whatever arrives, the answer is never a 500, an error is always a Connect error body, and a call
that fails leaves the store exactly as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.control_plane_process import control_plane_process
from support.serving import ADMIN_TOKEN
from support.store_snapshot import snapshot

from navarch.api.codec import HTTP_STATUS
from navarch.api.methods import METHODS
from navarch.api.wire import SERVICE_PATH

pytestmark = pytest.mark.slow

# A valid body per method served, for a node "n1" that exists; mutations reach deep fields.
# Methods that this control plane does not serve yet get mutations of an empty object.
VALID: dict[str, dict[str, Any]] = {
    "RegisterNode": {"nodeId": "n1", "gpus": [{"index": 0, "uuid": "G0"}], "labels": {"a": "b"}},
    "SendHeartbeat": {"nodeId": "n1", "metrics": {"cpuPercent": 1.5, "gpus": [{"index": 0}]}},
    "GetNodeCommands": {"nodeId": "n1", "wait": "0s"},
    "AckCommand": {"nodeId": "n1", "commandId": "c1", "result": "COMMAND_RESULT_SUCCEEDED"},
    "ReportHealth": {
        "nodeId": "n1",
        "events": [
            {"type": "HEALTH_EVENT_TYPE_XID", "time": "2026-01-01T00:00:00Z", "xid": 79},
        ],
    },
    "ReportPreemption": {
        "nodeId": "n1",
        "kind": "spot",
        "at": "2026-01-01T00:02:00Z",
        "detail": "spot instance-action terminate",
    },
    "ListNodes": {"statuses": ["NODE_STATUS_ACTIVE"], "labels": {"a": "b"}},
    "GetNode": {"nodeId": "n1"},
    "IssueCommand": {"nodeId": "n1", "type": "COMMAND_TYPE_CORDON", "parameters": {"k": "v"}},
    "GetCommand": {"commandId": "c1"},
    "ListEvents": {"nodeId": "n1", "kinds": ["node.registered"], "limit": 5},
}
assert set(VALID) <= set(METHODS)

# Heartbeat times and metrics reach the store a second after a valid heartbeat, by design.
SOFT_STATE = ("last_heartbeat_at", "metrics")

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
def mutated(draw: st.DrawFn, method: str) -> bytes:
    """A valid body with one place replaced by an arbitrary JSON value, or a key added."""
    body = VALID.get(method, {})
    path = draw(st.sampled_from(list(_paths(body))))
    if draw(st.booleans()):
        body = _replace(body, path, draw(json_values))
    else:
        target = body
        for step in path:
            target = target[step]
        if isinstance(target, dict):
            key = draw(st.text(min_size=1, max_size=10))
            body = _replace(body, path, {**target, key: draw(json_values)})
        else:
            body = _replace(body, path, draw(json_values))
    return json.dumps(body).encode()


def bodies(method: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        mutated(method),
        st.text(max_size=50).map(lambda t: ('{"nodeId": "n1", ' + t).encode("utf-8", "replace")),
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    data = tmp_path_factory.mktemp("fuzz")
    env = {"NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN, "NAVARCH_JOIN_TOKEN": ""}
    args = ("--listen", "127.0.0.1:0", "--data-dir", str(data))
    with (
        control_plane_process(*args, env=env) as (_, url, store),
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as client,
    ):
        response = client.post(SERVICE_PATH + "RegisterNode", json={"nodeId": "n1"})
        assert response.status_code == 200
        yield client, Path(store)


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_body_gets_a_500_or_changes_the_store_when_refused(
    server: tuple[httpx.Client, Path], data: st.DataObject
) -> None:
    client, store = server
    method = data.draw(st.sampled_from(sorted(METHODS)), label="method")
    body = data.draw(bodies(method), label="body")
    before = snapshot(store, ignore=SOFT_STATE)
    response = client.post(
        SERVICE_PATH + method, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code != 500, response.text
    if response.status_code == 200:
        return  # the mutation happened to be valid; the call may change state
    error = response.json()
    assert set(error) == {"code", "message"}
    assert error["code"] in HTTP_STATUS
    assert response.status_code == HTTP_STATUS[error["code"]]
    assert error["message"]
    assert snapshot(store, ignore=SOFT_STATE) == before
