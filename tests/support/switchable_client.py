"""An in-process client that can lose its way to the control plane, as a network can."""

from __future__ import annotations

import collections
from typing import Any

import trio

from navarch.api.client import Unreachable
from navarch.api.inprocess import InProcessClient
from navarch.controlplane import Caller, ControlPlane


class SwitchableClient:
    """An in-process client whose route to the control plane a test can cut and restore.

    While `down`, every call fails as a refused connection does over HTTP. `fail_methods` fails
    only the named methods. `calls` counts the calls that reached the service.
    """

    def __init__(self, service: ControlPlane, caller: Caller | None = None) -> None:
        self.caller = caller
        self.inner = InProcessClient(service, caller or Caller.admin())
        self.down = False
        self.fail_methods: set[str] = set()
        self.calls: collections.Counter[str] = collections.Counter()
        self.attempts: collections.Counter[str] = collections.Counter()

    def retarget(self, service: ControlPlane) -> None:
        """Points the client at another control plane, as a DNS change or a failover would."""
        self.inner = InProcessClient(service, self.caller or Caller.admin())

    def set_token(self, token: str) -> None:
        self.inner.set_token(token)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        wire = "".join(part.capitalize() for part in name.split("_"))

        async def call(request: Any) -> Any:
            self.attempts[wire] += 1
            await trio.lowlevel.checkpoint()
            if self.down or wire in self.fail_methods:
                raise Unreachable("inproc://control-plane", "connection refused")
            self.calls[wire] += 1
            return await method(request)

        return call
