"""A fake of Compute Engine's REST API (v1) and of Google's OAuth token endpoint, served over real
HTTP on 127.0.0.1, written from the public API reference.

It serves what the provider calls: the service-account JWT exchange at the key's `token_uri`,
the metadata server's token, instances insert/get/delete (with requestId) and reset, zone
operations wait, and the aggregated lists of instances and machine types (filter, pageToken).
Its switches put it in the states a real project gets into: no capacity, no quota, revoked keys,
failing.
"""

from __future__ import annotations

import base64
import http.server
import itertools
import json
import re
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PROJECT = "navarch-test"
GPU_TYPES = ["a3-highgpu-8g", "a3-highgpu-1g", "a2-highgpu-8g", "g2-standard-4", "n2-standard-8"]
ZONES = {
    "us-central1-a": GPU_TYPES,
    "us-central1-b": ["g2-standard-4", "n2-standard-8"],
    "europe-west4-a": ["a3-highgpu-8g", "n2-standard-8"],
}
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def gcp_error(status: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    """A synchronous error in Compute Engine's shape."""
    errors = [{"message": message, "domain": "global", "reason": reason}]
    return status, {"error": {"code": status, "message": message, "errors": errors}}


class FakeGce:
    def __init__(self, project: str = PROJECT) -> None:
        self.project = project
        self.zones = {zone: list(types) for zone, types in ZONES.items()}
        # Machines the zones can still make; None is without end.
        self.capacity: int | None = None
        # Machines the project may have at once, and the quota that says so.
        self.quota: int | None = None
        self.quota_metric = "NVIDIA_H100_GPUS"
        # While set, every Compute Engine call fails as an overloaded API's would.
        self.unavailable = False
        # While set, inserts fail in their operation: too many operations on the zone.
        self.operation_rate_exceeded = False
        # Replies (status, a JSON value or raw bytes) for the next Compute Engine calls, in order.
        self.scripted: list[tuple[int, Any]] = []
        # operations/wait calls an operation takes to finish.
        self.op_polls = 2
        self.page_size = 2
        self.instances: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.inserted: list[dict[str, Any]] = []
        # The name of each instance reset, once per finished reset operation.
        self.resets: list[str] = []
        self.token_grants = 0
        self._by_request: dict[str, str] = {}
        self._polls: dict[str, int] = {}
        self._keys: dict[str, tuple[str, rsa.RSAPublicKey]] = {}
        self._revoked: set[str] = set()
        self._tokens: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.compute_url = f"{self.url}/compute/v1"
        self.metadata_url = f"{self.url}/computeMetadata/v1"
        self.token_uri = f"{self.url}/token"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def __enter__(self) -> FakeGce:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def service_account_key(self, path: Path, *, email: str = "navarch@navarch-test") -> Path:
        """Writes a service-account JSON key, with a new RSA key, that this fake accepts."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = f"key-{next(self._ids)}"
        self._keys[kid] = (email, private.public_key())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        document = {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": kid,
            "private_key": pem,
            "client_email": email,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
        }
        path.write_text(json.dumps(document))
        return path

    def revoke_keys(self) -> None:
        """Deletes every service-account key: their tokens stop working, and no new ones."""
        with self._lock:
            self._revoked.update(self._keys)

    def forget_request_ids(self) -> None:
        """Forgets the requestIds seen, as Compute Engine does after a while."""
        with self._lock:
            self._by_request.clear()

    def preempt(self, name: str) -> None:
        """Takes a spot machine back: it stops, and stays listed as TERMINATED."""
        with self._lock:
            self.instances[name]["status"] = "TERMINATED"

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        with self._lock:
            if (method, path) == ("POST", "/token"):
                return self._grant(dict(urllib.parse.parse_qsl(body.decode())))
            if path == "/computeMetadata/v1/instance/service-accounts/default/token":
                if headers.get("metadata-flavor") != "Google":
                    return 403, "Missing Metadata-Flavor:Google header."
                return 200, self._issue("metadata")
            prefix = f"/compute/v1/projects/{self.project}/"
            if not path.startswith(prefix):
                return gcp_error(404, "notFound", f"The resource '{path}' was not found")
            bearer = headers.get("authorization", "").removeprefix("Bearer ")
            if self._tokens.get(bearer, "revoked") in self._revoked | {"revoked"}:
                return gcp_error(401, "authError", "Invalid Credentials")
            if self.scripted:
                return self.scripted.pop(0)
            if self.unavailable:
                return gcp_error(503, "backendError", "Internal error. Please try again.")
            return self._compute(method, path.removeprefix(prefix).split("/"), query, body)

    def _grant(self, form: dict[str, str]) -> tuple[int, Any]:
        refused = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if form.get("grant_type") != JWT_BEARER:
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant"}
        try:
            header_b64, claims_b64, signature_b64 = form["assertion"].split(".")
            header = json.loads(_unb64(header_b64))
            claims = json.loads(_unb64(claims_b64))
            email, public = self._keys[header["kid"]]
            public.verify(
                _unb64(signature_b64),
                f"{header_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (KeyError, ValueError, InvalidSignature):
            return 400, refused
        now = time.time()
        if (
            header.get("alg") != "RS256"
            or claims.get("iss") != email
            or claims.get("aud") != self.token_uri
            or "auth/compute" not in claims.get("scope", "")
            or not claims["iat"] - 60 <= now < claims["exp"] <= claims["iat"] + 3600
        ):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT claims."}
        if header["kid"] in self._revoked:
            return 400, refused
        self.token_grants += 1
        return 200, self._issue(header["kid"])

    def _issue(self, kid: str) -> dict[str, Any]:
        token = f"ya29.fake-{next(self._ids)}"
        self._tokens[token] = kid
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _compute(
        self, method: str, parts: list[str], query: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        match method, parts:
            case "POST", ["zones", zone, "instances"]:
                return self._insert(zone, json.loads(body), query.get("requestId", ""))
            case "GET", ["zones", zone, "instances", name]:
                found = self.instances.get(name)
                if found is None or not found["zone"].endswith(f"/{zone}"):
                    return self._not_found(zone, name)
                return 200, found
            case "DELETE", ["zones", zone, "instances", name]:
                return self._delete(zone, name)
            case "POST", ["zones", zone, "instances", name, "reset"]:
                return self._reset(zone, name)
            case "POST", ["zones", zone, "operations", name, "wait"]:
                return self._wait(name)
            case "GET", ["aggregated", "instances"]:
                return self._aggregated("instances", list(self.instances.values()), query)
            case "GET", ["aggregated", "machineTypes"]:
                types = [
                    {"kind": "compute#machineType", "name": name, "zone": zone}
                    for zone, names in self.zones.items()
                    for name in names
                ]
                return self._aggregated("machineTypes", types, query)
        return gcp_error(404, "notFound", f"no route {method} {'/'.join(parts)}")

    def _insert(self, zone: str, body: dict[str, Any], request_id: str) -> tuple[int, Any]:
        if request_id in self._by_request:
            return 200, self.operations[self._by_request[request_id]]
        self.inserted.append(body)
        name = body["name"]
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
            return gcp_error(400, "invalid", f"Invalid value for field 'resource.name': '{name}'")
        machine_type = body["machineType"].rsplit("/", 1)[-1]
        if machine_type not in self.zones.get(zone, []):
            return gcp_error(
                400, "invalid", f"Invalid value for field 'resource.machineType': '{machine_type}'"
            )
        if name in self.instances:
            path = f"projects/{self.project}/zones/{zone}/instances/{name}"
            return gcp_error(409, "alreadyExists", f"The resource '{path}' already exists")
        target = f"{self.compute_url}/projects/{self.project}/zones/{zone}/instances/{name}"
        operation = self._operation("insert", zone, target)
        if request_id:
            self._by_request[request_id] = operation["name"]
        if self.quota is not None and len(self.instances) >= self.quota:
            region = zone.rsplit("-", 1)[0]
            where = "globally" if self.quota_metric == "GPUS_ALL_REGIONS" else f"in region {region}"
            return 200, _failed(
                operation,
                403,
                "QUOTA_EXCEEDED",
                f"Quota '{self.quota_metric}' exceeded.  Limit: {self.quota}.0 {where}.",
            )
        if self.operation_rate_exceeded:
            return 200, _failed(
                operation,
                403,
                "RESOURCE_OPERATION_RATE_EXCEEDED",
                f"Operation rate exceeded for resource 'projects/{self.project}/zones/{zone}'.",
            )
        if self.capacity is not None and self.capacity <= 0:
            return 200, _failed(
                operation,
                503,
                "ZONE_RESOURCE_POOL_EXHAUSTED",
                f"The zone 'projects/{self.project}/zones/{zone}' does not have enough "
                "resources available to fulfill the request.  Try a different zone, or try "
                "again later.",
            )
        if self.capacity is not None:
            self.capacity -= 1
        host = next(self._ids) % 250 + 2
        interface = {
            "kind": "compute#networkInterface",
            "name": "nic0",
            "network": f"{self.compute_url}/projects/{self.project}/global/networks/default",
            "networkIP": f"10.128.0.{host}",
        }
        if body["networkInterfaces"][0].get("accessConfigs"):
            interface["accessConfigs"] = [
                {
                    "kind": "compute#accessConfig",
                    "type": "ONE_TO_ONE_NAT",
                    "name": "External NAT",
                    "natIP": f"203.0.113.{host}",
                    "networkTier": "PREMIUM",
                }
            ]
        self.instances[name] = {
            "kind": "compute#instance",
            "id": str(next(self._ids)),
            "name": name,
            "zone": f"{self.compute_url}/projects/{self.project}/zones/{zone}",
            "machineType": f"{self.compute_url}/projects/{self.project}/zones/{zone}/"
            f"machineTypes/{machine_type}",
            "status": "STAGING",
            "creationTimestamp": "2025-01-15T09:30:00.000-08:00",
            "labels": body.get("labels", {}),
            "metadata": {"kind": "compute#metadata", **body.get("metadata", {})},
            "scheduling": body.get("scheduling", {}),
            "networkInterfaces": [interface],
            "selfLink": target,
        }
        return 200, operation

    def _delete(self, zone: str, name: str) -> tuple[int, Any]:
        found = self.instances.get(name)
        if found is None or not found["zone"].endswith(f"/{zone}"):
            return self._not_found(zone, name)
        found["status"] = "STOPPING"
        return 200, self._operation("delete", zone, found["selfLink"])

    def _reset(self, zone: str, name: str) -> tuple[int, Any]:
        found = self.instances.get(name)
        if found is None or not found["zone"].endswith(f"/{zone}"):
            return self._not_found(zone, name)
        return 200, self._operation("reset", zone, found["selfLink"])

    def _wait(self, name: str) -> tuple[int, Any]:
        operation = self.operations.get(name)
        if operation is None:
            return gcp_error(404, "notFound", f"The resource 'operations/{name}' was not found")
        self._polls[name] -= 1
        if operation["status"] != "DONE" and self._polls[name] <= 0:
            operation.update(status="DONE", progress=100)
            target = operation["targetLink"].rsplit("/", 1)[-1]
            if operation["operationType"] == "insert" and target in self.instances:
                self.instances[target]["status"] = "RUNNING"
            elif operation["operationType"] == "reset":
                self.resets.append(target)
            elif operation["operationType"] == "delete":
                self.instances.pop(target, None)
                if self.capacity is not None:
                    self.capacity += 1
        return 200, operation

    def _operation(self, kind: str, zone: str, target: str) -> dict[str, Any]:
        name = f"operation-{next(self._ids)}-{kind}"
        operation = {
            "kind": "compute#operation",
            "id": str(next(self._ids)),
            "name": name,
            "zone": f"{self.compute_url}/projects/{self.project}/zones/{zone}",
            "operationType": kind,
            "targetLink": target,
            "status": "RUNNING",
            "progress": 0,
            "selfLink": f"{self.compute_url}/projects/{self.project}/zones/{zone}/operations/"
            f"{name}",
        }
        self.operations[name] = operation
        self._polls[name] = self.op_polls
        return operation

    def _not_found(self, zone: str, name: str) -> tuple[int, Any]:
        path = f"projects/{self.project}/zones/{zone}/instances/{name}"
        return gcp_error(404, "notFound", f"The resource '{path}' was not found")

    def _aggregated(
        self, collection: str, items: list[dict[str, Any]], query: dict[str, str]
    ) -> tuple[int, Any]:
        wanted: dict[str, set[str]] = {}
        for key, value in re.findall(r'([\w.-]+)\s*=\s*"([^"]*)"', query.get("filter", "")):
            wanted.setdefault(key, set()).add(value)
        chosen = sorted(
            (item for item in items if all(_value(item, k) in v for k, v in wanted.items())),
            key=lambda item: (str(item["zone"]), item["name"]),
        )
        start = int(query.get("pageToken") or 0)
        page = chosen[start : start + self.page_size]
        scopes: dict[str, Any] = {
            f"zones/{zone}": {
                "warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results."}
            }
            for zone in self.zones
        }
        for item in page:
            scope = scopes[f"zones/{str(item['zone']).rsplit('/', 1)[-1]}"]
            scope.pop("warning", None)
            scope.setdefault(collection, []).append(item)
        reply: dict[str, Any] = {"kind": f"compute#{collection}AggregatedList", "items": scopes}
        if start + self.page_size < len(chosen):
            reply["nextPageToken"] = str(start + self.page_size)
        return 200, reply


def _failed(operation: dict[str, Any], status: int, code: str, message: str) -> dict[str, Any]:
    operation.update(
        status="DONE",
        progress=100,
        error={"errors": [{"code": code, "message": message}]},
        httpErrorStatusCode=status,
        httpErrorMessage="FORBIDDEN" if status == 403 else "SERVICE UNAVAILABLE",
    )
    return operation


def _value(item: dict[str, Any], key: str) -> Any:
    if key.startswith("labels."):
        return item.get("labels", {}).get(key.removeprefix("labels."))
    return item.get(key)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _handler(fake: FakeGce) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            status, reply = fake.handle(
                self.command,
                url.path,
                dict(urllib.parse.parse_qsl(url.query)),
                {name.lower(): value for name, value in self.headers.items()},
                self.rfile.read(length),
            )
            if isinstance(reply, bytes):
                content, kind = reply, "text/html"
            elif isinstance(reply, str):
                content, kind = reply.encode(), "text/plain"
            else:
                content, kind = json.dumps(reply).encode(), "application/json; charset=UTF-8"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    return Handler
