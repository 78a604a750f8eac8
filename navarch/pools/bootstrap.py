"""Bootstrapping new instances: one-time join tokens, setup over SSH, progress and failure.

For each instance a pool provisions with a bootstrap (`[bootstrap]` and the pool's
`[pools.NAME.bootstrap]`), the provisioner asks `prepare` for a fresh token and the script
(`bootstrap_script`) that carries it. With method "cloud-init" the provider hands the script to
the cloud as user-data; with "ssh" the control plane runs the pool's `setup_commands` and then the
script over SSH (`ssh`) once the machine has an address.

The token is made before the instance exists, so at first it is *pending*; once the provider
answers, it is *bound* to the instance's record (the record keeps only its SHA-256), and it may
then do three things: ask who the machine is (`identity`), report the script's progress, and
register the node whose id is the instance's id, once. After that registration it is *used*, and
a second use is refused. An instance that ends before it registered takes its token with it.

A bootstrap fails when its script reports a failure, when setup over SSH fails, or when the
instance does not register within the pool's `registration_timeout`; the pool then terminates
the instance and provisions another, with an `instance.bootstrap_failed` event saying why.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import trio
from attrs import frozen

from navarch.config import Config, bootstrap_method
from navarch.errors import Conflict, InvalidArgument, Unauthenticated
from navarch.model import (
    LIVE,
    Bootstrap,
    BootstrapState,
    Event,
    InstanceRecord,
    InstanceStatus,
)
from navarch.plugins import Provider
from navarch.pools.bootstrap_script import render_script
from navarch.pools.fleet import FleetView
from navarch.pools.instances import ACTOR, Instances
from navarch.pools.pool import PoolState
from navarch.pools.ssh import SshTarget, run_setup

log = logging.getLogger("navarch.pools")

TOKEN_PREFIX = "nvb_"
# How often a machine set up over SSH is looked for in its provider's list until it has an
# address.
ADDRESS_POLL = 5.0
# The longest log tail and detail kept from a report.
LOG_TAIL_LIMIT = 4000
DETAIL_LIMIT = 500

Holding = Literal["pending", "bound", "used"]


@frozen
class TokenHolder:
    """What a bootstrap token stands for now."""

    state: Holding
    # The instance's node id once the token is bound.
    node_id: str = ""


@frozen
class Prepared:
    """A bootstrap made ready for one provision call."""

    method: str
    user_data: str
    token_hash: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Bootstraps:
    def __init__(
        self,
        fleet: FleetView,
        config: Config,
        instances: Instances,
        providers: Mapping[str, Provider],
        pools: Mapping[str, PoolState],
    ) -> None:
        self._fleet = fleet
        self._config = config
        self._instances = instances
        self._providers = providers
        self._pools = pools
        self._pending: set[str] = set()
        # Nodes registering with their bootstrap token right now: a second use waits for none.
        self._claimed: set[str] = set()
        # Set by the pool manager: provisions one instance for a pool (the provisioner's start).
        self.provision: Callable[[PoolState, str, str | None], None] | None = None
        self.nursery: trio.Nursery | None = None

    def method(self, pool: PoolState) -> str:
        return bootstrap_method(self._config, pool.config)

    def prepare(self, pool: PoolState) -> Prepared | None:
        """A fresh token and the script carrying it, for one instance of `pool`; None when the
        pool installs nothing."""
        method = self.method(pool)
        if method == "none" or self._config.bootstrap is None:
            return None
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        hashed = token_hash(token)
        self._pending.add(hashed)
        script = render_script(self._config.bootstrap, pool.name, pool.config, token)
        return Prepared(method=method, user_data=script, token_hash=hashed)

    def discard(self, prepared: Prepared | None) -> None:
        """Forgets a token whose provision call failed."""
        if prepared is not None:
            self._pending.discard(prepared.token_hash)

    def started(self, prepared: Prepared) -> Bootstrap:
        """The bootstrap record of an instance the provider just made; its token is bound."""
        self._pending.discard(prepared.token_hash)
        now = self._fleet.clock.now()
        detail = (
            "waiting for the machine's address to run setup over SSH"
            if prepared.method == "ssh"
            else "handed to the cloud as user-data; waiting for the script to report"
        )
        return Bootstrap(
            method=prepared.method,
            token_hash=prepared.token_hash,
            detail=detail,
            started_at=now,
            updated_at=now,
        )

    def holder(self, hashed: str) -> TokenHolder | None:
        """Who the token with this hash belongs to; None for no bootstrap token."""
        if hashed in self._pending:
            return TokenHolder("pending")
        for record in self._instances.records.values():
            boot = record.bootstrap
            if boot is None or boot.token_hash != hashed:
                continue
            if boot.token_used or record.node_id in self._claimed:
                return TokenHolder("used", record.node_id)
            if record.status in LIVE:
                return TokenHolder("bound", record.node_id)
        return None

    def _record(self, node_id: str) -> InstanceRecord:
        record = self._instances.of_node(node_id)
        if record is None or record.bootstrap is None:
            raise Conflict(f"instance {node_id} has no bootstrap under way")
        return record

    def identity(self, node_id: str) -> InstanceRecord:
        """The record of the instance a bound token belongs to."""
        return self._record(node_id)

    def claim(self, node_id: str) -> None:
        """Spends the node's bootstrap token for the registration under way."""
        if node_id in self._claimed:
            raise Unauthenticated(f"the bootstrap token of node {node_id} is being used")
        self._claimed.add(node_id)

    def unclaim(self, node_id: str) -> None:
        """The registration failed: the token may be used again."""
        self._claimed.discard(node_id)

    async def registered(self, node_id: str) -> None:
        """The instance's daemon registered (with its token or another way): the bootstrap
        succeeded and the token is spent."""
        record = self._instances.of_node(node_id)
        boot = None if record is None else record.bootstrap
        if record is None or boot is None or boot.token_used:
            self._claimed.discard(node_id)
            return
        await self._update(
            record, BootstrapState.SUCCEEDED, "the daemon registered", token_used=True
        )
        self._claimed.discard(node_id)

    async def report(self, node_id: str, state: BootstrapState, detail: str, log_tail: str) -> None:
        """Progress the machine's script reported; a failure replaces the instance."""
        record = self._record(node_id)
        boot = record.bootstrap
        assert boot is not None
        if state not in (BootstrapState.RUNNING, BootstrapState.FAILED):
            raise InvalidArgument("state: a machine reports RUNNING or FAILED")
        if boot.state in (BootstrapState.SUCCEEDED, BootstrapState.FAILED):
            raise Conflict(f"the bootstrap of instance {node_id} has ended ({boot.state.value})")
        detail = " ".join(detail.split())[:DETAIL_LIMIT]
        log_tail = log_tail[-LOG_TAIL_LIMIT:]
        if state is BootstrapState.FAILED:
            await self.fail(record, f"the bootstrap script {detail or 'failed'}", log_tail)
        else:
            await self._update(record, state, detail or "the script is running", log_tail=log_tail)

    async def fail(
        self,
        record: InstanceRecord,
        why: str,
        log_tail: str = "",
        host_keys: tuple[str, ...] | None = None,
    ) -> None:
        """Records the failure (with the host keys setup over SSH came to trust, when given) and
        has the pool replace the instance."""
        boot = record.bootstrap
        if boot is None or boot.state in (BootstrapState.SUCCEEDED, BootstrapState.FAILED):
            return
        event = self._fleet.event(
            "instance.bootstrap_failed",
            record.node_id,
            ACTOR,
            why,
            pool=record.pool,
            provider=record.provider,
            instanceId=record.instance_id,
        )
        record = await self._update(
            record,
            BootstrapState.FAILED,
            why,
            event=event,
            log_tail=log_tail or boot.log_tail,
            host_keys=boot.host_keys if host_keys is None else host_keys,
        )
        log.warning("instance %s: bootstrap failed: %s", record.instance_id, why)
        if self.nursery is not None:
            self.nursery.start_soon(self._replace, record, why)

    async def _replace(self, record: InstanceRecord, why: str) -> None:
        await self._instances.terminate(record, f"bootstrap failed: {why}", InstanceStatus.FAILED)
        pool = self._pools.get(record.pool)
        if pool is not None and self.provision is not None:
            self.provision(
                pool, f"replacing {record.instance_id}: its bootstrap failed", record.provider
            )

    async def _update(
        self,
        record: InstanceRecord,
        state: BootstrapState,
        detail: str,
        event: Event | None = None,
        **changes: Any,
    ) -> InstanceRecord:
        boot = record.bootstrap
        assert boot is not None
        boot = attrs.evolve(
            boot,
            state=state,
            detail=detail or boot.detail,
            updated_at=self._fleet.clock.now(),
            **changes,
        )
        after = attrs.evolve(record, bootstrap=boot)
        await self._instances.save(after, event)
        return after

    def start_setup(self, pool: PoolState, record: InstanceRecord, script: str) -> None:
        """Runs the pool's setup over SSH in the background (method "ssh")."""
        assert self.nursery is not None, "the pool manager is not running"
        self.nursery.start_soon(self._setup, pool, record.key, script)

    async def _setup(self, pool: PoolState, key: tuple[str, str], script: str) -> None:
        settings = pool.config.bootstrap
        total = pool.config.registration_timeout.total_seconds()
        with trio.move_on_after(total):
            record = await self._wait_for_address(key)
            if record is None:
                return
            record = await self._update(
                record, BootstrapState.RUNNING, f"running setup over SSH on {record.address}"
            )
            boot = record.bootstrap
            assert boot is not None
            with tempfile.TemporaryDirectory(prefix="navarch-ssh-") as scratch:
                target = SshTarget(
                    address=record.address,
                    port=settings.ssh_port,
                    user=settings.ssh_user,
                    key_file=settings.ssh_key_file,
                    known_hosts=str(Path(scratch) / "known_hosts"),
                    host_keys=boot.host_keys,
                )
                outcome = await run_setup(
                    target,
                    [*settings.setup_commands, script],
                    connect_timeout=settings.connect_timeout.total_seconds(),
                    command_timeout=settings.command_timeout.total_seconds(),
                    total_timeout=total,
                )
            record = self._instances.records.get(key, record)
            if record.status not in LIVE:
                return
            if not outcome.ok:
                await self.fail(
                    record,
                    f"setup over SSH: {outcome.detail}",
                    outcome.log_tail,
                    host_keys=outcome.host_keys,
                )
                return
            await self._update(
                record,
                BootstrapState.RUNNING,
                "setup over SSH finished; waiting for the daemon to register",
                log_tail=outcome.log_tail,
                host_keys=outcome.host_keys,
            )
            return
        record = self._instances.records.get(key)
        if record is not None and record.status in LIVE:
            await self.fail(record, "setup over SSH did not finish within the registration timeout")

    async def _wait_for_address(self, key: tuple[str, str]) -> InstanceRecord | None:
        """The record once its machine has an address (asking the provider's list as needed);
        None when the instance ended first."""
        while True:
            record = self._instances.records.get(key)
            if record is None or record.status not in LIVE:
                return None
            if record.address:
                return record
            provider = self._providers.get(record.provider)
            if provider is not None:
                try:
                    listed = {i.instance_id: i for i in await provider.list()}
                except Exception as exc:
                    log.warning("instance %s: cannot list its provider: %s", key[1], exc)
                    listed = {}
                found = listed.get(record.instance_id)
                if found is not None and found.address:
                    after = attrs.evolve(record, address=found.address)
                    await self._instances.save(after)
                    return after
            await trio.sleep(ADDRESS_POLL)
