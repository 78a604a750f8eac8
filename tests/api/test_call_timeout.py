"""`Connect-Timeout-Ms` bounds a call; without it, a call runs as long as it needs (a long poll its
whole wait)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from support.service import open_service

from navarch.api.app import ControlPlaneApp
from navarch.api.wire import SERVICE_PATH


async def test_a_call_past_its_timeout_answers_deadline_exceeded_and_one_without_runs_on(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        open_service(tmp_path / "db") as service,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(ControlPlaneApp(service)), base_url="http://navarch.test"
        ) as client,
    ):
        registered = await client.post(SERVICE_PATH + "RegisterNode", json={"nodeId": "n1"})
        assert registered.status_code == 200
        poll = {"nodeId": "n1", "wait": "10s"}

        started = trio.current_time()
        cut = await client.post(
            SERVICE_PATH + "GetNodeCommands", json=poll, headers={"Connect-Timeout-Ms": "250"}
        )
        assert cut.status_code == 504
        assert cut.json() == {
            "code": "deadline_exceeded",
            "message": "GetNodeCommands did not finish within the call's timeout",
        }
        assert trio.current_time() - started == pytest.approx(0.25)

        started = trio.current_time()
        whole = await client.post(SERVICE_PATH + "GetNodeCommands", json=poll)
        assert whole.status_code == 200
        assert whole.json() == {}
        assert trio.current_time() - started == pytest.approx(10)
