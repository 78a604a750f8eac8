"""The AWS provider: GPU machines from EC2, on demand or spot, in one or more regions."""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from navarch.plugins import (
    POOL_LABEL,
    Instance,
    InstanceNotFound,
    InstanceState,
    InstanceType,
    ProviderError,
    ProvisionRequest,
)
from navarch_aws.catalog import ABSTRACT_TYPES, GPUS, PRICES, Gpus, catalog, gpus_from_description
from navarch_aws.ec2 import Ec2
from navarch_aws.instances import REQUEST_ID_TAG, instance_of, state_of
from navarch_aws.settings import AwsSettings

# The region at the front of an availability zone's name: us-east-1 of us-east-1a, and of the
# Local Zone us-east-1-bos-1a.
_REGION_OF_ZONE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+")
# Instance types and their offerings change seldom; the catalog is asked for every round.
_CATALOG_TTL_S = 3600.0


class AwsProvider:
    Settings = AwsSettings
    supports_spot = True

    def __init__(self, settings: AwsSettings) -> None:
        self.settings = settings
        self._ec2 = Ec2(settings)
        # Regions this provider provisioned into, which `list()` looks in too.
        self._used_regions: dict[str, None] = {}
        # Where each instance it has seen is, so that terminate calls the right region.
        self._region_of: dict[str, str] = {}
        # Instances navarch terminated, which `list()` leaves out: EC2 describes an ended
        # instance for about an hour (one the cloud had taken back as PREEMPTED), and may
        # describe it as running for a moment after TerminateInstances.
        self._ended: set[str] = set()
        self._catalog: builtins.list[InstanceType] = []
        self._catalog_at = -_CATALOG_TTL_S

    def instance_type_for(self, name: str) -> str:
        return ABSTRACT_TYPES.get(name, name)

    def check(self) -> Sequence[str]:
        problems = self._ec2.credential_problems()
        regions = list(self.settings.regions)
        if not regions:
            region = self._ec2.session_region()
            if region:
                regions.append(region)
            elif region is not None:  # None: the profile is missing, which is said already
                problems.append(
                    "no AWS region: set regions, AWS_DEFAULT_REGION or the profile's region"
                )
        for region in regions:
            if not self.settings.image_for(region):
                problems.append(
                    f"no image for {region}: set image_id, or images.{region}, to an AMI there"
                )
        return problems

    async def provision(self, request: ProvisionRequest) -> Instance:
        region = await self._region_for(request)
        image = self.settings.image_for(region)
        if not image:
            raise ProviderError(f"aws: no image for {region}: set image_id, or images.{region}")
        self._used_regions[region] = None
        # EC2 makes one instance per client token; a fake of EC2 may not, and a token expires,
        # so a retried request first looks for the instance tagged with its id.
        earlier = await self._made_for(region, request.request_id)
        if earlier is not None:
            return earlier
        params = self._launch(request, image)
        reply = await self._ec2.call(
            region, "RunInstances", lambda ec2: ec2.run_instances(**params)
        )
        launched = (reply.get("Instances") or [None])[0]
        if not isinstance(launched, dict) or not launched.get("InstanceId"):
            raise ProviderError(f"aws: RunInstances in {region} returned no instance")
        self._region_of[launched["InstanceId"]] = region
        running = state_of(launched) is InstanceState.RUNNING
        instance = instance_of(
            launched, region, InstanceState.RUNNING if running else InstanceState.PROVISIONING
        )
        return attrs.evolve(
            instance,
            instance_type=request.instance_type,
            zone=instance.zone or request.zone,
            pool=request.pool,
            labels=dict(request.labels),
            spot=request.spot,
        )

    def _launch(self, request: ProvisionRequest, image: str) -> dict[str, Any]:
        """RunInstances' parameters for the request."""
        tags = {**request.labels, POOL_LABEL: request.pool, "Name": request.name}
        if request.request_id:
            tags[REQUEST_ID_TAG] = request.request_id
        params: dict[str, Any] = {
            "ImageId": image,
            "InstanceType": request.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
                }
            ],
        }
        if request.request_id:
            params["ClientToken"] = request.request_id
        if request.zone:
            params["Placement"] = {"AvailabilityZone": request.zone}
            if request.zone in self.settings.subnets:
                params["SubnetId"] = self.settings.subnets[request.zone]
        if request.user_data:
            params["UserData"] = request.user_data
        if request.spot:
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                },
            }
        if self.settings.key_name:
            params["KeyName"] = self.settings.key_name
        if self.settings.security_group_ids:
            params["SecurityGroupIds"] = list(self.settings.security_group_ids)
        profile = self.settings.iam_instance_profile
        if profile:
            key = "Arn" if profile.startswith("arn:") else "Name"
            params["IamInstanceProfile"] = {key: profile}
        return params

    async def _made_for(self, region: str, request_id: str) -> Instance | None:
        if not request_id:
            return None
        filters = [
            {"Name": f"tag:{REQUEST_ID_TAG}", "Values": [request_id]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
        found = await self._describe(region, filters)
        return found[0] if found else None

    async def terminate(self, instance_id: str) -> None:
        await self._in_region_of(
            instance_id,
            "TerminateInstances",
            lambda ec2: ec2.terminate_instances(InstanceIds=[instance_id]),
        )
        self._ended.add(instance_id)

    async def reboot(self, instance_id: str) -> None:
        """Asks EC2 to reboot the instance (`RebootInstances`), which keeps its volumes, its
        addresses and its id. EC2 asks the operating system to reboot, and reboots the instance
        hard when it has not shut down within a few minutes."""
        if instance_id in self._ended:
            raise InstanceNotFound(f"aws: instance {instance_id} was terminated")
        await self._in_region_of(
            instance_id,
            "RebootInstances",
            lambda ec2: ec2.reboot_instances(InstanceIds=[instance_id]),
        )

    async def _in_region_of(
        self, instance_id: str, what: str, operation: Callable[[Any], object]
    ) -> None:
        """`operation` in the instance's region, or in each region until one knows it."""
        known = self._region_of.get(instance_id)
        regions = [known] if known else await self._regions()
        for region in regions:
            try:
                await self._ec2.call(region, what, operation)
            except InstanceNotFound:
                continue
            return
        where = ", ".join(regions) or "any region"
        raise InstanceNotFound(f"aws: no instance {instance_id} in {where}")

    async def list(self) -> Sequence[Instance]:
        filters = [{"Name": "tag-key", "Values": [POOL_LABEL]}]
        found: builtins.list[Instance] = []
        seen: set[str] = set()
        for region in await self._regions():
            # Right after TerminateInstances, EC2 may still describe the instance as running.
            found.extend(
                instance
                for instance in await self._describe(region, filters, seen)
                if instance.instance_id not in self._ended
            )
        self._ended &= seen
        return found

    async def _describe(
        self, region: str, filters: builtins.list[dict[str, Any]], seen: set[str] | None = None
    ) -> builtins.list[Instance]:
        """The instances DescribeInstances reports in `region`, every page of them; the ids of
        those ending, listed or not, go into `seen`."""

        def describe(ec2: Any) -> builtins.list[dict[str, Any]]:
            pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
            return [
                instance
                for page in pages
                for reservation in page.get("Reservations") or []
                for instance in reservation.get("Instances") or []
            ]

        instances = []
        for description in await self._ec2.call(region, "DescribeInstances", describe):
            instance_id = description.get("InstanceId")
            if not instance_id:
                continue
            if seen is not None:
                seen.add(instance_id)
            state = state_of(description)
            if state is None:
                continue
            self._region_of[instance_id] = region
            instances.append(instance_of(description, region, state))
        return instances

    async def instance_types(self) -> Sequence[InstanceType]:
        import trio  # here, so that loading the plugin keeps navarch fast

        if trio.current_time() - self._catalog_at < _CATALOG_TTL_S:
            return self._catalog
        names = list(dict.fromkeys([*GPUS, *PRICES, *self.settings.prices]))
        regions = await self._regions()
        described: dict[str, Gpus] = {}
        offered: dict[str, builtins.list[str]] = {}
        if regions:
            reply = await self._ec2.call(
                regions[0],
                "DescribeInstanceTypes",
                lambda ec2: ec2.describe_instance_types(InstanceTypes=names),
            )
            for entry in reply.get("InstanceTypes") or []:
                gpus = gpus_from_description(entry)
                if gpus is not None:
                    described[str(entry.get("InstanceType"))] = gpus
        for region in regions:
            reply = await self._ec2.call(
                region,
                "DescribeInstanceTypeOfferings",
                lambda ec2: ec2.describe_instance_type_offerings(
                    LocationType="region",
                    Filters=[{"Name": "instance-type", "Values": names}],
                ),
            )
            for offering in reply.get("InstanceTypeOfferings") or []:
                offered.setdefault(str(offering.get("InstanceType")), []).append(region)
        self._catalog = catalog(names, described, self.settings.prices, offered)
        self._catalog_at = trio.current_time()
        return self._catalog

    async def _region_for(self, request: ProvisionRequest) -> str:
        if request.region:
            return request.region
        match = _REGION_OF_ZONE.match(request.zone)
        if match:
            return match.group(0)
        if self.settings.regions:
            return self.settings.regions[0]
        region = await self._ec2.default_region()
        if not region:
            raise ProviderError(
                "aws: the request names no region, and there is no default: set regions, "
                "AWS_DEFAULT_REGION or the profile's region"
            )
        return region

    async def _regions(self) -> builtins.list[str]:
        """The regions to list instances in, and to describe the catalog of: `regions` or the
        defaults, and every region provisioned into, lest its machines be taken as lost."""
        if self.settings.regions:
            regions = [*self.settings.regions, *self._used_regions]
        else:
            default = await self._ec2.default_region()
            regions = [default, *self.settings.images, *self._used_regions]
        return [region for region in dict.fromkeys(regions) if region]
