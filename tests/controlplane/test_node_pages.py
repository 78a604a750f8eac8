"""Properties of the node listing's pages: every order pages through every match once, in order,
and no token a caller makes up gets anything but `invalid_argument`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from navarch.clock import Clock
from navarch.controlplane.book import NodeBook
from navarch.controlplane.node_pages import ORDERS, NodeOrder, NodePages
from navarch.controlplane.nodes import NodeFilter
from navarch.errors import InvalidArgument
from navarch.ids import IdFactory
from navarch.model import GpuInfo, HealthStatus, Node, NodeStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_NAMES = st.text("abAB-1", min_size=1, max_size=4)


@st.composite
def fleets(draw: Any) -> tuple[list[Node], dict[str, datetime]]:
    ids = draw(st.lists(_NAMES, unique=True, max_size=25))
    nodes = [
        Node(
            node_id=node_id,
            status=draw(st.sampled_from(NodeStatus)),
            health=draw(st.sampled_from(HealthStatus)),
            hostname=draw(_NAMES),
            pool=draw(st.sampled_from(["", "a", "b"])),
            labels=draw(st.dictionaries(_NAMES, _NAMES, max_size=2)),
            gpus=tuple(GpuInfo(index=i, uuid=f"G{i}") for i in range(draw(st.integers(0, 3)))),
        )
        for node_id in ids
    ]
    beats = {
        n.node_id: T0 + timedelta(seconds=draw(st.integers(0, 5)))
        for n in nodes
        if draw(st.booleans())
    }
    return nodes, beats


def _pages(nodes: list[Node]) -> NodePages:
    # The listing reads the book's nodes alone; the store and clock are never used.
    book = NodeBook(None, Clock(), IdFactory(), 30.0)  # type: ignore[arg-type]
    for node in nodes:
        book.put(node)
    return NodePages(book)


def _value(node: Node, by: str, beats: dict[str, datetime]) -> Any:
    return {
        "id": (),
        "hostname": node.hostname,
        "status": list(NodeStatus).index(node.status),
        "health": node.health.rank,
        "pool": node.pool,
        "provider": node.provider,
        "region": node.region,
        "last_heartbeat": beats.get(node.node_id, datetime.min.replace(tzinfo=UTC)),
        "gpus": len(node.gpus),
    }[by]


@settings(max_examples=200, deadline=None)
@given(
    fleet=fleets(),
    by=st.sampled_from(ORDERS),
    descending=st.booleans(),
    size=st.integers(1, 7),
    query=st.sampled_from(["", "a", "B", "-1"]),
)
def test_every_order_pages_through_every_match_once(
    fleet: tuple[list[Node], dict[str, datetime]],
    by: str,
    descending: bool,
    size: int,
    query: str,
) -> None:
    nodes, beats = fleet
    pages = _pages(nodes)
    order = NodeOrder(by, descending)
    seen: list[str] = []
    token = ""
    while True:
        page = pages.page(NodeFilter(), query, order, size, token, beats)
        seen += [n.node_id for n in page.nodes]
        token = page.next_token
        if not token:
            break
    expected = sorted(
        (
            n
            for n in nodes
            if query.casefold()
            in "\n".join([n.node_id, n.hostname, *n.labels, *n.labels.values()]).casefold()
        ),
        key=lambda n: (_value(n, by, beats), n.node_id),
        reverse=descending,
    )
    assert seen == [n.node_id for n in expected]
    assert page.total == len(expected)
    everything = pages.page(NodeFilter(), query, order, 0, "", beats)
    assert [n.node_id for n in everything.nodes] == seen


@settings(max_examples=300, deadline=None)
@given(token=st.text(max_size=60) | st.binary(max_size=60).map(lambda b: b.hex()))
def test_a_made_up_token_is_refused_naming_the_field(token: str) -> None:
    pages = _pages([Node(node_id="n1", status=NodeStatus.ACTIVE, health=HealthStatus.HEALTHY)])
    for by in ORDERS:
        try:
            pages.page(NodeFilter(), "", NodeOrder(by), 5, token, {})
        except InvalidArgument as exc:
            assert str(exc).startswith("pageToken: ")


@pytest.mark.parametrize("text", ["speed", "-", "--id", "id-", "ID"])
def test_an_unknown_order_lists_the_orders(text: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        NodeOrder.parse(text)
    assert str(refused.value) == (
        "orderBy: expected one of id, hostname, status, health, pool, provider, region, "
        f"last_heartbeat, gpus, with '-' before it to sort descending, got {text!r}"
    )
