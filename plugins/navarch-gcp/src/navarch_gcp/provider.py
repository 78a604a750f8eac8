"""The `gcp` provider: GPU machines from Google Compute Engine's REST API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from navarch.plugins import (
    Instance,
    InstanceNotFound,
    InstanceType,
    ProviderError,
    ProvisionRequest,
    TransientError,
)
from navarch_gcp import catalog
from navarch_gcp.compute import AlreadyExists, Compute, Missing, last_segment, need, open_compute
from navarch_gcp.credentials import CredentialsProblem, locate
from navarch_gcp.errors import ALREADY_EXISTS, NOT_FOUND
from navarch_gcp.instances import (
    MANAGED_FILTER,
    insert_body,
    instance_name,
    request_uuid,
    to_instance,
)
from navarch_gcp.settings import GcpSettings
from navarch_gcp.tokens import Tokens

# The core retries a request a few times within seconds; older failures need no memory.
_FAILED_INSERTS_KEPT = 256


class GcpProvider:
    Settings = GcpSettings
    supports_spot = True

    def __init__(self, settings: GcpSettings) -> None:
        self.settings = settings
        self._tokens = Tokens(settings)
        # The zone of each instance seen, so that terminate needs no search.
        self._zones: dict[str, str] = {}
        # Instances whose delete is under way; list() reports them TERMINATING.
        self._deleting: set[str] = set()
        # Request ids whose insert failed in passing, with how often. Compute Engine answers a
        # requestId it knows with that first, failed operation, so the core's retry of the
        # request sends a requestId of its own; the failed insert made nothing to duplicate.
        self._failed_inserts: dict[str, int] = {}

    def check(self) -> Sequence[str]:
        problems = []
        if not self.settings.project:
            problems.append("no GCP project: set project to the project that pays for the machines")
        try:
            locate(self.settings)
        except CredentialsProblem as exc:
            problems.append(str(exc))
        return problems

    def instance_type_for(self, name: str) -> str:
        return catalog.ABSTRACT_NAMES.get(name, name)

    async def provision(self, request: ProvisionRequest) -> Instance:
        if not request.zone:
            raise ProviderError(
                "gcp: Compute Engine makes machines in a zone; list zones in the pool's provider "
                'entry (zones = ["us-central1-a"])'
            )
        self._require_project()
        zone = request.zone
        name = instance_name(request.pool or request.name, request.request_id)
        what = f"insert {zone}/{name}"
        async with open_compute(self.settings, self._tokens) as api:
            try:
                operation = await api.call(
                    "POST",
                    f"/zones/{zone}/instances",
                    what=what,
                    params={"requestId": self._request_uuid(request.request_id)},
                    body=insert_body(self.settings, request, name, zone),
                )
            except AlreadyExists:
                pass
            else:
                failure = await api.wait(operation, what=what)
                if failure is not None and not failure.has(ALREADY_EXISTS):
                    error = failure.error(what)
                    if isinstance(error, TransientError):
                        self._note_failed_insert(request.request_id)
                    raise error
            # Made now, or by an earlier try of this request: the machine is the same.
            resource = await api.call("GET", f"/zones/{zone}/instances/{name}", what=f"get {name}")
        self._zones[name] = zone
        return self._instance(resource)

    async def terminate(self, instance_id: str) -> None:
        self._require_project()
        async with open_compute(self.settings, self._tokens) as api:
            zone = await self._zone_of(api, instance_id)
            self._deleting.add(instance_id)
            try:
                await self._follow(
                    api,
                    instance_id,
                    "DELETE",
                    f"/zones/{zone}/instances/{instance_id}",
                    what=f"delete {zone}/{instance_id}",
                )
            finally:
                self._deleting.discard(instance_id)
        self._zones.pop(instance_id, None)

    async def reboot(self, instance_id: str) -> None:
        """Resets the machine (`instances.reset`) and follows the operation to DONE. Compute
        Engine has no soft reboot in its API: a reset is a hard reset, like a machine's reset
        button, which keeps the disks, the name and the IP addresses, but loses what the
        operating system had not yet written to disk."""
        self._require_project()
        async with open_compute(self.settings, self._tokens) as api:
            zone = await self._zone_of(api, instance_id)
            await self._follow(
                api,
                instance_id,
                "POST",
                f"/zones/{zone}/instances/{instance_id}/reset",
                what=f"reset {zone}/{instance_id}",
            )

    async def list(self) -> Sequence[Instance]:
        self._require_project()
        async with open_compute(self.settings, self._tokens) as api:
            resources = await api.aggregated("instances", MANAGED_FILTER, "list instances")
        instances = [self._instance(resource) for resource in resources]
        self._zones.update({i.instance_id: i.zone for i in instances})
        return instances

    async def instance_types(self) -> Sequence[InstanceType]:
        """The known GPU machine types; a type's regions are those with a zone that offers it
        (Compute Engine tells which zones have a machine type, not whether one is free now)."""
        self._require_project()
        names = " OR ".join(f'(name = "{name}")' for name in catalog.MACHINE_TYPES)
        offered_in: dict[str, list[str]] = {}
        async with open_compute(self.settings, self._tokens) as api:
            for entry in await api.aggregated("machineTypes", names, "list machine types"):
                name = need(entry, "name", str, "a machine type")
                zone = need(entry, "zone", str, f"machine type {name}")
                offered_in.setdefault(name, []).append(catalog.region_of(last_segment(zone)))
        return catalog.instance_types(self.settings.prices, offered_in)

    def _instance(self, resource: dict[str, Any]) -> Instance:
        return to_instance(resource, "gcp", self._deleting)

    def _request_uuid(self, request_id: str) -> str:
        tries = self._failed_inserts.get(request_id, 0)
        return request_uuid(f"{request_id}#{tries}" if tries else request_id)

    def _note_failed_insert(self, request_id: str) -> None:
        self._failed_inserts[request_id] = self._failed_inserts.pop(request_id, 0) + 1
        while len(self._failed_inserts) > _FAILED_INSERTS_KEPT:
            del self._failed_inserts[next(iter(self._failed_inserts))]

    def _require_project(self) -> None:
        if not self.settings.project:
            raise ProviderError("gcp: no project; set project in the provider's table")

    async def _follow(
        self, api: Compute, instance_id: str, method: str, path: str, *, what: str
    ) -> None:
        """Calls an operation on the instance and follows it to DONE; raises `InstanceNotFound`
        when the machine is gone and the error of the kind the failure says otherwise."""
        try:
            operation = await api.call(method, path, what=what)
            failure = await api.wait(operation, what=what)
        except Missing as exc:
            self._zones.pop(instance_id, None)
            raise InstanceNotFound(str(exc)) from None
        if failure is None:
            return
        if failure.has(NOT_FOUND):
            self._zones.pop(instance_id, None)
            raise InstanceNotFound(f"gcp: {what}: {failure.message}")
        raise failure.error(what)

    async def _zone_of(self, api: Compute, name: str) -> str:
        """The zone of instance `name`, from what the provider saw or else a search."""
        zone = self._zones.get(name) or await self._find_zone(api, name)
        if zone is None:
            raise InstanceNotFound(f"gcp: no instance {name} in {self.settings.project}")
        return zone

    async def _find_zone(self, api: Compute, name: str) -> str | None:
        for resource in await api.aggregated("instances", f'name = "{name}"', f"find {name}"):
            if resource.get("name") == name:
                return last_segment(need(resource, "zone", str, f"instance {name}"))
        return None
