"""The daemon hears its cloud's preemption notice and the control plane drains the node.

The metadata services are fakes served over HTTP on loopback, written from AWS's IMDSv2 and
Compute Engine's metadata server; the daemon polls them as it would the real ones.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
from datetime import timedelta

import pytest
import trio
from support.api import rpc
from support.switchable_client import SwitchableClient
from test_agent import CountingDrain, make_daemon

from navarch.api import wire as m
from navarch.controlplane import Caller
from navarch.daemon.config import DaemonConfig
from navarch.daemon.preemption import AwsMetadata, GcpMetadata, MetadataError

ADMIN = Caller.admin()
TOKEN = "imds-session-token"


class FakeMetadata:
    """AWS's IMDSv2 and GCP's metadata server on one loopback port."""

    def __init__(self) -> None:
        # AWS: the body of spot/instance-action, or None while nothing is planned (404).
        self.instance_action: str | None = None
        # GCP: the values of instance/preempted and instance/maintenance-event.
        self.preempted = "FALSE"
        self.maintenance = "NONE"
        self.requests: list[str] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                fake.requests.append(f"PUT {self.path}")
                if self.path == "/latest/api/token" and self.headers.get(
                    "X-aws-ec2-metadata-token-ttl-seconds"
                ):
                    self._send(200, TOKEN)
                else:
                    self._send(400, "bad token request")

            def do_GET(self) -> None:
                fake.requests.append(f"GET {self.path}")
                if self.path == "/latest/meta-data/spot/instance-action":
                    if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                        self._send(401, "")
                    elif fake.instance_action is None:
                        self._send(404, "Not Found")
                    else:
                        self._send(200, fake.instance_action)
                elif self.path.startswith("/computeMetadata/v1/instance/"):
                    if self.headers.get("Metadata-Flavor") != "Google":
                        self._send(403, "Missing Metadata-Flavor:Google header.")
                    elif self.path.endswith("/preempted"):
                        self._send(200, fake.preempted)
                    elif self.path.endswith("/maintenance-event"):
                        self._send(200, fake.maintenance)
                    else:
                        self._send(404, "")
                else:
                    self._send(404, "")

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def metadata():
    fake = FakeMetadata()
    yield fake
    fake.close()


async def wait_for(check, seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while not await check():
            await trio.sleep(0.02)


async def notices(service) -> list[m.Event]:
    reply = await rpc(
        service, m.ListEventsRequest(kinds=("node.preemption_notice",), limit=10), ADMIN
    )
    return list(reply.events)


async def status(service) -> m.NodeStatus:
    return (await rpc(service, m.GetNodeRequest(node_id="gpu-1"), ADMIN)).node.status


async def test_an_aws_spot_notice_drains_the_node_at_once(control_plane, metadata):
    config = DaemonConfig(
        node_id="gpu-1",
        metadata="aws",
        metadata_url=metadata.url,
        metadata_poll=timedelta(milliseconds=20),
    )
    drain = CountingDrain(takes=0.0)
    daemon = make_daemon(SwitchableClient(control_plane), config=config, drain=drain)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(0.2)
        assert await notices(control_plane) == []  # 404: nothing planned
        metadata.instance_action = json.dumps(
            {"action": "terminate", "time": "2030-01-01T08:22:00Z"}
        )
        await wait_for(lambda: _is(control_plane, m.NodeStatus.NODE_STATUS_DRAINED))
        nursery.cancel_scope.cancel()
    [event] = await notices(control_plane)
    assert event.node_id == "gpu-1"
    assert event.reason == (
        "preemption notice (spot) at 2030-01-01T08:22:00+00:00: spot instance-action terminate"
    )
    assert len(drain.runs) == 1
    # One session token served every poll.
    assert metadata.requests.count("PUT /latest/api/token") == 1


async def _is(service, wanted: m.NodeStatus) -> bool:
    return await status(service) is wanted


async def test_a_gcp_preemption_and_a_maintenance_event_are_notices(metadata):
    source = GcpMetadata(f"{metadata.url}/computeMetadata/v1")
    assert await source.check() is None
    metadata.maintenance = "TERMINATE_ON_HOST_MAINTENANCE"
    notice = await source.check()
    assert notice is not None and notice.kind == "maintenance"
    metadata.preempted = "TRUE"
    notice = await source.check()
    assert notice is not None and (notice.kind, notice.at) == ("preempted", None)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("{not json", "metadata spot/instance-action: not JSON: '{not json'"),
        ('["terminate"]', "expected a JSON object"),
        (
            '{"action": "explode"}',
            "spot/instance-action: action: expected terminate, stop or hibernate, got 'explode'",
        ),
        (
            '{"action": "stop", "time": "yesterday"}',
            "spot/instance-action: time: not an RFC 3339 time: 'yesterday'",
        ),
        ('{"action": "stop", "time": "0001-01-01T00:00:00Z"}', "not an RFC 3339 time"),
    ],
)
async def test_an_odd_metadata_reply_is_an_error_naming_the_field(metadata, body, problem):
    metadata.instance_action = body
    with pytest.raises(MetadataError) as raised:
        await AwsMetadata(metadata.url).check()
    assert problem in str(raised.value)


async def test_an_unreadable_service_is_logged_once_and_watched_on(control_plane, metadata, caplog):
    metadata.instance_action = "{not json"
    config = DaemonConfig(
        node_id="gpu-1",
        metadata="aws",
        metadata_url=metadata.url,
        metadata_poll=timedelta(milliseconds=20),
    )
    daemon = make_daemon(
        SwitchableClient(control_plane), config=config, drain=CountingDrain(takes=0.0)
    )
    caplog.set_level(logging.WARNING, "navarch.daemon")
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(0.3)  # many polls, all failing the same way
        metadata.instance_action = json.dumps({"action": "stop"})
        await wait_for(lambda: _is(control_plane, m.NodeStatus.NODE_STATUS_DRAINED))
        nursery.cancel_scope.cancel()
    failing = [r for r in caplog.records if "cannot read preemption notices" in r.getMessage()]
    assert len(failing) == 1
    [event] = await notices(control_plane)
    assert event.reason == "preemption notice (spot): spot instance-action stop"
