"""A call whose commit the store fails changes nothing: not the store, and not what the control
plane holds in memory (its nodes, the node tokens it accepts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.api import rpc
from support.service import (
    ACTIVE,
    ADMIN,
    CORDON,
    issue,
    open_service,
    register,
    status,
)

from navarch.api import wire as m
from navarch.controlplane import Caller
from navarch.store import StoreError

JOIN = Caller("join")


class FailingCommits:
    """Makes the store's next `count` commits fail, as a disk that refuses a write would."""

    def __init__(self, service, count: int = 1) -> None:
        self._commit = service.store.commit
        self.count = count
        service.store.commit = self.commit

    async def commit(self, change):
        if self.count:
            self.count -= 1
            raise StoreError("disk I/O error")
        await self._commit(change)


async def nodes(service) -> list[str]:
    reply = await rpc(service, m.ListNodesRequest(), ADMIN)
    return [n.node_id for n in reply.nodes]


async def test_a_registration_the_store_refuses_leaves_no_node_and_no_token(
    tmp_path: Path, autojump_clock
) -> None:
    async with open_service(tmp_path / "db", join_token="join", admin_token="admin") as service:
        FailingCommits(service)
        # In process the store's error reaches the caller; over HTTP it is an `internal` 500.
        with pytest.raises(StoreError):
            await rpc(service, m.RegisterNodeRequest(node_id="gpu-1"), JOIN)
        assert await nodes(service) == []
        assert service.book.get("gpu-1") is None
        # Nothing of the failed call stands in the way of the next one.
        again = await rpc(service, m.RegisterNodeRequest(node_id="gpu-1"), JOIN)
        assert service.auth.authenticate(f"Bearer {again.node_token}") == Caller.node("gpu-1")


async def test_a_command_the_store_refuses_leaves_the_node_as_it_was(
    tmp_path: Path, autojump_clock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        FailingCommits(service)
        with pytest.raises(StoreError):
            await issue(service, "gpu-1", CORDON, "maintenance")
        assert await status(service, "gpu-1") is ACTIVE
        await issue(service, "gpu-1", CORDON, "maintenance")
        assert await status(service, "gpu-1") is m.NodeStatus.NODE_STATUS_CORDONED
