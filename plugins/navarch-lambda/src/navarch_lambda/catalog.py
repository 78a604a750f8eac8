"""Lambda's instance types: navarch's abstract names mapped to them, and the API's catalog."""

from __future__ import annotations

from navarch.plugins import InstanceType
from navarch_lambda.reply import Reply

# navarch's abstract instance types that Lambda offers, by Lambda's names. Where Lambda sells
# two machines of one abstract type, the one that the other clouds' mappings match is chosen:
# `a100-8x` is the 40 GB SXM4 machine (GCP a2-highgpu-8g, AWS p4d.24xlarge), not Lambda's
# `gpu_8x_a100_80gb_sxm4`. Lambda has no L4, so `l4-1x` stays unmapped.
LAMBDA_TYPES = {
    "h100-8x": "gpu_8x_h100_sxm5",
    "h100-1x": "gpu_1x_h100_pcie",
    "a100-8x": "gpu_8x_a100",
    "a100-4x": "gpu_4x_a100",
    "a100-1x": "gpu_1x_a100",
    "a10-1x": "gpu_1x_a10",
}


def catalog(reply: Reply) -> list[InstanceType]:
    """The GPU instance types of a `GET /instance-types` reply. Lambda's CPU-only types, with no
    GPUs, are left out: navarch runs GPU machines."""
    types = []
    for _key, entry in reply["data"].items():
        offer = entry["instance_type"]
        gpus = offer["specs"]["gpus"].count()
        if not gpus:
            continue
        types.append(
            InstanceType(
                name=offer["name"].text(),
                gpu_count=gpus,
                gpu_type=offer["gpu_description"].text(),
                # The price is a field of `instance_type`, one level below the entry.
                price_per_hour=offer["price_cents_per_hour"].number() / 100,
                available_regions=tuple(
                    region["name"].text() for region in entry["regions_with_capacity_available"]
                ),
            )
        )
    return types
