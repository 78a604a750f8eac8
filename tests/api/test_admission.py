"""Admission control over real loopback HTTP: bounds in flight, long polls, registrations and the
event loop's lag, each refused at once with `unavailable` and a Retry-After."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing
from support.service import ACTIVE, UNHEALTHY, status
from support.serving import ADMIN_TOKEN, JOIN_TOKEN, SERVER, post
from support.store_snapshot import snapshot

from navarch.api import methods
from navarch.api.admission import MAX_RETRY_AFTER, WINDOW, Admission
from navarch.api.app import ControlPlaneApp
from navarch.api.load import LoadMeter
from navarch.api.server import bind, http_config, serve_app
from navarch.config import ServerConfig
from navarch.controlplane import ControlPlane
from navarch.errors import ConfigValueError
from navarch.store import SQLiteStore

TOKENS = {"admin_token": ADMIN_TOKEN, "join_token": JOIN_TOKEN}


@asynccontextmanager
async def _serving(
    path: Path, server: ServerConfig
) -> AsyncIterator[tuple[httpx.AsyncClient, ControlPlane, Admission]]:
    """A control plane served with admission control on 127.0.0.1, as `navarch serve` has it."""
    async with (
        SQLiteStore.open(path, threaded=False) as store,
        ControlPlane.open(store, server, **TOKENS) as service,
        trio.open_nursery() as nursery,
    ):
        admission = Admission.from_config(server)
        app = ControlPlaneApp(service, max_body_bytes=server.max_body_bytes, admission=admission)
        http = http_config(server, "127.0.0.1:0")
        sockets = bind(http, "127.0.0.1:0")
        stop = trio.Event()
        try:
            binds = await nursery.start(
                partial(serve_app, app, server, http, sockets, shutdown_trigger=stop.wait)
            )
            async with httpx.AsyncClient(base_url=binds[0], timeout=30) as client:
                yield client, service, admission
        finally:
            # As `navarch serve` stops: the clock stands still, so long polls would never end.
            service.stop_long_polls()
            stop.set()
            for sock in sockets:
                sock.close()


def _hold(monkeypatch: pytest.MonkeyPatch, name: str, release: trio.Event) -> Callable[[], int]:
    """Makes `name` wait for `release` before it runs; gives the count of calls waiting."""
    method = methods.METHODS[name]
    waiting = 0

    async def held(cp: ControlPlane, request: Any, caller: Any) -> Any:
        nonlocal waiting
        waiting += 1
        await release.wait()
        return await method.handler(cp, request, caller)

    monkeypatch.setitem(methods.METHODS, name, attrs.evolve(method, handler=held))
    return lambda: waiting


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await trio.sleep(0)


def _refusal(reply: httpx.Response) -> tuple[int, str, str]:
    assert reply.json()["code"] == "unavailable"
    return reply.status_code, reply.headers["retry-after"], reply.json()["message"]


async def _joined(client: httpx.AsyncClient, node_id: str) -> str:
    reply = await post(client, "RegisterNode", {"nodeId": node_id}, token=JOIN_TOKEN)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["nodeToken"])


async def test_a_call_past_the_bound_is_refused_at_once_and_changes_nothing(
    tmp_path: Path, mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "navarch.db"
    release = trio.Event()
    waiting = _hold(monkeypatch, "ListNodes", release)
    server = attrs.evolve(SERVER, max_in_flight=2)
    async with _serving(path, server) as (client, service, _):
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(partial(post, client, "ListNodes", {}, token=ADMIN_TOKEN))
            await _until(lambda: waiting() == 2)
            await _refused_at_the_bound(client, service, path)
            release.set()
        await _joined(client, "n1")
        assert [n.node_id for n in service.all_nodes()] == ["n1"]


async def _refused_at_the_bound(
    client: httpx.AsyncClient, service: ControlPlane, path: Path
) -> None:
    before = snapshot(path)

    refused = await post(client, "RegisterNode", {"nodeId": "n1"}, token=JOIN_TOKEN)
    assert _refusal(refused) == (
        503,
        "1",
        "the control plane is overloaded: 2 calls are in flight, the limit "
        "(server.max_in_flight); retry in 1 s",
    )
    assert snapshot(path) == before
    assert list(service.all_nodes()) == []
    # Refused before the body is read: even a body that would not decode gets the same answer.
    garbage = await post(client, "SendHeartbeat", b"{not json", token=ADMIN_TOKEN)
    assert garbage.status_code == 503
    for page in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(page)).status_code == 200, page
    shown = (await client.get("/metrics")).text
    assert 'navarch_api_refused_total{method="RegisterNode"} 1.0' in shown
    assert 'navarch_api_refused_total{method="SendHeartbeat"} 1.0' in shown
    assert 'navarch_api_in_flight{kind="calls"} 2.0' in shown


async def test_long_polls_have_a_bound_of_their_own(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    server = attrs.evolve(SERVER, max_in_flight=1, max_long_polls=1)
    async with _serving(tmp_path / "navarch.db", server) as (client, service, admission):
        token = await _joined(client, "n1")
        poll = {"nodeId": "n1", "wait": "20s"}
        monitor = service.book.monitor
        monitor.seen("n2")
        mock_clock.jump(monitor.timeout - 1)
        async with trio.open_nursery() as nursery:
            # The clock stands still, so this poll waits until it is cancelled.
            nursery.start_soon(partial(post, client, "GetNodeCommands", poll, token=token))
            await _until(lambda: admission.in_flight["long_polls"] == 1)
            code, _, message = _refusal(await post(client, "GetNodeCommands", poll, token=token))
            assert (code, message) == (
                503,
                "the control plane is overloaded: 1 long polls are open, the limit "
                "(server.max_long_polls); retry in 1 s",
            )
            # Heartbeats still get through: a refused long poll holds no loss off.
            mock_clock.jump(2)
            assert "n2" in monitor.take_silent()
            # The open long poll takes no place from the other calls.
            beat = await post(client, "SendHeartbeat", {"nodeId": "n1"}, token=token)
            assert beat.status_code == 200, beat.text
            nursery.cancel_scope.cancel()


async def test_registrations_are_paced_within_the_calls_in_flight(
    tmp_path: Path, mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "navarch.db"
    release = trio.Event()
    waiting = _hold(monkeypatch, "RegisterNode", release)
    server = attrs.evolve(SERVER, max_in_flight=10, max_registrations=2)
    async with _serving(path, server) as (client, service, admission):
        async with trio.open_nursery() as nursery:
            for node_id in ("n1", "n2"):
                nursery.start_soon(_joined, client, node_id)
            await _until(lambda: waiting() == 2)
            assert admission.in_flight == {"calls": 2, "long_polls": 0, "registrations": 2}
            status, retry_after, message = _refusal(
                await post(client, "RegisterNode", {"nodeId": "n3"}, token=JOIN_TOKEN)
            )
            assert (status, retry_after) == (503, "1")
            assert "2 registrations are in flight" in message
            assert (await post(client, "ListNodes", {}, token=ADMIN_TOKEN)).status_code == 200
            release.set()
        assert sorted(n.node_id for n in service.all_nodes()) == ["n1", "n2"]
        assert admission.in_flight == {"calls": 0, "long_polls": 0, "registrations": 0}


async def test_a_call_that_waited_too_long_to_run_is_refused_before_parsing_but_no_page_is(
    tmp_path: Path, mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "navarch.db"
    async with _serving(path, SERVER) as (client, service, admission):
        token = await _joined(client, "n1")
        await _joined(client, "silent")
        mock_clock.jump(2.0)
        before = snapshot(path)
        # The scheduler pass that runs each call began this long ago.
        waited = 0.0
        monkeypatch.setattr(admission.meter, "waited", lambda: waited)

        async def beat() -> httpx.Response:
            return await post(client, "SendHeartbeat", {"nodeId": "n1"}, token=token)

        waited = 0.25
        assert (await beat()).status_code == 200
        # Past the limit, the share refused grows with the wait: all at twice the limit. The
        # server refuses before parsing: a body that would not decode gets the same answer.
        waited = 0.5
        code, retry_after, message = _refusal(await beat())
        assert (code, retry_after, message) == (
            503,
            "1",
            "the control plane is overloaded: calls wait over 0.25s to run "
            "(server.max_queue_delay); retry in 1 s",
        )
        garbage = await post(client, "SendHeartbeat", b"{not json", token=token)
        assert garbage.status_code == 503
        waited = 0.375
        replies = [(await beat()).status_code for _ in range(4)]
        assert replies == [200, 503, 200, 503]
        for page in ("/healthz", "/metrics"):
            assert (await client.get(page)).status_code == 200, page
        shown = (await client.get("/metrics")).text
        assert 'navarch_api_refused_total{method="SendHeartbeat"} 4.0' in shown
        waited = 0.0
        assert (await beat()).status_code == 200

        # The heartbeat timeout is 30 s. The refusals at 2 s hold the silent node's loss until
        # 32 s, though it was last heard from at 0 s.
        mock_clock.jump(31.5 - trio.current_time())
        await trio.testing.wait_all_tasks_blocked()
        assert await status(service, "silent") is ACTIVE
        mock_clock.jump(3.1)
        await trio.testing.wait_all_tasks_blocked()
        assert await status(service, "silent") is UNHEALTHY
        assert snapshot(path) != before  # the admitted heartbeats were kept


async def test_calls_in_a_scheduler_pass_that_runs_long_are_refused_over_real_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real time: heartbeats that each hold the event loop for 20 ms arrive together; the ones
    whose turn comes more than twice `max_queue_delay` after their pass began are refused at
    once, and every answer is either the heartbeat's or the refusal."""
    method = methods.METHODS["SendHeartbeat"]

    async def slow(cp: ControlPlane, request: Any, caller: Any) -> Any:
        time.sleep(0.02)  # holds the event loop, as a busy control plane does
        return await method.handler(cp, request, caller)

    server = attrs.evolve(SERVER, max_queue_delay=timedelta(milliseconds=50))
    async with _serving(tmp_path / "navarch.db", server) as (client, _, admission):
        tokens = [await _joined(client, f"n{i}") for i in range(40)]
        monkeypatch.setitem(methods.METHODS, "SendHeartbeat", attrs.evolve(method, handler=slow))
        codes: list[int] = []

        async def beat(i: int, go: trio.Event) -> None:
            async with httpx.AsyncClient(base_url=str(client.base_url), timeout=30) as own:
                await own.get("/healthz")  # connected before the burst
                await go.wait()
                reply = await post(own, "SendHeartbeat", {"nodeId": f"n{i}"}, token=tokens[i])
                codes.append(reply.status_code)
                if reply.status_code == 503:
                    assert int(reply.headers["retry-after"]) >= 1

        go = trio.Event()
        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(beat, i, go)
            await trio.sleep(0.5)
            go.set()
        assert set(codes) == {200, 503}, codes
        assert admission.refused["SendHeartbeat"] == codes.count(503)


