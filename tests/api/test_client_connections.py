"""The HTTP client's own connections (h11 on trio): kept alive and reused, replaced when the control
plane closes them, bounded in time, with a few words for every failure, and no TLS for http.
Real HTTP on loopback, on trio's MockClock."""

from __future__ import annotations

import ssl
import subprocess
import sys

import pytest
import trio
import trio.testing
from support.fake_plane import FakePlane

from navarch.api import wire as m
from navarch.api.client import HttpClient, Unreachable


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.02)


async def _calls(plane: FakePlane, count: int, **kwargs: object) -> None:
    async with HttpClient(plane.url, **kwargs) as client:  # type: ignore[arg-type]
        for _ in range(count):
            await client.list_nodes(m.ListNodesRequest())


async def test_calls_reuse_one_kept_alive_connection(clock: trio.testing.MockClock) -> None:
    plane = FakePlane()
    async with trio.open_nursery() as nursery:
        await nursery.start(plane.run)
        await _calls(plane, 3)
        nursery.cancel_scope.cancel()
    assert plane.connections() == [1, 1, 1]
    assert plane.calls[0].body == {}


@pytest.mark.parametrize("how", ["close_after_reply", "hang_up_after_reply"])
async def test_a_connection_the_control_plane_closed_is_replaced(
    clock: trio.testing.MockClock, how: str
) -> None:
    plane = FakePlane(**{how: True})
    async with trio.open_nursery() as nursery:
        await nursery.start(plane.run)
        async with HttpClient(plane.url) as client:
            for _ in range(3):
                await client.list_nodes(m.ListNodesRequest())
                # The idle timeout of a real server: the hang-up reaches the client first.
                await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert plane.connections() == [1, 2, 3]


async def test_a_reply_that_does_not_come_is_cut_at_the_timeout(
    clock: trio.testing.MockClock,
) -> None:
    async def hold(method: str, body: object) -> None:
        await trio.sleep(60)

    plane = FakePlane(before_reply=hold)
    async with trio.open_nursery() as nursery:
        await nursery.start(plane.run)
        with pytest.raises(Unreachable) as failed:
            await _calls(plane, 1, timeout=5.0)
        nursery.cancel_scope.cancel()
    assert failed.value.reason == "no reply within 5s"


async def test_a_connection_closed_before_the_reply_is_reported(
    clock: trio.testing.MockClock,
) -> None:
    async def hang_up(method: str, body: object) -> None:
        raise trio.BrokenResourceError

    plane = FakePlane(before_reply=hang_up)
    async with trio.open_nursery() as nursery:
        await nursery.start(plane.run)
        with pytest.raises(Unreachable) as failed:
            await _calls(plane, 1)
        nursery.cancel_scope.cancel()
    assert failed.value.reason == "the connection closed before a reply"


async def test_a_refused_connection_is_reported() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    async with HttpClient(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(Unreachable) as failed:
            await client.list_nodes(m.ListNodesRequest())
    assert str(failed.value) == (
        f"cannot reach the control plane at http://127.0.0.1:{port}: connection refused"
    )


async def test_a_url_that_is_not_http_is_refused_before_any_connection() -> None:
    async with HttpClient("ftp://127.0.0.1:21") as client:
        with pytest.raises(Unreachable, match="not an http or https URL"):
            await client.list_nodes(m.ListNodesRequest())


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",  # urlsplit: Invalid IPv6 URL
        "http://h\u00e9st:1/",  # a host outside ASCII
        "http://" + "a" * 64 + ".example:1/",  # a label IDNA refuses
        "http://127.0.0.1:1/p\u00e4th",  # a path outside ASCII
    ],
)
async def test_a_url_http_cannot_carry_is_refused_in_one_line(url: str) -> None:
    async with HttpClient(url) as client:
        with pytest.raises(Unreachable) as failed:
            await client.list_nodes(m.ListNodesRequest())
    assert "\n" not in str(failed.value)


async def test_a_token_http_cannot_carry_is_refused_before_sending() -> None:
    async with HttpClient("http://127.0.0.1:1", token="t\r\nx-injected: 1") as client:
        with pytest.raises(Unreachable, match="cannot send"):
            await client.list_nodes(m.ListNodesRequest())


async def test_http_builds_no_tls_context(
    clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> ssl.SSLContext:
        raise AssertionError("an SSL context was built for http")

    monkeypatch.setattr(ssl, "create_default_context", refuse)
    plane = FakePlane()
    async with trio.open_nursery() as nursery:
        await nursery.start(plane.run)
        await _calls(plane, 2)
        nursery.cancel_scope.cancel()
    assert len(plane.calls) == 2


def test_the_daemon_loads_neither_httpx_nor_the_control_plane() -> None:
    # What `navarch daemon` imports before it runs, in a fresh interpreter.
    script = (
        "import sys\n"
        "from navarch.cli import main\n"
        "import navarch.cli.daemon\n"
        "from navarch.cli.daemon import _backend\n"
        "from navarch.api.client import HttpClient\n"
        "from navarch.daemon.agent import Daemon\n"
        "from navarch.daemon.checks import load_health_checks\n"
        "from navarch.daemon.host import ProcHostStats\n"
        "from navarch.daemon.state import DaemonState\n"
        "from navarch.telemetry.versions import fallback_reason\n"
        "HttpClient('http://127.0.0.1:1')\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    unwanted = {"httpx", "httpcore", "rich", "pygments", "certifi", "navarch.controlplane"}
    unwanted |= {"navarch.pools", "navarch.health", "navarch.store", "navarch.cli.nodes"}
    assert loaded & unwanted == set()
    assert {"navarch.daemon.agent", "h11", "trio"} <= loaded
