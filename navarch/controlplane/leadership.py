"""Leadership among control planes that share one PostgreSQL store.

One row of `leader_lease` names the leader: its holder, the URL followers send clients to, when
the lease expires (on the database's clock) and a fencing token that grows with every new term.
A control plane takes the row when it is free or expired, renews it every third of the lease, and
while it holds it runs a `ControlPlane` (the heartbeat monitor, the pool manager, remediation and
the notifiers) with the store fenced by its token: the store refuses a write of an older term
(`navarch.store.Deposed`), so a deposed leader's late write changes nothing.

A leader stops acting before anyone else may start. Its deadline is measured on the local
monotonic clock from the moment it sent its last successful renewal, and falls a margin short of
the lease: the database counts the lease from a later moment, when the statement ran. A leader cut
off from the database therefore cancels its term while the row still names it, and a follower
takes the row only after it expired. Each term is a new `ControlPlane` loaded from the store, so a
leader that lost the lease and wins it back starts from what the database says, not from memory.

Followers run no loops. They answer reads from a snapshot of the store, at most a second old, and
refuse every other call with the leader's address (`navarch.api.app`).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Protocol, cast

import trio

from navarch.config import Config, HAConfig, ServerConfig
from navarch.controlplane.service import ControlPlane
from navarch.errors import NavarchError
from navarch.pools.context import MachineRunner
from navarch.store import Store, StoreError
from navarch.store.open import is_postgres

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("navarch.leadership")

# The name of the lease row the control planes of one store contend for.
LEASE_NAME = "control-plane"
# How long a follower's read snapshot serves before it is loaded again, in seconds.
SNAPSHOT_MAX_AGE = 1.0


class LeaseError(NavarchError):
    """The lease's database did not answer."""


class FencedStore(Protocol):
    """A store whose writes carry a fencing token: (lease name, token), or None for none."""

    fencing: tuple[str, int] | None


def new_holder() -> str:
    """A name for this process in the lease row, unique across restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


_ACQUIRE = """
INSERT INTO leader_lease AS l (name, holder, token, expires_at, address)
VALUES (%(name)s, %(holder)s, 1, now() + %(ttl)s * interval '1 second', %(address)s)
ON CONFLICT (name) DO UPDATE
SET holder = excluded.holder, token = coalesce(l.token, 0) + 1,
    expires_at = excluded.expires_at, address = excluded.address
WHERE l.expires_at IS NULL OR l.expires_at < now() OR l.holder = excluded.holder
RETURNING token
"""
_RENEW = """
UPDATE leader_lease SET expires_at = now() + %(ttl)s * interval '1 second'
WHERE name = %(name)s AND holder = %(holder)s AND token = %(token)s
RETURNING token
"""
_RELEASE = """
UPDATE leader_lease SET expires_at = '-infinity'
WHERE name = %(name)s AND holder = %(holder)s AND token = %(token)s
"""
_LEADER = """
SELECT address FROM leader_lease WHERE name = %(name)s AND expires_at > now()
"""
# A deposed leader cut off from the database in the middle of a fenced write leaves a session
# idle in its transaction, holding the lease row FOR SHARE until TCP gives up (hours), and no
# one could take the lease. Once the lease has expired, such a session can only write what the
# fence refuses, so the control plane that takes over ends it. (Only a single locker is found:
# the row's xmax is then the locker's transaction id.)
_END_STALE_LOCKERS = """
SELECT pg_terminate_backend(a.pid)
FROM pg_stat_activity a JOIN pg_locks k ON k.pid = a.pid
WHERE k.locktype = 'transactionid' AND k.granted
  AND k.transactionid = (
      SELECT xmax FROM leader_lease WHERE name = %(name)s AND expires_at < now())
  AND a.pid <> pg_backend_pid() AND a.state LIKE 'idle in transaction%%'
