"""The `[providers.NAME]` table of a provider of `type = "aws"`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import attrs
from attrs import field, frozen

from navarch.plugins import ConfigValueError, validators


def _ids(prefix: str, example: str) -> validators.Validator:
    """Every id in the value (one, a list, or a table's values) starts with `prefix`."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, str):
            found: Iterable[tuple[str, str]] = [(attribute.name, value)] if value else []
        elif isinstance(value, Mapping):
            found = [(_key_path(attribute.name, key), item) for key, item in value.items()]
        else:
            found = [(f"{attribute.name}[{i}]", item) for i, item in enumerate(value)]
        for where, item in found:
            if not item.startswith(prefix):
                raise ConfigValueError(f'{where}: expected an id such as "{example}", got "{item}"')

    return check


def _key_path(name: str, key: str) -> str:
    """`name.key`, the key quoted where TOML would quote it (`prices."p5.48xlarge"`)."""
    bare = key.replace("_", "").replace("-", "").isalnum()
    return f"{name}.{key}" if bare else f'{name}."{key}"'


def _prices(_inst: object, attribute: attrs.Attribute[Any], value: Mapping[str, float]) -> None:
    for name, price in value.items():
        if not math.isfinite(price) or price < 0:
            raise ConfigValueError(
                f"{_key_path(attribute.name, name)}: expected a price per hour of 0 or more, "
                f"got {price:g}"
            )


@frozen(kw_only=True)
class AwsSettings:
    # A profile of the shared AWS files (~/.aws/config); empty follows the standard chain:
    # environment, AWS_PROFILE or the default profile, then the instance role.
    profile: str = ""
    # Another EC2 endpoint, such as a VPC endpoint or a fake of EC2 in tests; empty uses AWS's.
    endpoint_url: str = field(default="", validator=validators.optional_url)
    # The AMI that machines boot, in every region that `images` does not name.
    image_id: str = field(default="", validator=_ids("ami-", "ami-0123456789abcdef0"))
    # The AMI by region; AMI ids differ between regions.
    images: dict[str, str] = field(factory=dict, validator=_ids("ami-", "ami-0123456789abcdef0"))
    # An EC2 key pair for SSH; empty launches machines without one.
    key_name: str = ""
    security_group_ids: tuple[str, ...] = field(
        default=(), validator=_ids("sg-", "sg-0123456789abcdef0")
    )
    # The subnet by availability zone, for requests that name a zone; a request without a zone,
    # or for a zone not listed, goes to the default VPC.
    subnets: dict[str, str] = field(
        factory=dict, validator=_ids("subnet-", "subnet-0123456789abcdef0")
    )
    # An instance profile name, or its ARN, that gives the machines an IAM role.
    iam_instance_profile: str = ""
    # The regions that `list()` and the catalog look in, besides those this provider has
    # provisioned into since it started. Empty means the regions of `images` and the session's
    # region; set it when pools use several regions, so that machines are found after a restart.
    regions: tuple[str, ...] = ()
    # USD per hour by instance type, over the built-in on-demand prices; a type listed here that
    # the built-in table lacks joins the catalog.
    prices: dict[str, float] = field(factory=dict, validator=_prices)
    # How long one EC2 call may take to connect, and to answer.
    request_timeout: timedelta = field(default=timedelta(seconds=30), validator=validators.positive)

    def image_for(self, region: str) -> str:
        return self.images.get(region, self.image_id)
