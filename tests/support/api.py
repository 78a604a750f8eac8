"""Calling a control plane in process through its API, as the HTTP app and in-process clients do."""

from __future__ import annotations

from typing import Any

from navarch.api.methods import METHODS, call
from navarch.controlplane import Caller, ControlPlane

_BY_REQUEST = {method.request: method for method in METHODS.values()}
ADMIN = Caller.admin()


async def rpc(service: ControlPlane, request: Any, caller: Caller = ADMIN) -> Any:
    """The reply to a wire request, authorized and checked exactly as over HTTP."""
    return await call(service, _BY_REQUEST[type(request)], request, caller)
