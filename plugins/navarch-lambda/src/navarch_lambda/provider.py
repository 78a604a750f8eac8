"""The Lambda provider: GPU machines through the Lambda Cloud API v1."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from navarch.plugins import (
    POOL_LABEL,
    CapacityError,
    Instance,
    InstanceType,
    ProviderError,
    ProvisionRequest,
)
from navarch_lambda import instances
from navarch_lambda.api import LambdaApi
from navarch_lambda.catalog import LAMBDA_TYPES, catalog
from navarch_lambda.settings import LambdaSettings, key_problem

_LAUNCH = "/instance-operations/launch"
_RESTART = "/instance-operations/restart"


class LambdaProvider:
    Settings = LambdaSettings
    # Lambda sells on-demand and reserved machines, no spot market.
    supports_spot = False

    def __init__(self, settings: LambdaSettings, *, transport: Any = None) -> None:
        import trio  # here, so that loading the plugin keeps every navarch command fast

        self.settings = settings
        self._api = LambdaApi(settings, transport=transport)
        # One launch at a time, and each try at least `launch_interval` after the one before.
        self._launching = trio.Lock()
        self._next_launch = -math.inf

    def check(self) -> Sequence[str]:
        problems = []
        missing_key = key_problem(self.settings)
        if missing_key:
            problems.append(missing_key)
        if not self.settings.ssh_key_name:
            problems.append(
                "no ssh_key_name: Lambda launches every instance with one SSH key; set it to the "
                "name of a key of the account"
            )
        return problems

    def instance_type_for(self, name: str) -> str:
        return LAMBDA_TYPES.get(name, name)

    async def provision(self, request: ProvisionRequest) -> Instance:
        if request.spot:
            raise ProviderError("lambda: Lambda sells no spot instances")
        if not self.settings.ssh_key_name:
            raise ProviderError("lambda: no ssh_key_name: Lambda launches with one SSH key")
        region = request.region or await self._region_for(request.instance_type)
        body: dict[str, object] = {
            "region_name": region,
            "instance_type_name": request.instance_type,
            "ssh_key_names": [self.settings.ssh_key_name],
            "name": instances.instance_name(request),
            "tags": instances.tags(request),
        }
        if self.settings.image_family:
            body["image"] = {"family": self.settings.image_family}
        if self.settings.file_systems:
            body["file_system_names"] = list(self.settings.file_systems)
        if request.user_data:
            body["user_data"] = request.user_data
        async with self._launching:
            instance_id = await self._api.retried(lambda: self._launch(request, body))
        found = await self._api.call("GET", f"/instances/{instance_id}", instance_call=True)
        return instances.instance(found["data"], "lambda")

    async def _launch(self, request: ProvisionRequest, body: dict[str, object]) -> str:
        """One try of a launch: the id of the machine that an earlier try of the request made,
        or of the one this try makes. Lambda does not refuse a second machine of one name, and
        a try that failed (a timeout, a 5xx) may have made one, so every try looks first."""
        import trio

        if request.request_id:
            listed = await self._api.once("GET", "/instances")
            for found in listed["data"]:
                if instances.name(found) == body["name"] and not instances.gone(found):
                    return found["id"].text()
        await trio.sleep_until(self._next_launch)
        try:
            launched = await self._api.once("POST", _LAUNCH, body=body)
        finally:
            # Counted from the answer, not the request, so that Lambda, which counts from when
            # a request arrives, sees the interval whatever the network's delays.
            interval = self.settings.launch_interval.total_seconds()
            self._next_launch = trio.current_time() + interval
        ids = [found.text() for found in launched["data"]["instance_ids"]]
        if not ids:
            raise ProviderError(
                f"lambda: POST {_LAUNCH}: data.instance_ids: expected an id, got none"
            )
        return ids[0]

    async def _region_for(self, instance_type: str) -> str:
        """A region with capacity for `instance_type`, for a request that names none."""
        for offer in await self.instance_types():
            if offer.name == instance_type:
                if not offer.available_regions:
                    raise CapacityError(f"lambda: no region has capacity for {instance_type}")
                return offer.available_regions[0]
        raise ProviderError(f"lambda: Lambda offers no instance type {instance_type!r}")

    async def terminate(self, instance_id: str) -> None:
        await self._api.call(
            "POST",
            "/instance-operations/terminate",
            body={"instance_ids": [instance_id]},
            instance_call=True,
        )

    async def reboot(self, instance_id: str) -> None:
        """Restarts the instance, which keeps its disk, its addresses and its id. Lambda
        answers once it has accepted the restart; asking again restarts the machine again."""
        restarted = await self._api.call(
            "POST", _RESTART, body={"instance_ids": [instance_id]}, instance_call=True
        )
        ids = [found["id"].text() for found in restarted["data"]["restarted_instances"]]
        if instance_id not in ids:
            raise ProviderError(
                f"lambda: POST {_RESTART}: data.restarted_instances: {instance_id} is not among "
                "the instances Lambda restarted"
            )

    async def list(self) -> Sequence[Instance]:
        listed = await self._api.call("GET", "/instances")
        return [
            instances.instance(found, "lambda")
            for found in listed["data"]
            if POOL_LABEL in instances.labels(found) and not instances.gone(found)
        ]

    async def instance_types(self) -> Sequence[InstanceType]:
        return catalog(await self._api.call("GET", "/instance-types"))