async def test_retry_after_doubles_while_calls_are_refused_and_halves_after(
    mock_clock: trio.testing.MockClock,
) -> None:
    admission = Admission(max_in_flight=1)
    assert admission.refuse("SendHeartbeat") is None

    def retry_after() -> int:
        refusal = admission.refuse("SendHeartbeat")
        assert refusal is not None
        headers = dict(refusal.start["headers"])
        return int(headers[b"retry-after"])

    # It doubles after each window with refusals, so that a long overload is turned away by
    # few refusals that each keep a client away for long; it is capped.
    seen = []
    for _ in range(8):
        seen += [retry_after(), retry_after()]
        mock_clock.jump(WINDOW)
    assert seen == [1, 1, 2, 2, 4, 4, 8, 8] + [MAX_RETRY_AFTER] * 8
    # It halves for each two seconds without a refusal...
    mock_clock.jump(4.0)
    assert retry_after() == MAX_RETRY_AFTER // 4
    # ...down to 1.
    mock_clock.jump(60.0)
    assert retry_after() == 1
    assert admission.refused == {"SendHeartbeat": 18}


async def test_a_request_that_waited_too_long_to_reach_the_app_is_refused(
    mock_clock: trio.testing.MockClock,
) -> None:
    admission = Admission(max_queue_delay=0.25)
    received = trio.current_time()
    assert admission.refuse("SendHeartbeat", {"navarch.received": received}) is None
    mock_clock.jump(0.5)
    late = [admission.refuse("SendHeartbeat", {"navarch.received": received}) for _ in range(2)]
    assert [reply is None for reply in late] == [False, False]
    # A call the server's early refusal let through is not refused for its wait again.
    shed = {"navarch.received": received, "navarch.shed": True}
    assert admission.refuse("SendHeartbeat", shed) is None
    assert admission.refuse("SendHeartbeat", {"navarch.received": trio.current_time()}) is None
    assert admission.in_flight["calls"] == 3


