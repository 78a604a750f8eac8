"""Provisioning a pool's new instances, each in a task of its own, through provider failover.

A provision call counts as the pool's `pending` until the provider answers, so a scaling round in
between counts the instance as in flight. The instance is recorded as REGISTERING until its daemon
registers; a failure that every candidate shares is recorded once as `pool.provision_failed`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import attrs
import trio

from navarch.model import InstanceRecord, InstanceStatus
from navarch.plugins import POOL_LABEL, Provider, ProvisionRequest, Selector
from navarch.pools.bootstrap import Bootstraps, Prepared
from navarch.pools.candidates import candidates_for, fetch_catalogs
from navarch.pools.counters import PoolCounters
from navarch.pools.failover import BlockList, ProvisioningFailed, provision_with_failover
from navarch.pools.fleet import FleetView
from navarch.pools.instances import ACTOR, Instances
from navarch.pools.pool import PoolState, PreferProvider
from navarch.pools.spot import SpotMarket
from navarch.pools.zone_balance import Spread, census
from navarch.store import Change

log = logging.getLogger("navarch.pools")


class Provisioner:
    def __init__(
        self,
        fleet: FleetView,
        providers: Mapping[str, Provider],
        provider_types: Mapping[str, str],
        instances: Instances,
        blocks: BlockList,
        bootstraps: Bootstraps | None = None,
        counters: PoolCounters | None = None,
    ) -> None:
        self._fleet = fleet
        self._providers = providers
        self._provider_types = provider_types
        self._instances = instances
        self._blocks = blocks
        self._spot = SpotMarket(fleet, blocks)
        self.bootstraps = bootstraps
        self.counters = counters or PoolCounters()
        self.nursery: trio.Nursery | None = None

    def start(
        self, pool: PoolState, reason: str, prefer: str | None, strategy: str = "prefer_same"
    ) -> None:
        """Provisions one instance in the background; `prefer` names the provider to try first
        ("prefer_same") or only ("same")."""
        assert self.nursery is not None, "the pool manager is not running"
        pool.pending += 1
        self.nursery.start_soon(self._provision, pool, reason, prefer, strategy)

    async def _provision(
        self, pool: PoolState, reason: str, prefer: str | None, strategy: str
    ) -> None:
        bootstraps = self.bootstraps
        prepared = None if bootstraps is None else bootstraps.prepare(pool)
        spread = Spread(
            lambda: census(pool.name, self._fleet.all_nodes(), self._instances.records.values()),
            pool.claims,
        )
        try:
            entries = {e.provider for e in pool.config.providers}
            providers = {n: p for n, p in self._providers.items() if n in entries}
            catalogs = await fetch_catalogs(providers)
            candidates = await self._spot.before(
                pool,
                lambda: candidates_for(
                    pool.config,
                    self._provider_types,
                    catalogs,
                    providers=providers,
                    on_demand=self._spot.on_demand(pool),
                ),
            )
            selector: Selector = pool.selector
            if prefer and strategy != "any":
                selector = PreferProvider(selector, prefer, only=strategy == "same")
            request = ProvisionRequest(
                name=pool.name,
                instance_type=pool.config.instance_type,
                pool=pool.name,
                labels={**pool.config.labels, POOL_LABEL: pool.name},
                user_data=(
                    prepared.user_data
                    if prepared is not None and prepared.method == "cloud-init"
                    else ""
                ),
            )
            result = await provision_with_failover(
                candidates,
                selector,
                providers,
                request,
                self._blocks,
                spread=spread,
                counters=self.counters,
            )
        except ProvisioningFailed as exc:
            spread.release()
            pool.pending -= 1
            self._forget(prepared)
            await self._spot.after(pool, exc.attempts)
            await self._failed(pool, str(exc))
            return
        except Exception as exc:
            spread.release()
            pool.pending -= 1
            self._forget(prepared)
            await self._failed(pool, f"{type(exc).__name__}: {exc}")
            return
        pool.pending -= 1
        pool.last_failure = ""
        await self._spot.after(pool, result.attempts)
        instance = result.instance
        now = self._fleet.clock.now()
        record = InstanceRecord(
            instance_id=instance.instance_id,
            provider=result.candidate.provider,
            pool=pool.name,
            status=InstanceStatus.REGISTERING,
            region=instance.region,
            zone=instance.zone,
            instance_type=instance.instance_type,
            reason=reason,
            node_id=instance.instance_id,
            created_at=instance.created_at or now,
            updated_at=now,
            address=instance.address,
            bootstrap=(
                None
                if prepared is None or bootstraps is None
                else attrs.evolve(bootstraps.started(prepared), host_keys=instance.host_keys)
            ),
        )
        event = self._fleet.event(
            "instance.provisioned",
            record.node_id,
            ACTOR,
            reason,
            pool=pool.name,
            provider=record.provider,
            instanceId=record.instance_id,
            attempts=str(len(result.attempts)),
            spot=str(result.candidate.spot).lower(),
        )
        await self._instances.save(record, event)
        spread.release()
        if prepared is not None and bootstraps is not None and prepared.method == "ssh":
            bootstraps.start_setup(pool, record, prepared.user_data)

    def _forget(self, prepared: Prepared | None) -> None:
        if self.bootstraps is not None:
            self.bootstraps.discard(prepared)

    async def _failed(self, pool: PoolState, why: str) -> None:
        log.warning("pool %s: provisioning failed: %s", pool.name, why)
        self.counters.pool_failed(pool.name)
        if why == pool.last_failure:
            return
        pool.last_failure = why
        event = self._fleet.event("pool.provision_failed", "", ACTOR, why, pool=pool.name)
        await self._fleet.record(Change(events=(event,)))
