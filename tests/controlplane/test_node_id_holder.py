"""One node id, one daemon: a second daemon is refused while the first keeps in touch."""

from __future__ import annotations

import random

import pytest
import trio
from support.api import rpc
from support.service import DAEMON_SERVER, events, kinds, open_service
from support.serving import ADMIN_TOKEN, JOIN_TOKEN, post, serving
from support.switchable_client import SwitchableClient

from navarch.api import wire as m
from navarch.controlplane import Caller
from navarch.daemon.agent import Daemon, DaemonError
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import SimulatedGpus
from navarch.daemon.host import FixedHostStats
from navarch.daemon.state import DaemonState
from navarch.model import Event

TOKENS = {"admin_token": ADMIN_TOKEN, "join_token": JOIN_TOKEN}


class Collect:
    def __init__(self, into: list[Event]) -> None:
        self.into = into

    def notify(self, event: Event) -> None:
        self.into.append(event)


def daemon(service, node_id="gpu-1", **kwargs) -> tuple[Daemon, SwitchableClient]:
    client = SwitchableClient(service, Caller.anonymous())
    agent = Daemon(
        client,
        SimulatedGpus(2, seed=node_id),
        DaemonConfig(node_id=node_id),
        join_token=kwargs.pop("join_token", JOIN_TOKEN),
        host_stats=FixedHostStats(),
        rng=random.Random(1),
        **kwargs,
    )
    return agent, client


async def test_a_second_daemon_with_a_held_node_id_is_refused_and_the_first_keeps_it(
    tmp_path, autojump_clock
):
    async with open_service(tmp_path / "n.db", DAEMON_SERVER, **TOKENS) as service:
        notified: list[Event] = []
        service.book.notifiers.append(Collect(notified))
        first, first_client = daemon(service)
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            await trio.sleep(15)
            second, _ = daemon(service)
            with pytest.raises(DaemonError) as refused:
                await second.run()
            message = str(refused.value)
            assert "node gpu-1 is held by a daemon that was heard from" in message
            assert "--take-over" in message and "another node id" in message
            # The first daemon keeps its token: no ping-pong of registrations.
            await trio.sleep(60)
            assert first_client.calls["RegisterNode"] == 1
            assert first.status is m.NodeStatus.NODE_STATUS_ACTIVE
            first.stop()
        (event,) = [e for e in notified if e.kind == "node.registration_refused"]
        assert event.node_id == "gpu-1"
        assert event.reason in message and "heardAgo" in event.details
        assert service.book.event_counts["node.registration_refused"] == 1


async def test_take_over_revokes_the_holder_which_then_stops(tmp_path, autojump_clock):
    async with open_service(tmp_path / "n.db", DAEMON_SERVER, **TOKENS) as service:
        first, first_client = daemon(service)
        second, second_client = daemon(service, take_over=True)
        outcome: list[BaseException] = []

        async def run_first(task_status=trio.TASK_STATUS_IGNORED) -> None:
            try:
                await first.run(task_status=task_status)
            except DaemonError as exc:
                outcome.append(exc)

        async with trio.open_nursery() as nursery:
            await nursery.start(run_first)
            await trio.sleep(15)
            await nursery.start(second.run)
            await trio.sleep(60)
            assert len(outcome) == 1 and "held by a daemon" in str(outcome[0])
            # The new holder keeps the node; the old one stopped instead of registering again.
            assert second_client.calls["RegisterNode"] == 1
            # Its first registration, then once with its revoked token and once with the join token.
            assert first_client.calls["RegisterNode"] == 3
            assert second.status is m.NodeStatus.NODE_STATUS_ACTIVE
            second.stop()
        taken = await events(service, "gpu-1", "node.taken_over")
        assert len(taken) == 1 and "token is revoked" in taken[0].reason
        assert service.book.event_counts["node.registration_refused"] == 1


async def test_a_silent_node_id_registers_again_without_taking_over(tmp_path, autojump_clock):
    async with open_service(tmp_path / "n.db", DAEMON_SERVER, **TOKENS) as service:
        first, _ = daemon(service)
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            await trio.sleep(5)
            first.stop()  # the machine died without a word
        await trio.sleep(40)  # past the heartbeat timeout of 30 s
        second, _ = daemon(service)
        async with trio.open_nursery() as nursery:
            await nursery.start(second.run)
            second.stop()
        assert (await kinds(service, "gpu-1")).count("node.reregistered") == 1


async def test_a_restarted_daemon_with_its_state_is_not_refused(tmp_path, autojump_clock):
    async with open_service(tmp_path / "n.db", DAEMON_SERVER, **TOKENS) as service:
        state_dir = tmp_path / "state"
        first, _ = daemon(service, state=DaemonState(state_dir))
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            await trio.sleep(5)
            first.stop()
        # Restarted at once, with the join token too: it registers with its saved node token.
        second, _ = daemon(service, state=DaemonState(state_dir))
        async with trio.open_nursery() as nursery:
            await nursery.start(second.run)
            second.stop()
        assert service.book.event_counts["node.registration_refused"] == 0


async def test_without_tokens_two_registrations_are_not_told_apart(tmp_path, autojump_clock):
    async with open_service(tmp_path / "n.db", DAEMON_SERVER) as service:
        for _ in range(2):
            request = m.RegisterNodeRequest(node_id="gpu-1")
            await rpc(service, request, Caller.anonymous())
        assert await kinds(service, "gpu-1") == ["node.registered", "node.reregistered"]


async def test_refusal_and_take_over_over_http(tmp_path):
    async with serving(tmp_path / "n.db", **TOKENS) as (http, _service):
        register = {"nodeId": "gpu-1"}
        first = await post(http, "RegisterNode", register, token=JOIN_TOKEN)
        assert first.status_code == 200
        old_token = first.json()["nodeToken"]

        refused = await post(http, "RegisterNode", register, token=JOIN_TOKEN)
        assert refused.status_code == 400
        assert refused.json()["code"] == "failed_precondition"
        assert "node gpu-1 is held by a daemon" in refused.json()["message"]

        # The holder itself registers again with its own token, and gets no new one.
        again = await post(http, "RegisterNode", register, token=old_token)
        assert again.status_code == 200 and "nodeToken" not in again.json()

        taken = await post(http, "RegisterNode", {**register, "takeOver": True}, token=JOIN_TOKEN)
        assert taken.status_code == 200
        new_token = taken.json()["nodeToken"]
        beat = {"nodeId": "gpu-1"}
        assert (await post(http, "SendHeartbeat", beat, token=old_token)).status_code == 401
        assert (await post(http, "SendHeartbeat", beat, token=new_token)).status_code == 200
        listed = await post(
            http, "ListEvents", {"nodeId": "gpu-1", "kinds": ["node.taken_over"]}, token=ADMIN_TOKEN
        )
        assert [e["kind"] for e in listed.json()["events"]] == ["node.taken_over"]
