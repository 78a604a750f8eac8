"""Malformed and hostile bodies thrown at every method of a real control-plane process, with
every kind of credential.

Whatever arrives, the answer is never a 5xx and the process stays up, an error is always a Connect
error body, and a call that fails leaves the store exactly as it was. After the barrage the control
plane restarts on the same store, loses nothing that was committed, and answers every method.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from subprocess import Popen

import httpx
import pytest
from attrs import define
from hostile import VALID, bodies
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.control_plane_process import control_plane_process
from support.serving import ADMIN_TOKEN, JOIN_TOKEN
from support.store_snapshot import snapshot

from navarch.api.codec import HTTP_STATUS
from navarch.api.methods import METHODS
from navarch.api.wire import SERVICE_PATH

pytestmark = pytest.mark.slow

# Heartbeat times and metrics reach the store a second after a valid heartbeat, by design.
SOFT_STATE = ("last_heartbeat_at", "metrics")
ENV = {"NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN, "NAVARCH_JOIN_TOKEN": JOIN_TOKEN}


@define
class Target:
    process: Popen[str]
    client: httpx.Client
    store: Path
    data: Path
    # Credential kind -> the Authorization header value ("" for none).
    credentials: dict[str, str]


def _args(data: Path) -> tuple[str, ...]:
    return ("--listen", "127.0.0.1:0", "--data-dir", str(data))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    data = tmp_path_factory.mktemp("fuzz")
    with (
        control_plane_process(*_args(data), env=ENV) as (process, url, store),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        joined = client.post(
            SERVICE_PATH + "RegisterNode",
            json={"nodeId": "n1"},
            headers={"Authorization": f"Bearer {JOIN_TOKEN}"},
        )
        assert joined.status_code == 200
        credentials = {
            "admin": f"Bearer {ADMIN_TOKEN}",
            "join": f"Bearer {JOIN_TOKEN}",
            "node": f"Bearer {joined.json()['nodeToken']}",
            "none": "",
        }
        yield Target(process, client, Path(store), data, credentials)


def _post(client: httpx.Client, method: str, body: bytes, authorization: str) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    return client.post(SERVICE_PATH + method, content=body, headers=headers)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_no_body_gets_a_5xx_or_changes_the_store_when_refused(
    target: Target, data: st.DataObject
) -> None:
    method = data.draw(st.sampled_from(sorted(METHODS)), label="method")
    credential = data.draw(st.sampled_from(sorted(target.credentials)), label="credential")
    body = data.draw(bodies(method), label="body")
    before = snapshot(target.store, ignore=SOFT_STATE)
    response = _post(target.client, method, body, target.credentials[credential])
    assert target.process.poll() is None, "the control plane died"
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        json.loads(response.content)  # the mutation happened to be valid; the answer is JSON
        return
    error = response.json()
    assert set(error) == {"code", "message"}
    assert error["code"] in HTTP_STATUS
    assert response.status_code == HTTP_STATUS[error["code"]]
    assert error["message"]
    assert snapshot(target.store, ignore=SOFT_STATE) == before


def test_after_the_barrage_a_restart_loses_nothing_and_every_method_answers(
    target: Target,
) -> None:
    admin = target.credentials["admin"]
    listed = _post(target.client, "ListNodes", b"{}", admin)
    assert listed.status_code == 200
    target.process.terminate()
    target.process.communicate(timeout=30)
    committed = snapshot(target.store)
    with (
        control_plane_process(*_args(target.data), env=ENV) as (_, url, store),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        assert snapshot(Path(store), ignore=SOFT_STATE) == snapshot(target.store, ignore=SOFT_STATE)
        assert {k: v for k, v in committed.items() if k != "quarantine"} == {
            k: v for k, v in snapshot(Path(store)).items() if k != "quarantine"
        }
        assert committed["quarantine"] == []
        again = _post(client, "ListNodes", b"{}", admin)
        assert again.status_code == 200
        ids = [n["nodeId"] for n in listed.json()["nodes"]]
        assert [n["nodeId"] for n in again.json()["nodes"]] == ids
        for method in sorted(METHODS):
            response = _post(client, method, json.dumps(VALID[method]).encode(), admin)
            assert response.status_code < 500, (method, response.text)
