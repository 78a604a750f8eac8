"""The in-process control plane of navarch.testing: a fake pool, driven through the real API."""

from __future__ import annotations

import trio

from navarch.api import wire as m
from navarch.testing import control_plane

CONFIG = """
[providers.fake]

[pools.dev]
instance_type = "h100-8x"
min_nodes = 1
max_nodes = 4
scale_interval = "10s"
labels = { team = "ml" }

[[pools.dev.providers]]
provider = "fake"
"""


async def active_nodes(client) -> list[m.Node]:
    listed = await client.list_nodes(
        m.ListNodesRequest(pool="dev", statuses=(m.NodeStatus.NODE_STATUS_ACTIVE,))
    )
    return list(listed.nodes)


async def test_a_fake_pool_scales_up_and_its_nodes_register(tmp_path, autojump_clock):
    async with control_plane(CONFIG, path=tmp_path / "navarch.db") as plane:
        with trio.fail_after(600):
            while len(await active_nodes(plane.client)) < 1:
                await trio.sleep(1)
            await plane.client.scale_pool(
                m.ScalePoolRequest(name="dev", target=3, reason="more work")
            )
            while len(await active_nodes(plane.client)) < 3:
                await trio.sleep(1)
        nodes = await active_nodes(plane.client)
    assert {n.provider for n in nodes} == {"fake"}
    assert all(n.labels["team"] == "ml" and len(n.gpus) == 8 for n in nodes)
    assert len({n.node_id for n in nodes}) == 3


async def test_the_store_outlives_the_control_plane(tmp_path, autojump_clock):
    path = tmp_path / "navarch.db"
    async with control_plane(CONFIG, path=path) as plane:
        with trio.fail_after(600):
            while not await active_nodes(plane.client):
                await trio.sleep(1)
        [first] = await active_nodes(plane.client)
    async with control_plane(plane.config, path=path) as plane:
        reply = await plane.client.get_node(m.GetNodeRequest(node_id=first.node_id))
    assert reply.node.pool == "dev"
