"""Who is calling, and what they may do.

Five kinds of bearer token exist. The admin token (from the environment variable that
`[auth] admin_token_env` names) may call every method. A viewer token (`[auth] viewer_token_env`)
may call the methods that only read (List*, Get*); it, like the admin token, also signs in to the
dashboard. The join token (`[auth] join_token_env`)
may only call RegisterNode, which answers it with a node token: a fresh random token bound to that
node id. A node token may call the node methods for its own node and nothing else. A bootstrap
token (`nvb_...`, `navarch.pools.bootstrap`) is made for one new instance: it may ask which
instance it is, report the bootstrap's progress, and register that instance's node once. With
none of the admin, join and viewer tokens set, auth is off and every caller is anonymous and
allowed.

Only the SHA-256 of each token is kept, in memory and in the store; tokens are random 256-bit
values, so a plain hash is enough to make a stolen database useless for calling the API. A
presented token is hashed and compared with `hmac.compare_digest`. Node tokens are found by their
hash; that lookup reveals nothing, because nobody can choose a token with a given hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Literal

from attrs import frozen

from navarch.errors import Conflict, PermissionDenied, Unauthenticated
from navarch.pools.bootstrap import TokenHolder

Role = Literal["admin", "viewer", "join", "node", "bootstrap", "anonymous"]
# The roles a person signs in to the dashboard with.
DashboardRole = Literal["admin", "viewer"]


@frozen
class Caller:
    """The authenticated identity of one call."""

    role: Role
    # The node a node token is bound to; empty for the other roles.
    node_id: str = ""

    @classmethod
    def admin(cls) -> Caller:
        return cls("admin")

    @classmethod
    def node(cls, node_id: str) -> Caller:
        return cls("node", node_id)

    @classmethod
    def anonymous(cls) -> Caller:
        return cls("anonymous")

    @property
    def actor(self) -> str:
        """How events name this caller."""
        return f"node:{self.node_id}" if self.role == "node" else self.role


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_node_token() -> str:
    return "nvn_" + secrets.token_urlsafe(32)


class Authenticator:
    """Turns an Authorization header into a `Caller`, and decides what a caller may do."""

    def __init__(self, admin_token: str = "", join_token: str = "", viewer_token: str = "") -> None:
        self._admin = token_hash(admin_token) if admin_token else ""
        self._join = token_hash(join_token) if join_token else ""
        self._viewer = token_hash(viewer_token) if viewer_token else ""
        self._node_of_hash: dict[str, str] = {}
        self._hash_of_node: dict[str, str] = {}
        # Who a bootstrap token belongs to, by its hash (the pool manager's, when pools run).
        self.bootstrap_tokens: Callable[[str], TokenHolder | None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._admin or self._join or self._viewer)

    def set_node_token(self, node_id: str, hashed: str) -> None:
        """Binds a node token (by its hash) to a node, replacing the node's earlier token."""
        old = self._hash_of_node.pop(node_id, None)
        if old is not None:
            self._node_of_hash.pop(old, None)
        self._hash_of_node[node_id] = hashed
        self._node_of_hash[hashed] = node_id

    def forget_node(self, node_id: str) -> None:
        """Revokes the node's token (the node is gone from the store)."""
        old = self._hash_of_node.pop(node_id, None)
        if old is not None:
            self._node_of_hash.pop(old, None)

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller behind an `Authorization` header value; `unauthenticated` if none."""
        if not self.enabled:
            return Caller.anonymous()
        if not authorization:
            raise Unauthenticated(
                "missing Authorization header; send 'Authorization: Bearer TOKEN'"
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("malformed Authorization header; expected 'Bearer TOKEN'")
        hashed = token_hash(token)
        if self._admin and hmac.compare_digest(hashed, self._admin):
            return Caller.admin()
        if self._viewer and hmac.compare_digest(hashed, self._viewer):
            return Caller("viewer")
        if self._join and hmac.compare_digest(hashed, self._join):
            return Caller("join")
        node_id = self._node_of_hash.get(hashed)
        if node_id is not None and hmac.compare_digest(hashed, self._hash_of_node[node_id]):
            return Caller.node(node_id)
        holder = self.bootstrap_tokens(hashed) if self.bootstrap_tokens is not None else None
        if holder is not None:
            if holder.state == "used":
                raise Unauthenticated(
                    f"this bootstrap token already registered node {holder.node_id}; a machine "
                    "joins with its token once, then uses its node token"
                )
            return Caller("bootstrap", holder.node_id)
        raise Unauthenticated("invalid token")

    def dashboard_role(self, token: str) -> DashboardRole | None:
        """The role `token` signs in to the dashboard with: the admin or a viewer token."""
        hashed = token_hash(token)
        if self._admin and hmac.compare_digest(hashed, self._admin):
            return "admin"
        if self._viewer and hmac.compare_digest(hashed, self._viewer):
            return "viewer"
        return None

    def authorize(
        self, caller: Caller, access: str, method: str, node_id: str, *, read_only: bool = False
    ) -> None:
        """Raises unless `caller` may call `method` (whose access is "admin", "node" or
        "register", as the API's method table says, and which only reads when `read_only`) for
        `node_id`."""
        if caller.role == "admin":
            return
        if caller.role == "anonymous":
            if self.enabled:
                raise Unauthenticated(f"{method} needs a token")
            return
        if caller.role == "viewer":
            if access == "admin" and read_only:
                return
            raise PermissionDenied(f"{method} needs an admin token; a viewer token only reads")
        if access == "admin":
            raise PermissionDenied(f"{method} needs an admin token")
        if caller.role == "join":
            if access == "register":
                return
            raise PermissionDenied(
                f"{method} needs a node token; the join token only registers nodes"
            )
        if caller.role == "bootstrap":
            if access not in ("register", "bootstrap"):
                raise PermissionDenied(
                    f"{method} needs a node token; a bootstrap token only registers its machine"
                )
            if not caller.node_id:
                raise Conflict("the instance is still being provisioned; ask again shortly")
            if access == "register" and node_id != caller.node_id:
                raise PermissionDenied(
                    f"this bootstrap token registers node {caller.node_id}, not {node_id}"
                )
            return
        if access == "bootstrap":
            raise PermissionDenied(f"{method} needs the machine's bootstrap token")
        if caller.node_id != node_id:
            raise PermissionDenied(
                f"the token of node {caller.node_id} cannot act for node {node_id}"
            )
