"""The control-plane service, callable in process or through the HTTP app in `navarch.api.app`."""

from navarch.controlplane.auth import Caller
from navarch.controlplane.service import HEARTBEAT_LOST, ControlPlane

__all__ = ["HEARTBEAT_LOST", "Caller", "ControlPlane"]
