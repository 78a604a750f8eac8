"""Candidates: the places a pool can provision a node, as provider selectors see them.

Each provider entry of a pool yields one `Candidate` per region, or per zone when it lists zones,
so that failover can move from a region without capacity to the next one. What the providers'
catalogs say (price, free capacity) is copied onto each candidate here, so selectors stay pure
and synchronous. A pool's abstract instance type (`h100-8x`) is mapped by the provider itself
(`instance_type_for`): the core names no cloud's instance types.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from navarch.config import PoolConfig, PoolProviderEntry
from navarch.plugins import (
    Candidate,
    InstanceType,
    InstanceTypeNames,
    Provider,
    ProviderCatalog,
)


def candidates_for(
    pool: PoolConfig,
    provider_types: Mapping[str, str],
    catalogs: Mapping[str, Sequence[InstanceType]] | None = None,
    *,
    providers: Mapping[str, object] | None = None,
    on_demand: Collection[int] = (),
) -> list[Candidate]:
    """The pool's candidates in configured order.

    `provider_types` maps each `[providers.NAME]` table to its plugin type; `catalogs` maps a
    table name to what its provider's `instance_types()` returned, where it has one; `providers`
    maps it to the provider object, which names the instance type. The candidates of a `spot`
    entry ask for spot machines, unless the entry's index is in `on_demand` (its spot capacity
    kept failing).
    """
    catalogs = catalogs or {}
    providers = providers or {}
    out = []
    for index, entry in enumerate(pool.providers):
        provider_type = provider_types.get(entry.provider, entry.provider)
        instance_type = entry.instance_type or _provider_name(
            providers.get(entry.provider), pool.instance_type
        )
        spot = entry.spot and index not in on_demand
        catalog = catalogs.get(entry.provider)
        for region, zone in _places(entry):
            price, available = _catalog_facts(catalog, instance_type, region)
            out.append(
                Candidate(
                    provider=entry.provider,
                    provider_type=provider_type,
                    entry=index,
                    priority=entry.priority,
                    weight=entry.weight,
                    instance_type=instance_type,
                    region=region,
                    zone=zone,
                    price_per_hour=price,
                    available=available,
                    spot=spot,
                )
            )
    return out


def _provider_name(provider: object, name: str) -> str:
    """The provider's own name for the pool's instance type; a provider that maps none (the fake
    provider) takes the pool's name as it is."""
    if isinstance(provider, InstanceTypeNames):
        return provider.instance_type_for(name)
    return name


def _places(entry: PoolProviderEntry) -> list[tuple[str, str]]:
    """(region, zone) pairs; a zone belongs to the listed region that its name starts with."""
    if not entry.zones:
        return [(region, "") for region in entry.regions] or [("", "")]
    places = []
    for zone in entry.zones:
        regions = [r for r in entry.regions if zone.startswith(r)]
        if regions:
            region = max(regions, key=len)
        else:
            region = entry.regions[0] if len(entry.regions) == 1 else ""
        places.append((region, zone))
    return places


def _catalog_facts(
    catalog: Sequence[InstanceType] | None, instance_type: str, region: str
) -> tuple[float | None, bool | None]:
    if catalog is None:
        return None, None
    for item in catalog:
        if item.name == instance_type:
            regions = item.available_regions
            return item.price_per_hour, (region in regions if region else bool(regions))
    return None, False


async def fetch_catalogs(providers: Mapping[str, Provider]) -> dict[str, list[InstanceType]]:
    """The catalog of each provider that has one, by `[providers.NAME]` table.

    A provider whose catalog fails is left out, so its candidates are ordered as unknown rather
    than keeping the pool from provisioning.
    """
    catalogs = {}
    for name, provider in providers.items():
        if not isinstance(provider, ProviderCatalog):
            continue
        try:
            catalogs[name] = list(await provider.instance_types())
        except Exception:
            continue
    return catalogs
