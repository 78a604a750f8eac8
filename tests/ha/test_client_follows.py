"""The HTTP client given several control planes: it goes to the leader a follower names, past a
control plane it cannot connect to, and never resends a call that may have been carried out."""

from __future__ import annotations

import json

import httpx
import pytest
import trio.testing

from navarch.api import wire as m
from navarch.api.client import HttpClient, Unreachable, split_urls
from navarch.api.codec import ApiError

A, B, C = "http://cp-a:50051", "http://cp-b:50051", "http://cp-c:50051"
OK = {"nodes": []}


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class Planes:
    """Each control plane's behaviour by URL: "ok", "down", "timeout", "follower:URL" or
    "follower" (no leader known); and the URLs called, in order."""

    def __init__(self, behaviour: dict[str, str]) -> None:
        self.behaviour = behaviour
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        self.calls.append(url)
        kind, _, leader = self.behaviour[url].partition(":")
        if kind == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if kind == "timeout":
            raise httpx.ReadTimeout("no reply", request=request)
        if kind == "follower":
            body = {"code": "unavailable", "message": "answered by the leader only"}
            headers = {"navarch-leader": leader} if leader else {}
            return httpx.Response(503, json=body, headers=headers)
        return httpx.Response(200, content=json.dumps(OK).encode())


def _client(urls: str, planes: Planes) -> HttpClient:
    return HttpClient(urls, transport=httpx.MockTransport(planes))


def test_urls_are_split_on_commas_and_lose_trailing_slashes() -> None:
    assert split_urls(f" {A}/, {B} ,") == (A, B)
    assert split_urls([A, f"{B}/"]) == (A, B)


async def test_a_call_goes_past_a_control_plane_that_refuses_connections(
    autojump_clock: trio.testing.MockClock,
) -> None:
    planes = Planes({A: "down", B: "ok"})
    async with _client(f"{A},{B}", planes) as client:
        await client.list_nodes(m.ListNodesRequest())
        await client.list_nodes(m.ListNodesRequest())
    assert planes.calls == [A, B, B]


async def test_a_call_a_follower_refuses_goes_to_the_leader_it_names(
    autojump_clock: trio.testing.MockClock,
) -> None:
    planes = Planes({A: f"follower:{C}", C: "ok"})
    async with _client(A, planes) as client:
        await client.list_nodes(m.ListNodesRequest())
        assert client.url == C
        await client.list_nodes(m.ListNodesRequest())
    assert planes.calls == [A, C, C]


async def test_a_leader_named_on_another_scheme_is_not_followed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The bearer token goes wherever the header points: an https client never follows to http.
    plain = "http://cp-c.internal:50051"
    secure_a, secure_b = A.replace("http://", "https://"), B.replace("http://", "https://")
    planes = Planes({secure_a: f"follower:{plain}", secure_b: "ok", plain: "ok"})
    async with _client(f"{secure_a},{secure_b}", planes) as client:
        await client.list_nodes(m.ListNodesRequest())
    assert planes.calls == [secure_a, secure_b]


async def test_with_no_leader_anywhere_the_call_fails_unavailable_after_one_round(
    autojump_clock: trio.testing.MockClock,
) -> None:
    planes = Planes({A: "follower", B: "down"})
    async with _client(f"{A},{B}", planes) as client:
        with pytest.raises(ApiError) as caught:
            await client.list_nodes(m.ListNodesRequest())
    assert planes.calls == [A, B, A]
    assert caught.value.code == "unavailable"


async def test_a_call_that_may_have_been_carried_out_is_not_sent_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    planes = Planes({A: "timeout", B: "ok"})
    async with _client(f"{A},{B}", planes) as client:
        with pytest.raises(Unreachable, match="cp-a"):
            await client.list_nodes(m.ListNodesRequest())
        # The next call starts at the next control plane.
        await client.list_nodes(m.ListNodesRequest())
    assert planes.calls == [A, B]
