"""A client that calls a control plane in this process: no sockets, no JSON, the same rules.

The fake provider's machines and the simulator's fleet run hundreds of daemons in one process;
each talks to the service through the API's method table (`navarch.api.methods.call`), so it is
authorized and answered exactly as it would be over HTTP.
"""

from __future__ import annotations

from typing import TypeVar

from navarch.api.client import Methods
from navarch.api.methods import METHODS, authenticate, call
from navarch.controlplane import Caller, ControlPlane

R = TypeVar("R")


class InProcessClient(Methods):
    """Calls a `ControlPlane` in this process: no sockets, no JSON, the same rules.

    It speaks as `caller` (for a simulated node, `Caller.node(node_id)`), or, after
    `set_token`, as whoever that token belongs to, checked on every call as over HTTP.
    """

    def __init__(self, service: ControlPlane, caller: Caller) -> None:
        self._service = service
        self._caller: Caller | None = caller
        self._token = ""

    def set_token(self, token: str) -> None:
        self._caller, self._token = None, token

    async def _call(self, method: str, request: object, response_cls: type[R]) -> R:
        caller = self._caller
        if caller is None:
            caller = authenticate(self._service, f"Bearer {self._token}" if self._token else None)
        response: R = await call(self._service, METHODS[method], request, caller)
        return response
