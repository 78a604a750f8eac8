"""The EC2 instance types navarch knows: abstract names, GPUs and on-demand prices."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from attrs import frozen

from navarch.plugins import InstanceType

# navarch's abstract instance types (navarch.plugins.ABSTRACT_INSTANCE_TYPES) that EC2 sells.
# EC2 has no 4x A100 or 1x A100 type, so those names stay unmapped; g5 carries the A10G, the
# A10's data-center variant.
ABSTRACT_TYPES = {
    "h100-8x": "p5.48xlarge",
    "h100-1x": "p5.4xlarge",
    "a100-8x": "p4d.24xlarge",
    "a10-1x": "g5.xlarge",
    "l4-1x": "g6.xlarge",
}


@frozen
class Gpus:
    count: int
    model: str


# The GPUs of the mapped types, for when DescribeInstanceTypes does not answer for one.
GPUS = {
    "p5.48xlarge": Gpus(8, "NVIDIA H100"),
    "p5.4xlarge": Gpus(1, "NVIDIA H100"),
    "p4d.24xlarge": Gpus(8, "NVIDIA A100"),
    "g5.xlarge": Gpus(1, "NVIDIA A10G"),
    "g6.xlarge": Gpus(1, "NVIDIA L4"),
}

# On-demand Linux prices in USD per hour in us-east-1, after AWS's June 2025 P4 and P5 price
# cuts, from the public price list (https://aws.amazon.com/ec2/pricing/on-demand/) as of mid-2025.
# They were not checked against the live page when written, and other regions differ: set
# `prices` to the rates the account pays.
PRICES = {
    "p5.48xlarge": 55.04,
    "p5.4xlarge": 6.88,
    "p4d.24xlarge": 21.96,
    "g5.xlarge": 1.006,
    "g6.xlarge": 0.8048,
}


def gpus_from_description(description: Mapping[str, Any]) -> Gpus | None:
    """The GPUs of one DescribeInstanceTypes entry; None for a type without GPUs."""
    gpus = (description.get("GpuInfo") or {}).get("Gpus") or []
    count = sum(int(gpu.get("Count") or 0) for gpu in gpus)
    if not count:
        return None
    first = gpus[0]
    model = " ".join(str(part) for part in (first.get("Manufacturer"), first.get("Name")) if part)
    return Gpus(count, model)


def catalog(
    names: Iterable[str],
    described: Mapping[str, Gpus],
    prices: Mapping[str, float],
    offered: Mapping[str, Iterable[str]],
) -> list[InstanceType]:
    """The catalog entries of `names` that have GPUs, described or from the built-in table."""
    entries = []
    for name in names:
        gpus = described.get(name) or GPUS.get(name)
        if gpus is None:
            continue
        entries.append(
            InstanceType(
                name=name,
                gpu_count=gpus.count,
                gpu_type=gpus.model,
                price_per_hour=prices.get(name, PRICES.get(name)),
                available_regions=tuple(sorted(offered.get(name, ()))),
            )
        )
    return entries