"""


class Lease:
    """The lease row, read and written over a connection of its own.

    The connection is apart from the store's pool, so a busy pool never delays a renewal, and its
    connect and statement timeouts are a fraction of the lease. Calls run in a worker thread and
    are abandoned when the caller's deadline passes; the next call opens a new connection.
    """

    def __init__(self, url: str, *, holder: str, address: str, ttl: float) -> None:
        self.url = url
        self.holder = holder
        self.address = address
        self.ttl = ttl
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        # One call at a time; an abandoned call holds it until its thread returns.
        self._limiter = trio.CapacityLimiter(1)

    async def acquire(self) -> int | None:
        """Takes the lease when it is free, expired or ours; returns the new term's token, or
        None when another control plane holds it."""
        row = await self._run(_ACQUIRE, {}, unblock=True)
        return None if row is None else int(str(row[0]))

    async def renew(self, token: int) -> bool:
        """Extends the lease of term `token`; False when the row names another term."""
        return await self._run(_RENEW, {"token": token}) is not None

    async def release(self, token: int) -> None:
        """Lets the lease of term `token` expire now, so a follower takes over at once."""
        await self._run(_RELEASE, {"token": token})

    async def leader(self) -> str:
        """The address of the control plane that holds the lease, or "" when none does."""
        row = await self._run(_LEADER, {})
        return "" if row is None else str(row[0] or "")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def _run(
        self, sql: str, params: dict[str, object], *, unblock: bool = False
    ) -> tuple[object, ...] | None:
        values = {
            "name": LEASE_NAME,
            "holder": self.holder,
            "address": self.address,
            "ttl": self.ttl,
            **params,
        }
        return await trio.to_thread.run_sync(
            self._execute, sql, values, unblock, abandon_on_cancel=True, limiter=self._limiter
        )

    def _execute(
        self, sql: str, values: dict[str, object], unblock: bool
    ) -> tuple[object, ...] | None:
        import psycopg

        conn = self._conn
        try:
            if conn is None or conn.closed:
                conn = self._conn = self._connect()
            with conn.cursor() as cursor:
                try:
                    cursor.execute(sql, values)
                except psycopg.errors.LockNotAvailable:
                    if not unblock:
                        raise
                    cursor.execute(_END_STALE_LOCKERS, values)
                    ended = len(cursor.fetchall())
                    if ended:
                        log.warning("ended %d stale sessions holding the expired lease", ended)
                    return None
                return cursor.fetchone() if cursor.description is not None else None
        except psycopg.Error as exc:
            self._conn = None
            if conn is not None:
                conn.close()
            raise LeaseError(f"the lease's database did not answer: {_first_line(exc)}") from None

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        import psycopg

        # libpq waits at least 2 s for a connection, whatever it is told.
        timeout = max(2, int(self.ttl / 3))
        statement_ms = max(500, int(self.ttl * 1000 / 3))
        # A row lock held by another session gives up first, leaving time to see whose it is.
        lock_ms = statement_ms // 3
        return psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=timeout,
            options=f"-c statement_timeout={statement_ms} -c lock_timeout={lock_ms}",
            application_name="navarch-lease",
        )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class Leadership:
    """Runs this control plane's terms: a follower until it holds the lease, the leader while it
    does, a follower again when it loses it.

    `open_term` runs a `ControlPlane` for one term (its loops stop when the block ends);
    `load_snapshot` loads one, not run, for a follower's reads.
    """

    def __init__(
        self,
        lease: Lease,
        store: FencedStore,
        *,
        open_term: Callable[[], AbstractAsyncContextManager[ControlPlane]],
        load_snapshot: Callable[[], Awaitable[ControlPlane]],
    ) -> None:
        self.lease = lease
        self.store = store
        self._open_term = open_term
        self._load_snapshot = load_snapshot
        ttl = lease.ttl
        self.renew_every = ttl / 3
        # The leader stops this long before the lease could expire on the database's clock.
        self.margin = ttl / 5
        self.retry_every = ttl / 15
        # The control plane of the current term, while this one leads.
        self.leading: ControlPlane | None = None
        # The URL of the leader as last read from the lease; "" while there is none.
        self.leader_url = ""
        self.terms = 0
        self.stopping = False
        # Called with each term's control plane when it starts (the API's dashboard follows it).
        self.on_term: list[Callable[[ControlPlane], None]] = []
        # Why the lease's database did not answer the last question, or "" when it did.
        self.unreachable = ""
        self._snapshot: ControlPlane | None = None
        self._snapshot_at = -float("inf")
        self._snapshot_lock = trio.Lock()

    @property
    def address(self) -> str:
        return self.lease.address

    def role(self) -> str:
        """What this control plane is: "leader", "follower of URL", or "follower" while no
        control plane leads."""
        if self.leading is not None:
            return "leader"
        return f"follower of {self.leader_url}" if self.leader_url else "follower"

    def stop(self) -> None:
        """Answers the term's long polls now and says so at /readyz, for a prompt shutdown."""
        self.stopping = True
        if self.leading is not None:
            self.leading.stop_long_polls()

    async def snapshot(self) -> ControlPlane:
        """The store's state, loaded at most `SNAPSHOT_MAX_AGE` ago, for a follower's reads."""
        async with self._snapshot_lock:
            now = trio.current_time()
            if self._snapshot is None or now - self._snapshot_at > SNAPSHOT_MAX_AGE:
                self._snapshot = await self._load_snapshot()
                self._snapshot_at = now
            return self._snapshot

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Contends for the lease and leads while it holds it, until cancelled."""
        task_status.started()
        while True:
            asked_at = trio.current_time()
            token = None
            with trio.move_on_after(self.renew_every) as asking:
                try:
                    token = await self.lease.acquire()
                    if token is None:
                        self.leader_url = await self.lease.leader()
                    self.unreachable = ""
                except LeaseError as exc:
                    log.warning("%s; asking again in %.1fs", exc, self.renew_every)
                    self.leader_url = ""
                    self.unreachable = str(exc)
            if token is not None:
                # A term the store refused at once is not tried again before the next round.
                await self._lead(token, asked_at)
            if asking.cancelled_caught:
                self.leader_url = ""
                self.unreachable = (
                    f"the lease's database did not answer within {self.renew_every:g}s"
                )
            await trio.sleep_until(asked_at + self.renew_every)

    async def _lead(self, token: int, asked_at: float) -> None:
        self.terms += 1
        self.store.fencing = (LEASE_NAME, token)
        log.info("leading (term %d, fencing token %d)", self.terms, token)
        lost = "stopping"
        try:
            with trio.CancelScope() as term:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._keep, token, asked_at, term)
                    async with self._open_term() as control_plane:
                        for started in self.on_term:
                            started(control_plane)
                        self.leading = control_plane
                        self.leader_url = self.address
                        await trio.sleep_forever()
            lost = "the lease was lost"
        except* StoreError as group:
            lost = f"the store refused the term: {_first_line(group.exceptions[0])}"
        finally:
            # New requests find no leader from here on; the old term's store stays fenced with
            # its token, so whatever it still tries to write is refused.
            self.leading = None
            self.leader_url = ""
            self._snapshot = None
            await self._release(token)
        log.warning("no longer leading (term %d): %s", self.terms, lost)

    async def _keep(self, token: int, asked_at: float, term: trio.CancelScope) -> None:
        """Renews the lease until it is lost or its local deadline passes, then ends the term."""
        deadline = asked_at + self.lease.ttl - self.margin
        next_at = asked_at + self.renew_every
        while True:
            await trio.sleep_until(min(next_at, deadline))
            if trio.current_time() >= deadline:
                log.warning("the lease was not renewed in time; stopping")
                break
            sent_at = trio.current_time()
            renewed = False
            with trio.move_on_at(deadline):
                try:
                    renewed = await self.lease.renew(token)
                    if not renewed:
                        log.warning("another control plane holds the lease; stopping")
                        break
                except LeaseError as exc:
                    log.warning("%s; renewing again", exc)
            if renewed:
                deadline = sent_at + self.lease.ttl - self.margin
                next_at = sent_at + self.renew_every
            else:
                next_at = trio.current_time() + self.retry_every
        self.leading = None
        self.leader_url = ""
        term.cancel()

    async def _release(self, token: int) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(self.renew_every):
            try:
                await self.lease.release(token)
            except LeaseError as exc:
                log.warning("%s; the lease expires by itself", exc)


def advertised_url(advertise_url: str, external_url: str, listen: str, *, tls: bool) -> str:
    """The URL followers give clients for this control plane when it leads."""
    return advertise_url or external_url or f"{'https' if tls else 'http'}://{listen}"


@asynccontextmanager
async def lead(
    store: FencedStore,
    url: str,
    *,
    ttl: float,
    address: str,
    open_term: Callable[[], AbstractAsyncContextManager[ControlPlane]],
    load_snapshot: Callable[[], Awaitable[ControlPlane]],
) -> AsyncIterator[tuple[Leadership, ControlPlane]]:
    """Contends for the lease of the store at `url` until the block ends; yields the leadership
    and a first snapshot of the store (what the API shows before any term)."""
    lease = Lease(url, holder=new_holder(), address=address, ttl=ttl)
    leadership = Leadership(lease, store, open_term=open_term, load_snapshot=load_snapshot)
    try:
        first = await leadership.snapshot()
        async with trio.open_nursery() as nursery:
            await nursery.start(leadership.run)
            try:
                yield leadership, first
            finally:
                leadership.stop()
                nursery.cancel_scope.cancel()
    finally:
        lease.close()


@asynccontextmanager
async def run_control_plane(
    store: Store,
    url: str,
    server: ServerConfig,
    *,
    listen: str,
    tls: bool,
    admin_token: str = "",
    join_token: str = "",
    viewer_token: str = "",
    config: Config | None = None,
    machines: Callable[[ControlPlane, trio.Nursery], MachineRunner] | None = None,
) -> AsyncIterator[tuple[ControlPlane, Leadership | None]]:
    """Runs the control plane on `store` until the block ends.

    On SQLite it is the one owner and always leads: yields the running control plane and None.
    On PostgreSQL it contends for leadership (`[ha]` of `config`) and yields a first snapshot and
    the leadership, whose terms run the control plane while it leads.
    """

    def open_term() -> AbstractAsyncContextManager[ControlPlane]:
        return ControlPlane.open(
            store,
            server,
            admin_token=admin_token,
            join_token=join_token,
            viewer_token=viewer_token,
            config=config,
            machines=machines,
        )

    if not is_postgres(url):
        async with open_term() as control_plane:
            yield control_plane, None
        return
    ha = config.ha if config is not None else HAConfig()

    def load_snapshot() -> Awaitable[ControlPlane]:
        return ControlPlane.snapshot(
            store,
            server,
            admin_token=admin_token,
            join_token=join_token,
            viewer_token=viewer_token,
            config=config,
        )

    fenced = cast(FencedStore, store)
    async with lead(
        fenced,
        url,
        ttl=ha.lease_ttl.total_seconds(),
        address=advertised_url(ha.advertise_url, server.external_url, listen, tls=tls),
        open_term=open_term,
        load_snapshot=load_snapshot,
    ) as (leadership, first):
        yield first, leadership
