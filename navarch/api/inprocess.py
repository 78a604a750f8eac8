"""A client that calls a control plane in this process: no sockets, no JSON, the same rules.

The fake provider's machines and the simulator's fleet run hundreds of daemons in one process;
each talks to the service through the API's method table (`navarch.api.methods.call`), so it is
authorized and answered exactly as it would be over HTTP.

A command long poll waits in process instead: the poll is answered at once, and when no command
was due the client sleeps on the command queue until one is (queued, or due again), then asks
once more. Over HTTP the same poll is held up to the server's longest poll and asked again; in
process, where nothing times out, thousands of idle nodes would otherwise wake every 20 seconds
of (virtual) time for nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar, cast

import attrs

from navarch.api import wire as w
from navarch.api.client import Methods
from navarch.api.methods import METHODS, authenticate, call
from navarch.controlplane import Caller, ControlPlane
from navarch.durations import parse_duration

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
        if isinstance(request, w.GetNodeCommandsRequest) and _long(request.wait):
            return cast(R, await self._poll(request))
        return await self._once(method, request, response_cls)

    async def _once(self, method: str, request: object, response_cls: type[R]) -> R:
        caller = self._caller
        if caller is None:
            caller = authenticate(self._service, f"Bearer {self._token}" if self._token else None)
        response: R = await call(self._service, METHODS[method], request, caller)
        return response

    async def _poll(self, request: w.GetNodeCommandsRequest) -> w.GetNodeCommandsResponse:
        """A long poll: the node's due commands, waiting in process (no deadline) while none is.

        The first call answers at once and proves the caller may poll; the wait ends when a
        command is due or the control plane stops its long polls."""
        now = attrs.evolve(request, wait="0s")
        reply = await self._once("GetNodeCommands", now, w.GetNodeCommandsResponse)
        if reply.commands:
            return reply
        await self._service.queue.until_due(request.node_id)
        return await self._once("GetNodeCommands", now, w.GetNodeCommandsResponse)


def _long(wait: str) -> bool:
    """Whether a poll asks to wait; one whose wait does not parse goes to the service as it is,
    which refuses it as over HTTP."""
    try:
        return parse_duration(wait) > timedelta(0)
    except (ValueError, OverflowError):
        return False
