"""Pages of the node listing: filtered, searched, sorted and cut by an opaque token.

The dashboard's node table shows a fleet of 10,000 nodes a page at a time. Every call filters and
sorts the book in memory, which takes a few milliseconds at that size, and cuts the page by keys
rather than by offset: the token holds the sort value and node id of the page's last row, so a
node that joins or leaves between two pages shifts no row of the next one. A node's search text
(its id, hostname and labels, folded to lower case) is kept until the node changes.

The token is base64url of a JSON list, the order first; it is opaque to callers, and one that
does not decode, or comes from another order, is refused naming `pageToken`.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from operator import attrgetter

from attrs import frozen

from navarch.controlplane.book import NodeBook
from navarch.controlplane.nodes import NodeFilter
from navarch.errors import InvalidArgument
from navarch.model import Node, NodeStatus

MAX_PAGE_SIZE = 1000
_EVERY_NODE = NodeFilter()

_Key = tuple[str | int | datetime, ...]
_STATUS_RANK = {status: rank for rank, status in enumerate(NodeStatus)}


# The last heartbeat of a node never heard from, which sorts first.
_NEVER = datetime.min.replace(tzinfo=UTC)

_Primary = Callable[[Node], str | int | datetime]
# Each order's sort value of a node, the node id aside; the last heartbeat is not on the node.
_PRIMARY: dict[str, _Primary | None] = {
    "id": None,
    "hostname": attrgetter("hostname"),
    "status": lambda node: _STATUS_RANK[node.status],
    "health": lambda node: node.health.rank,
    "pool": attrgetter("pool"),
    "provider": attrgetter("provider"),
    "region": attrgetter("region"),
    "last_heartbeat": None,
    "gpus": lambda node: len(node.gpus),
}
ORDERS = tuple(_PRIMARY)
# The types of each order's key, node id last, for checking a token.
_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "hostname": (str, str),
    "status": (int, str),
    "health": (int, str),
    "pool": (str, str),
    "provider": (str, str),
    "region": (str, str),
    "last_heartbeat": (datetime, str),
    "gpus": (int, str),
}


@frozen
class NodeOrder:
    """How a listing sorts: by one of ORDERS, ascending or descending."""

    by: str = "id"
    descending: bool = False

    @classmethod
    def parse(cls, text: str) -> NodeOrder:
        """`status`, `-last_heartbeat`; empty is by id. InvalidArgument names `orderBy`."""
        by = text.removeprefix("-")
        if not text:
            return cls()
        if by not in _PRIMARY:
            raise InvalidArgument(
                f"orderBy: expected one of {', '.join(ORDERS)}, with '-' before it to sort "
                f"descending, got {text[:40]!r}"
            )
        return cls(by, text.startswith("-"))

    def __str__(self) -> str:
        return ("-" if self.descending else "") + self.by


@frozen
class NodePage:
    """One page of a listing; `total` counts the matches over every page."""

    nodes: list[Node]
    next_token: str
    total: int


class NodePages:
    def __init__(self, book: NodeBook) -> None:
        self._book = book
        # node id -> (the node as it was, its search text)
        self._search: dict[str, tuple[Node, str]] = {}

    def page(
        self,
        which: NodeFilter,
        query: str,
        order: NodeOrder,
        size: int,
        token: str,
        heartbeats: Mapping[str, datetime],
    ) -> NodePage:
        """The page after `token` ("" for the first) of at most `size` nodes (0 for every
        match), with their latest heartbeats; `heartbeats` holds each node's last heartbeat
        time, for the order by it."""
        if not 0 <= size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"pageSize: expected 0 to {MAX_PAGE_SIZE}, got {size}")
        after = _decode(token, order) if token else None
        book = self._book
        empty = which == _EVERY_NODE
        matches = [node for node in book.nodes() if empty or which.matches(node)]
        if query:
            matches = self._searched(matches, query.casefold())
        # Sorted by node id, then by the order's value: the sort is stable, so ties keep node ids
        # in order.
        matches.sort(key=_node_id)
        primary = _PRIMARY[order.by]
        if order.by == "last_heartbeat":
            primary = lambda node: heartbeats.get(node.node_id, _NEVER)  # noqa: E731
        if primary is not None:
            matches.sort(key=primary)

        def key(node: Node) -> _Key:
            return (node.node_id,) if primary is None else (primary(node), node.node_id)

        total = len(matches)
        if order.descending:
            end = total if after is None else bisect.bisect_left(matches, after, key=key)
            start = 0 if size == 0 else max(0, end - size)
            rows = matches[start:end][::-1]
            more = start > 0
        else:
            start = 0 if after is None else bisect.bisect_right(matches, after, key=key)
            end = total if size == 0 else min(total, start + size)
            rows = matches[start:end]
            more = end < total
        next_token = _encode(order, key(rows[-1])) if more and rows else ""
        return NodePage([book.full(node) for node in rows], next_token, total)

    def _searched(self, nodes: list[Node], folded: str) -> list[Node]:
        kept = self._search
        fresh: dict[str, tuple[Node, str]] = {}
        found = []
        for node in nodes:
            cached = kept.get(node.node_id)
            if cached is None or cached[0] is not node:
                parts = [node.node_id, node.hostname, *node.labels.keys(), *node.labels.values()]
                # A new line never matches: the query may hold no control characters.
                cached = (node, "\n".join(parts).casefold())
            fresh[node.node_id] = cached
            if folded in cached[1]:
                found.append(node)
        # Only the nodes of the last search stay, so removed nodes leave the cache.
        self._search = fresh
        return found


def _node_id(node: Node) -> str:
    return node.node_id


def _encode(order: NodeOrder, key: _Key) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    text = json.dumps([str(order), *values], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(token: str, order: NodeOrder) -> _Key:
    bad = InvalidArgument(
        "pageToken: not a token of this listing; pass the nextPageToken of the previous page, "
        "or leave pageToken out for the first page"
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw.decode())
    except (binascii.Error, ValueError, RecursionError):  # RecursionError: "[[[[..."
        raise bad from None
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise bad
    try:
        NodeOrder.parse(value[0])
    except InvalidArgument:
        raise bad from None
    if value[0] != str(order):
        raise InvalidArgument(
            f"pageToken: the token is for orderBy {str(value[0])[:40]!r}, not {str(order)!r}; "
            "ask for the first page again"
        )
    types = _KEY_TYPES[order.by]
    if len(value) != len(types) + 1:
        raise bad
    key: list[str | int | datetime] = []
    for item, kind in zip(value[1:], types, strict=True):
        if kind is datetime and type(item) is str:
            try:
                item = datetime.fromisoformat(item)
            except ValueError:
                raise bad from None
            if item.tzinfo is None:
                raise bad
        elif type(item) is not kind:
            raise bad
        key.append(item)
    return tuple(key)
