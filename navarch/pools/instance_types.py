"""Abstract instance types (`h100-8x`) and each provider type's name for them.

The mapping is keyed by the provider's plugin type (`lambda`, `gcp`, `aws`), not by the name of
its `[providers.NAME]` table, so a table called `gcp-us` with `type = "gcp"` maps like any other
GCP account. A pool's provider entry may override the name with its own `instance_type`.
"""

from __future__ import annotations

# Abstract name -> provider type -> that provider's instance type. A type a provider does not
# offer is missing rather than mapped to a near match: an L4 is not an A10.
INSTANCE_TYPES: dict[str, dict[str, str]] = {
    "h100-8x": {"lambda": "gpu_8x_h100_sxm5", "gcp": "a3-highgpu-8g", "aws": "p5.48xlarge"},
    "h100-1x": {"lambda": "gpu_1x_h100_pcie", "gcp": "a3-highgpu-1g", "aws": "p5.4xlarge"},
    "a100-8x": {"lambda": "gpu_8x_a100", "gcp": "a2-highgpu-8g", "aws": "p4d.24xlarge"},
    "a100-4x": {"lambda": "gpu_4x_a100", "gcp": "a2-highgpu-4g"},
    "a100-1x": {"lambda": "gpu_1x_a100", "gcp": "a2-highgpu-1g"},
    "a10-1x": {"lambda": "gpu_1x_a10", "aws": "g5.xlarge"},
    "l4-1x": {"gcp": "g2-standard-4", "aws": "g6.xlarge"},
}


def resolve_instance_type(name: str, provider_type: str, override: str = "") -> str:
    """The provider's own name for a pool's instance type.

    An entry's override wins; a name that is not abstract, or that this provider type does not
    map, passes through unchanged (the fake provider takes abstract names as they are).
    """
    if override:
        return override
    return INSTANCE_TYPES.get(name, {}).get(provider_type, name)
