"""A fake of the Lambda Cloud API v1, written from its public OpenAPI description (v1.10) and
served over HTTP on a loopback port, with switches that act out what a real account meets:
no capacity, a used-up quota, a revoked key, an overloaded API, rate limits and lost replies."""

from __future__ import annotations

import base64
import contextlib
import http.server
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

API_KEY = "secret_navarch-test_6f1c2a"
SSH_KEY = "ops"

REGIONS = {"us-east-1": "Virginia, USA", "us-west-1": "California, USA"}

# name: (description, gpu_description, price_cents_per_hour, gpus, vcpus, memory_gib, storage_gib)
TYPES = {
    "gpu_8x_h100_sxm5": ("8x H100 (80 GB SXM5)", "H100 (80 GB SXM5)", 2392, 8, 208, 1800, 22000),
    "gpu_1x_h100_pcie": ("1x H100 (80 GB PCIe)", "H100 (80 GB PCIe)", 249, 1, 26, 200, 1000),
    "gpu_8x_a100": ("8x A100 (40 GB SXM4)", "A100 (40 GB SXM4)", 1032, 8, 124, 1800, 6000),
    "gpu_1x_a10": ("1x A10 (24 GB PCIe)", "A10 (24 GB PCIe)", 75, 1, 30, 200, 1400),
}

_LAUNCH_KEYS = {
    "region_name",
    "instance_type_name",
    "ssh_key_names",
    "file_system_names",
    "file_system_mounts",
    "hostname",
    "name",
    "image",
    "user_data",
    "tags",
    "firewall_rulesets",
}


def error_body(code: str, message: str, suggestion: str = "") -> bytes:
    error = {"code": code, "message": message}
    if suggestion:
        error["suggestion"] = suggestion
    return json.dumps({"error": error}).encode()


