"""Example Cloud's API in memory, served to the provider through `httpx.MockTransport`."""

from __future__ import annotations

import itertools
import json

import httpx

TOKEN = "example-token"


class FakeCloud:
    def __init__(self) -> None:
        # The token the API accepts.
        self.token = TOKEN
        # Machines the cloud can still make, and machines the account may have.
        self.capacity = 10
        self.quota = 10
        # While set, every call fails as an overloaded API's would.
        self.unavailable = False
        self.machines: dict[str, dict] = {}
        self.made_for: dict[str, str] = {}
        self.ids = itertools.count(1)
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.unavailable:
            return error(503, "unavailable", "try again later")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return error(401, "unauthorized", "the token is not valid")
        path = request.url.path.removeprefix("/v1")
        if (request.method, path) == ("GET", "/instance-types"):
            return httpx.Response(200, json={"instance_types": [self.catalog()]})
        if (request.method, path) == ("GET", "/instances"):
            return httpx.Response(200, json={"instances": list(self.machines.values())})
        if (request.method, path) == ("POST", "/instances"):
            return self.create(json.loads(request.content))
        if request.method == "DELETE" and path.startswith("/instances/"):
            if self.machines.pop(path.removeprefix("/instances/"), None) is None:
                return error(404, "not_found", f"no instance {path}")
            self.capacity += 1
            return httpx.Response(204)
        return error(404, "not_found", f"no route {request.method} {path}")

    def catalog(self) -> dict:
        regions = ["east", "west"] if self.capacity else []
        return {
            "name": "gpu-8x",
            "gpus": 8,
            "gpu_model": "NVIDIA H100 80GB HBM3",
            "price_per_hour": 24.0,
            "regions_with_capacity": regions,
        }

    def create(self, body: dict) -> httpx.Response:
        earlier = self.made_for.get(body["client_token"])
        if earlier in self.machines:
            return httpx.Response(200, json=self.machines[earlier])
        if len(self.machines) >= self.quota:
            return error(403, "quota_exceeded", f"the account may have {self.quota} machines")
        if self.capacity <= 0:
            return error(409, "insufficient_capacity", f"no {body['type']} free")
        self.capacity -= 1
        machine = {
            "id": f"ex-{next(self.ids)}",
            "type": body["type"],
            "region": body["region"],
            "status": "running",
            "labels": body["labels"],
        }
        self.machines[machine["id"]] = machine
        self.made_for[body["client_token"]] = machine["id"]
        return httpx.Response(201, json=machine)


def error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})
