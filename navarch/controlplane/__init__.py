"""The control-plane service (`ControlPlane`), in the domain's terms; `navarch.api` serves it."""

from navarch.controlplane.auth import Caller
from navarch.controlplane.service import ControlPlane

__all__ = ["Caller", "ControlPlane"]