INVALID_KEY = (
    401,
    error_body(
        "global/invalid-api-key",
        "API key was invalid, expired, or deleted.",
        "Check your API key or create a new one, then try again.",
    ),
)
NO_CAPACITY = (
    400,
    error_body(
        "instance-operations/launch/insufficient-capacity",
        "Not enough capacity to fulfill launch request.",
        "Choose an instance type with more availability, or try again later.",
    ),
)
QUOTA = (
    400,
    error_body(
        "global/quota-exceeded", "Quota exceeded.", "Contact Support to increase your quota."
    ),
)
NO_INSTANCE = (
    404,
    error_body("global/object-does-not-exist", "Specified instance does not exist."),
)
# A gateway's answers, as a real deployment gives them: not JSON, and not Lambda's error shape.
UNAVAILABLE = (503, b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>")
BAD_GATEWAY = (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>")
TOO_MANY = (429, b"Too Many Requests")


class FakeLambda:
    def __init__(self) -> None:
        self.api_key = API_KEY
        self.ssh_keys = {SSH_KEY}
        # Machines each (type, region) can still launch.
        self.capacity = {(name, region): 4 for name in TYPES for region in REGIONS}
        # The machines (booting, active, unhealthy or preempted) the account may have at once.
        self.quota = 10
        # How long a launched machine stays `booting` before it is `active`.
        self.boot_time = 0.0
        # The least time between two launch calls; a faster one gets 429, as Lambda's limit of
        # one launch a 12 s does.
        self.launch_interval = 0.0
        # While set, every call gets 503 from the gateway.
        self.failing = False
        # Launches that make their machine and then lose the reply (a 502 from the gateway).
        self.lose_launch_replies = 0
        # Replies to give, in order, to the next calls of (method, path), instead of serving them.
        self.scripted: dict[tuple[str, str], list[tuple[int, bytes, dict[str, str]]]] = {}
        self.instances: dict[str, dict[str, Any]] = {}
        # The id of each instance restarted, once per restart.
        self.restarts: list[str] = []
        # Every call as (monotonic time, method, path, JSON body or None, headers).
        self.calls: list[tuple[float, str, str, Any, dict[str, str]]] = []
        self._addresses = itertools.count(10)
        self._lock = threading.Lock()

    def script(
        self,
        method: str,
        path: str,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.scripted.setdefault((method, path), []).append((status, body, headers or {}))

    def preempt(self, instance_id: str) -> None:
        """Takes a machine back, as a preemptible or reserved offering may."""
        with self._lock:
            self.instances[instance_id]["status"] = "preempted"

    def live(self) -> list[dict[str, Any]]:
        """The machines that are not terminated."""
        with self._lock:
            return [i for i in self.instances.values() if i["status"] != "terminated"]

    def launch_times(self) -> list[float]:
        return [
            at for at, method, path, _, _ in self.calls if path == "/instance-operations/launch"
        ]

    def handle(
        self, method: str, path: str, headers: dict[str, str], content: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            try:
                body = json.loads(content) if content else None
            except ValueError:
                body = None
            path = path.removeprefix("/api/v1")
            self.calls.append((time.monotonic(), method, path, body, headers))
            queued = self.scripted.get((method, path))
            if queued:
                return queued.pop(0)
            if self.failing:
                return (*UNAVAILABLE, {})
            if not self._authorized(headers.get("authorization", "")):
                return (*INVALID_KEY, {})
            status, reply = self._route(method, path, body)
            return status, reply, {"Content-Type": "application/json"}

    def _authorized(self, header: str) -> bool:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer":
            return credential == self.api_key
        if scheme.lower() == "basic":  # the key as the user name, with no password
            with contextlib.suppress(ValueError):
                return base64.b64decode(credential).decode() == f"{self.api_key}:"
        return False

    def _route(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        for instance in self.instances.values():
            if instance["status"] == "booting" and time.monotonic() >= instance["_active_at"]:
                instance["status"] = "active"
        if (method, path) == ("GET", "/instance-types"):
            return 200, _data({name: self._offer(name) for name in TYPES})
        if (method, path) == ("GET", "/instances"):
            return 200, _data([_public(i) for i in self.instances.values()])
        if method == "GET" and path.startswith("/instances/"):
            found = self.instances.get(path.removeprefix("/instances/"))
            return (200, _data(_public(found))) if found else NO_INSTANCE
        if (method, path) == ("POST", "/instance-operations/launch"):
            return self._launch(body)
        if (method, path) == ("POST", "/instance-operations/terminate"):
            return self._terminate(body)
        if (method, path) == ("POST", "/instance-operations/restart"):
            return self._restart(body)
        return 404, error_body("global/not-found", f"No route {method} {path}.")

    def _offer(self, name: str) -> dict[str, Any]:
        regions = [r for r in REGIONS if self.capacity.get((name, r), 0) > 0]
        return {
            "instance_type": _instance_type(name),
            "regions_with_capacity_available": [
                {"name": r, "description": REGIONS[r]} for r in regions
            ],
        }

    def _launch(self, body: Any) -> tuple[int, bytes]:
        launches = self.launch_times()
        if len(launches) > 1 and launches[-1] - launches[-2] < self.launch_interval:
            return TOO_MANY
        problem = _launch_problem(body, self.ssh_keys)
        if problem:
            return 400, error_body("global/invalid-parameters", problem)
        kind, region = body["instance_type_name"], body["region_name"]
        live = [i for i in self.instances.values() if i["status"] not in ("terminated",)]
        if len(live) >= self.quota:
            return QUOTA
        if self.capacity[(kind, region)] <= 0:
            return NO_CAPACITY
        self.capacity[(kind, region)] -= 1
        address = next(self._addresses)
        instance = {
            "id": uuid.uuid4().hex,
            "name": body.get("name"),
            "ip": f"198.51.100.{address}",
            "private_ip": f"10.0.0.{address}",
            "hostname": f"{address}-lambda.example",
            "status": "booting",
            "ssh_key_names": body["ssh_key_names"],
            "file_system_names": body.get("file_system_names", []),
            "region": {"name": region, "description": REGIONS[region]},
            "instance_type": _instance_type(kind),
            "tags": body.get("tags", []),
            "actions": {
                action: {"available": True}
                for action in ("migrate", "rebuild", "restart", "cold_reboot", "terminate")
            },
            "is_reserved": False,
            "_active_at": time.monotonic() + self.boot_time,
            "_user_data": body.get("user_data"),
        }
        self.instances[instance["id"]] = instance
        if self.lose_launch_replies:
            self.lose_launch_replies -= 1
            return BAD_GATEWAY
        return 200, _data({"instance_ids": [instance["id"]]})

    def _targets(self, body: Any) -> list[dict[str, Any]] | tuple[int, bytes]:
        """The live instances that an operation's `instance_ids` name, or the error reply."""
        ids = body.get("instance_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids:
            return 400, error_body("global/invalid-parameters", "instance_ids: expected ids.")
        found = [self.instances.get(i) for i in ids]
        live = [i for i in found if i is not None and i["status"] != "terminated"]
        return live if len(live) == len(found) else NO_INSTANCE

    def _restart(self, body: Any) -> tuple[int, bytes]:
        found = self._targets(body)
        if isinstance(found, tuple):
            return found
        for instance in found:
            self.restarts.append(instance["id"])
        return 200, _data({"restarted_instances": [_public(i) for i in found]})

    def _terminate(self, body: Any) -> tuple[int, bytes]:
        found = self._targets(body)
        if isinstance(found, tuple):
            return found
        for instance in found:
            instance["status"] = "terminated"
            key = (instance["instance_type"]["name"], instance["region"]["name"])
            self.capacity[key] += 1
        return 200, _data({"terminated_instances": [_public(i) for i in found]})

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Serves the API on a loopback port; yields its base URL."""
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                headers = {name.lower(): value for name, value in self.headers.items()}
                status, body, extra = fake.handle(
                    self.command, self.path, headers, self.rfile.read(length)
                )
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/api/v1"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def _data(value: Any) -> bytes:
    return json.dumps({"data": value}).encode()


def _public(instance: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in instance.items() if not key.startswith("_")}


def _instance_type(name: str) -> dict[str, Any]:
    description, gpu, cents, gpus, vcpus, memory, storage = TYPES[name]
    return {
        "name": name,
        "description": description,
        "gpu_description": gpu,
        "price_cents_per_hour": cents,
        "specs": {"vcpus": vcpus, "memory_gib": memory, "storage_gib": storage, "gpus": gpus},
    }


def _launch_problem(body: Any, ssh_keys: set[str]) -> str:
    """What makes a launch request invalid, as the API's 400 global/invalid-parameters says."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    unknown = sorted(set(body) - _LAUNCH_KEYS)
    if unknown:
        return f"Unknown fields: {', '.join(unknown)}."
    if body.get("region_name") not in REGIONS:
        return f"Unknown region_name {body.get('region_name')!r}."
    if body.get("instance_type_name") not in TYPES:
        return f"Unknown instance_type_name {body.get('instance_type_name')!r}."
    keys = body.get("ssh_key_names")
    if not isinstance(keys, list) or len(keys) != 1 or keys[0] not in ssh_keys:
        return "ssh_key_names: expected exactly one SSH key of the account."
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 64):
        return "name: expected at most 64 characters."
    user_data = body.get("user_data")
    if user_data is not None and (not isinstance(user_data, str) or len(user_data) > 1 << 20):
        return "user_data: expected a string of at most 1 MB."
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(
        isinstance(t, dict)
        and set(t) == {"key", "value"}
        and all(isinstance(v, str) for v in t.values())
        for t in tags
    ):
        return "tags: expected a list of {key, value} objects."
    return ""
