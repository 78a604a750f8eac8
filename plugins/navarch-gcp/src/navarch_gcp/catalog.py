"""The GPU machine types the provider knows: their GPUs, prices and navarch's names for them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from attrs import frozen

from navarch.plugins import InstanceType


@frozen
class MachineType:
    gpu_count: int
    gpu_type: str


# GPUs are built into the A2, A3 and G2 machine types (no guestAccelerators to attach).
MACHINE_TYPES: dict[str, MachineType] = {
    "a3-highgpu-8g": MachineType(8, "NVIDIA H100 80GB HBM3"),
    "a3-highgpu-1g": MachineType(1, "NVIDIA H100 80GB HBM3"),
    "a2-highgpu-8g": MachineType(8, "NVIDIA A100-SXM4-40GB"),
    "a2-highgpu-4g": MachineType(4, "NVIDIA A100-SXM4-40GB"),
    "a2-highgpu-1g": MachineType(1, "NVIDIA A100-SXM4-40GB"),
    "g2-standard-4": MachineType(1, "NVIDIA L4"),
}

# On-demand USD per hour in us-central1, GPUs, vCPUs and memory together, rounded to the cent:
# approximate list prices from Google's "VM instance pricing" page
# (cloud.google.com/compute/vm-instance-pricing) as of early 2025, to check against the page.
# Compute Engine's API reports no prices; other regions cost more, and the `prices` setting
# replaces any of these.
ON_DEMAND_PRICES: dict[str, float] = {
    "a3-highgpu-8g": 88.49,
    "a3-highgpu-1g": 11.06,
    "a2-highgpu-8g": 29.39,
    "a2-highgpu-4g": 14.69,
    "a2-highgpu-1g": 3.67,
    "g2-standard-4": 0.71,
}

# navarch's abstract instance types that Compute Engine has, by their machine type.
ABSTRACT_NAMES: dict[str, str] = {
    "h100-8x": "a3-highgpu-8g",
    "h100-1x": "a3-highgpu-1g",
    "a100-8x": "a2-highgpu-8g",
    "a100-4x": "a2-highgpu-4g",
    "a100-1x": "a2-highgpu-1g",
    "l4-1x": "g2-standard-4",
}


def instance_types(
    prices: Mapping[str, float], offered_in: Mapping[str, Iterable[str]]
) -> list[InstanceType]:
    """The catalog: every known machine type with its price (`prices` over the built-in ones)
    and the regions of the zones that offer it (`offered_in`, by machine type)."""
    return [
        InstanceType(
            name=name,
            gpu_count=machine.gpu_count,
            gpu_type=machine.gpu_type,
            price_per_hour=prices.get(name, ON_DEMAND_PRICES.get(name)),
            available_regions=tuple(sorted(set(offered_in.get(name, ())))),
        )
        for name, machine in MACHINE_TYPES.items()
    ]


def region_of(zone: str) -> str:
    """`us-central1` for the zone `us-central1-a`."""
    return zone.rsplit("-", 1)[0]
