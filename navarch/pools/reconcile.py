"""Reconciling a pool's instance records with what its providers list, at the start of a round.

- An instance whose daemon registered becomes RUNNING; one that never registers within
  `registration_timeout` is terminated and replaced.
- One the provider no longer lists is marked FAILED (lost), its node terminated, and replaced.
- One the provider lists as preempted (the cloud took it back) is remediation's: its node gets a
  `preempted` episode that replaces it. One whose node never registered, or that no pool
  replaces, is terminated and replaced here.
- One whose node was terminated through the API has its machine ended.
- One the provider lists with the pool's name that navarch has no record of is adopted (a control
  plane that stopped before it could record it made it) and must register like any other.
- A scale-down that a restart interrupted is watched again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio

from navarch.durations import format_duration
from navarch.model import InstanceRecord, InstanceStatus, NodeStatus
from navarch.plugins import InstanceState, Provider
from navarch.pools.fleet import FleetView
from navarch.pools.instances import ACTOR, Instances
from navarch.pools.pool import PoolState
from navarch.pools.provisioning import Provisioner
from navarch.pools.scale_down import ScaleDown

log = logging.getLogger("navarch.pools")


async def reconcile(
    pool: PoolState,
    *,
    fleet: FleetView,
    providers: Mapping[str, Provider],
    instances: Instances,
    provisioner: Provisioner,
    scale_down: ScaleDown,
) -> None:
    nodes = {n.node_id: n for n in fleet.all_nodes() if n.pool == pool.name}
    bootstraps = provisioner.bootstraps
    timeout = pool.config.registration_timeout
    for provider_name in dict.fromkeys(e.provider for e in pool.config.providers):
        provider = providers.get(provider_name)
        if provider is None:
            continue
        try:
            listed = {i.instance_id: i for i in await provider.list()}
        except Exception as exc:
            log.warning("pool %s: cannot list %s: %s", pool.name, provider_name, exc)
            continue
        for record in [r for r in instances.of_pool(pool.name) if r.provider == provider_name]:
            node = nodes.get(record.node_id)
            status = node.status if node is not None else None
            if record.instance_id not in listed:
                if record.status is InstanceStatus.TERMINATING:
                    await instances.move(record, InstanceStatus.TERMINATED, record.reason)
                else:
                    await instances.lost(record)
                    provisioner.start(
                        pool, f"replacing lost instance {record.instance_id}", provider_name
                    )
            elif record.status is InstanceStatus.TERMINATING:
                await instances.terminate(record, record.reason)
            elif status is NodeStatus.TERMINATED:
                # Terminated through the API (the daemon acknowledged it): end the machine.
                await instances.terminate(record, "its node was terminated")
            elif listed[record.instance_id].state is InstanceState.PREEMPTED:
                detail = f"{provider_name} took back instance {record.instance_id}"
                if not await fleet.preempted(record.node_id, detail, ACTOR):
                    await instances.terminate(record, f"preempted: {detail}", InstanceStatus.FAILED)
                    provisioner.start(
                        pool, f"replacing preempted instance {record.instance_id}", provider_name
                    )
            elif (
                status in (NodeStatus.DRAINING, NodeStatus.DRAINED)
                and node is not None
                and node.status_reason == pool.scale_down_reason
                and record.node_id not in scale_down.draining
            ):
                # A scale-down that a restart interrupted: watch its drain again.
                scale_down.watch(pool, record.node_id, node.status_reason)
            elif record.status is InstanceStatus.REGISTERING:
                if status is not None:
                    await instances.move(record, InstanceStatus.RUNNING, "registered")
                    if bootstraps is not None:
                        # A daemon that registered some other way (an image that carries it)
                        # also ends the bootstrap, and its token.
                        await bootstraps.registered(record.node_id)
                elif trio.current_time() - instances.since[record.key] >= timeout.total_seconds():
                    why = f"never registered within {format_duration(timeout)}"
                    if bootstraps is not None and record.bootstrap is not None:
                        await bootstraps.fail(record, why)
                        continue
                    await instances.terminate(record, why, InstanceStatus.FAILED)
                    provisioner.start(pool, f"replacing {record.instance_id}: {why}", provider_name)
        if pool.pending:
            # An instance listed while a provision call is still under way may be the one
            # that call returns; adopting it too would count it twice.
            continue
        known = {r.instance_id for r in instances.records.values() if r.provider == provider_name}
        now = fleet.clock.now()
        for instance in listed.values():
            if (
                instance.instance_id in known
                or instance.pool != pool.name
                or instance.state is InstanceState.PREEMPTED
            ):
                continue
            await instances.save(
                InstanceRecord(
                    instance_id=instance.instance_id,
                    provider=provider_name,
                    pool=pool.name,
                    status=InstanceStatus.REGISTERING,
                    region=instance.region,
                    zone=instance.zone,
                    instance_type=instance.instance_type,
                    reason="adopted: listed by the provider with no record",
                    node_id=instance.instance_id,
                    created_at=instance.created_at or now,
                    updated_at=now,
                ),
                fleet.event(
                    "instance.adopted",
                    instance.instance_id,
                    ACTOR,
                    "listed by the provider with no record",
                    pool=pool.name,
                    provider=provider_name,
                    instanceId=instance.instance_id,
                ),
            )
