"""A navarch provider for Example Cloud, whose HTTP API makes, lists and deletes GPU machines."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from attrs import field, frozen

from navarch.plugins import (
    POOL_LABEL,
    AuthError,
    CapacityError,
    Instance,
    InstanceNotFound,
    InstanceState,
    InstanceType,
    ProviderError,
    ProvisionRequest,
    QuotaError,
    TransientError,
    hookimpl,
    validators,
)

# The API's statuses of a machine that is wanted; navarch no longer sees one that is stopping.
STATES = {"pending": InstanceState.PROVISIONING, "running": InstanceState.RUNNING}


@frozen(kw_only=True)
class ExampleSettings:
    url: str = field(default="https://api.example.com/v1", validator=validators.url)
    # The environment variable that holds the API token.
    token_env: str = "EXAMPLE_API_TOKEN"
    # Where a request that names no region goes.
    region: str = "east"
    timeout: timedelta = field(default=timedelta(seconds=30), validator=validators.positive)


class ExampleProvider:
    Settings = ExampleSettings

    def __init__(self, settings: ExampleSettings, *, transport: Any = None) -> None:
        self.settings = settings
        # Tests hand in a fake of the API (an httpx transport); navarch passes none.
        self._transport = transport

    async def provision(self, request: ProvisionRequest) -> Instance:
        body = {
            "type": request.instance_type,
            "region": request.region or self.settings.region,
            "labels": request.labels,
            # The API makes one machine per client token, so a retried request makes no other.
            "client_token": request.request_id,
        }
        return self._instance(await self._call("POST", "/instances", json=body))

    async def terminate(self, instance_id: str) -> None:
        await self._call("DELETE", f"/instances/{instance_id}")

    async def list(self) -> Sequence[Instance]:
        found = await self._call("GET", "/instances")
        return [
            self._instance(machine)
            for machine in found["instances"]
            if POOL_LABEL in machine["labels"] and machine["status"] in STATES
        ]

    async def instance_types(self) -> Sequence[InstanceType]:
        found = await self._call("GET", "/instance-types")
        return [
            InstanceType(
                name=entry["name"],
                gpu_count=entry["gpus"],
                gpu_type=entry["gpu_model"],
                price_per_hour=entry["price_per_hour"],
                available_regions=tuple(entry["regions_with_capacity"]),
            )
            for entry in found["instance_types"]
        ]

    def _instance(self, machine: dict[str, Any]) -> Instance:
        return Instance(
            instance_id=machine["id"],
            provider="example",
            instance_type=machine["type"],
            state=STATES[machine["status"]],
            region=machine["region"],
            pool=machine["labels"].get(POOL_LABEL, ""),
            labels=machine["labels"],
        )

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx  # here, so that loading the plugin keeps every navarch command fast

        token = os.environ.get(self.settings.token_env, "")
        async with httpx.AsyncClient(
            base_url=self.settings.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=self.settings.timeout.total_seconds(),
            transport=self._transport,
        ) as http:
            try:
                response = await http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise TransientError(f"example: {method} {path}: {exc}") from exc
        if response.is_success:
            return response.json() if response.content else None
        try:
            error = response.json()["error"]
            code, message = error["code"], error["message"]
        except (ValueError, KeyError, TypeError):  # not the API's own error: a proxy's, say
            code, message = "", response.text[:200]
        raise _error(response.status_code, code, f"example: {method} {path}: {message}")


def _error(status: int, code: str, message: str) -> ProviderError:
    """The kind of navarch error that tells the core how to react to the API's error."""
    if code == "insufficient_capacity":
        return CapacityError(message)
    if code == "quota_exceeded":
        return QuotaError(message)
    if status in (401, 403):
        return AuthError(message)
    if status == 404:
        return InstanceNotFound(message)
    if status == 429 or status >= 500:
        return TransientError(message)
    return ProviderError(message)


@hookimpl
def navarch_providers(register: Any) -> None:
    register("example", ExampleProvider)
