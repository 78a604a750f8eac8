"""A navarch provider for Google Compute Engine: GPU machines (A3, A2, G2), on demand or spot."""

from __future__ import annotations

from navarch.plugins import Register, hookimpl
from navarch_gcp.provider import GcpProvider
from navarch_gcp.settings import GcpSettings

__all__ = ["GcpProvider", "GcpSettings"]


@hookimpl
def navarch_providers(register: Register) -> None:
    register("gcp", GcpProvider)