async def test_the_meter_measures_how_long_each_task_of_a_pass_waited() -> None:
    """Real time: 10 tasks woken together each hold the loop 20 ms; the last to run waited for
    the other nine."""
    meter = LoadMeter()
    assert meter.waited() == 0.0  # not watching
    waits: list[float] = []
    go = trio.Event()

    async def task() -> None:
        await go.wait()
        waits.append(meter.waited())
        time.sleep(0.02)  # holds the event loop

    async with trio.open_nursery() as nursery:
        nursery.start_soon(meter.watch)
        for _ in range(10):
            nursery.start_soon(task)
        await trio.sleep(0.1)
        go.set()
        await trio.sleep(0.3)
        nursery.cancel_scope.cancel()
    assert min(waits) < 0.02
    assert max(waits) >= 0.18
    assert meter.waited() == 0.0


def test_the_server_table_checks_the_admission_keys() -> None:
    for key, value, problem in (
        ("max_in_flight", 0, "max_in_flight: expected at least 1, got 0"),
        ("max_long_polls", 0, "max_long_polls: expected at least 1, got 0"),
        ("max_registrations", -1, "max_registrations: expected at least 1, got -1"),
    ):
        with pytest.raises(ConfigValueError, match=problem):
            ServerConfig(**{key: value})
