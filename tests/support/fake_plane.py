"""A scripted control plane on loopback: h11 on trio sockets, for the real HTTP client.

Each API method answers from a script: `refuse[method]` is a list of `(status, headers)` refusals
given to the next calls of that method, in order; once it is empty, the method answers 200 with
a fixed reply. Every call is recorded with its method, the trio time it arrived and the
connection it came on, so a test sees when a daemon came back and whether it reused connections.
Runs on `trio.testing.MockClock`: the long poll holds for its `wait` in trio time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import h11
import trio
from attrs import define, field

SERVICE = "/navarch.v1.ControlPlaneService/"


@define
class Call:
    method: str
    time: float
    connection: int
    body: dict[str, Any]


@define
class FakePlane:
    url: str = ""
    calls: list[Call] = field(factory=list)
    refuse: dict[str, list[tuple[int, list[tuple[str, str]]]]] = field(factory=dict)
    heartbeat_interval: str = "10s"
    # Called with (method, body) before the reply; a test may sleep in it to hold a reply back.
    before_reply: Callable[[str, dict[str, Any]], Any] | None = None
    close_after_reply: bool = False
    # Closes the connection after each reply without saying so, as a server's idle timeout does.
    hang_up_after_reply: bool = False
    _connections: int = 0

    def connections(self) -> list[int]:
        return [c.connection for c in self.calls]

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    def times(self, method: str) -> list[float]:
        return [c.time for c in self.calls if c.method == method]

    def _reply(self, method: str, body: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Any]:
        script = self.refuse.get(method)
        if script:
            status, headers = script.pop(0)
            message = "the control plane is overloaded: test; retry later"
            return status, headers, {"code": "unavailable", "message": message}
        node_id = body.get("nodeId", "")
        if method == "RegisterNode":
            return (
                200,
                [],
                {
                    "node": {
                        "nodeId": node_id,
                        "status": "NODE_STATUS_ACTIVE",
                        "health": "HEALTH_STATUS_HEALTHY",
                    },
                    "config": {
                        "heartbeatInterval": self.heartbeat_interval,
                        "healthCheckInterval": "1h",
                        "commandPollWait": "20s",
                    },
                    "nodeToken": "node-token",
                },
            )
        if method == "SendHeartbeat":
            return 200, [], {"status": "NODE_STATUS_ACTIVE"}
        return 200, [], {}

    async def serve(self, stream: trio.SocketStream) -> None:
        self._connections += 1
        connection_id = self._connections
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request: h11.Request | None = None
                chunks: list[bytes] = []
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        conn.receive_data(bytes(data))
                    elif isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        chunks.append(bytes(event.data))
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        return
                assert request is not None
                method = request.target.decode().removeprefix(SERVICE)
                body = json.loads(b"".join(chunks) or b"{}")
                self.calls.append(Call(method, trio.current_time(), connection_id, body))
                if self.before_reply is not None:
                    await self.before_reply(method, body)
                status, headers, reply = self._reply(method, body)
                if method == "GetNodeCommands" and status == 200:
                    await trio.sleep(20)
                payload = json.dumps(reply).encode()
                all_headers = [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(payload))),
                    # As bytes, so that a test can send what no well-behaved server would.
                    *((name, value.encode()) for name, value in headers),
                ]
                if self.close_after_reply:
                    all_headers.append(("Connection", "close"))
                await stream.send_all(
                    conn.send(h11.Response(status_code=status, headers=all_headers))
                    + conn.send(h11.Data(data=payload))
                    + conn.send(h11.EndOfMessage())
                )
                if self.hang_up_after_reply:
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self.serve, listeners)
            task_status.started()
