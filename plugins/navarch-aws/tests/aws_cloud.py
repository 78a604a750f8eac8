"""A fake of EC2 on loopback: moto's server, behind a proxy that can answer as EC2 does when it
refuses a call.

The provider talks to the proxy over real HTTP through `endpoint_url`. The proxy passes each call
on to moto unless the test set an answer for its action; it also checks the access key the call
was signed with, as EC2 does, and records every call's form parameters.
"""

from __future__ import annotations

import http.client
import http.server
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

ACCESS_KEY = "AKIANAVARCHTESTKEY01"
SECRET_KEY = "navarch-test-secret"
REGION = "us-east-1"

# What the proxy answers instead of moto: (HTTP status, body), or None to pass the call on.
Answer = tuple[int, str]
Responder = Callable[[str, dict[str, str]], Answer | None]


def ec2_error(code: str, message: str) -> str:
    """An error body in the shape EC2's Query API answers with."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>"
        f"</Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
    )


# Errors as EC2 answers them, with their HTTP status and messages as EC2 words them.
INSUFFICIENT_CAPACITY = (
    500,
    ec2_error(
        "InsufficientInstanceCapacity",
        "We currently do not have sufficient g5.xlarge capacity in the Availability Zone you "
        "requested (us-east-1a). Our system will be working on provisioning additional "
        "capacity. You can currently get g5.xlarge capacity by not specifying an Availability "
        "Zone in your request or choosing us-east-1b, us-east-1c.",
    ),
)
VCPU_LIMIT = (
    400,
    ec2_error(
        "VcpuLimitExceeded",
        "You have requested more vCPU capacity than your current vCPU limit of 0 allows for "
        "the instance bucket that the specified instance type belongs to. Please visit "
        "http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.",
    ),
)
AUTH_FAILURE = (
    401,
    ec2_error("AuthFailure", "AWS was not able to validate the provided access credentials"),
)
UNAVAILABLE = (
    503,
    ec2_error("Unavailable", "The server is overloaded and can't handle the request."),
)

_CREDENTIAL = re.compile(r"Credential=([^/]+)/")


class Ec2Proxy:
    """The loopback endpoint the provider under test calls."""

    def __init__(self, moto_url: str) -> None:
        self.moto = urlsplit(moto_url)
        # The access key the fake EC2 accepts; any other is refused with AuthFailure.
        self.access_key = ACCESS_KEY
        # Answers by action ("RunInstances"), or for every action under "*".
        self.answers: dict[str, Answer] = {}
        # Answers that depend on the call's parameters, asked before `answers`.
        self.responder: Responder | None = None
        # Every call, as its action and form parameters.
        self.calls: list[tuple[str, dict[str, str]]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, reply = proxy.handle(dict(self.headers), body)
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "connection", "server", "date"):
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of(self, action: str) -> list[dict[str, str]]:
        """The form parameters of each call of `action`."""
        return [form for name, form in self.calls if name == action]

    def handle(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        action = form.get("Action", "")
        self.calls.append((action, form))
        signed = _CREDENTIAL.search(headers.get("Authorization", ""))
        answer: Answer | None
        if signed is None or signed.group(1) != self.access_key:
            answer = AUTH_FAILURE
        else:
            answer = self.responder(action, form) if self.responder else None
            answer = answer or self.answers.get(action) or self.answers.get("*")
        if answer is not None:
            status, text = answer
            return status, [("Content-Type", "text/xml;charset=UTF-8")], text.encode()
        return self._forward(headers, body)

    def _forward(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self.moto.hostname, self.moto.port, timeout=30)
        try:
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """AWS's standard chain sees the fake key, and nothing of this machine's own AWS setup."""
    nowhere = tmp_path_factory.mktemp("aws-home")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


def moto_client(url: str, service: str = "ec2", region: str = REGION) -> Any:
    import boto3

    return boto3.client(
        service,
        region_name=region,
        endpoint_url=url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def register_image(url: str, region: str = REGION) -> str:
    """Registers an AMI in moto's `region`, and returns its id."""
    ec2 = moto_client(url, region=region)
    return str(ec2.register_image(Name="navarch-gpu", RootDeviceName="/dev/sda1")["ImageId"])


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's AWS, served over HTTP on loopback for the whole test run. Every moto server in
    one process shares one state; tests keep apart by pool, and by region."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def image_id(moto_url: str) -> str:
    return register_image(moto_url)


@pytest.fixture
def ec2_proxy(moto_url: str) -> Iterator[Ec2Proxy]:
    proxy = Ec2Proxy(moto_url)
    yield proxy
    proxy.close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    aws_environment(monkeypatch, tmp_path_factory)
