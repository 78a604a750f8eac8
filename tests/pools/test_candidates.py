from __future__ import annotations

import pytest

from navarch.config import PoolConfig, PoolProviderEntry
from navarch.plugins import InstanceType
from navarch.plugins.builtin.fake_provider import FakeProvider, FakeProviderSettings
from navarch.pools.candidates import candidates_for, fetch_catalogs
from navarch.pools.instance_types import INSTANCE_TYPES, resolve_instance_type


@pytest.mark.parametrize(
    ("name", "provider_type", "expected"),
    [
        ("h100-8x", "lambda", "gpu_8x_h100_sxm5"),
        ("h100-8x", "gcp", "a3-highgpu-8g"),
        ("h100-8x", "aws", "p5.48xlarge"),
        ("a100-8x", "aws", "p4d.24xlarge"),
        ("a10-1x", "aws", "g5.xlarge"),
        ("l4-1x", "gcp", "g2-standard-4"),
        ("h100-8x", "fake", "h100-8x"),  # the fake provider takes abstract names as they are
        ("l4-1x", "lambda", "l4-1x"),  # not offered there: passed through, not guessed
        ("gpu_8x_h100_sxm5", "lambda", "gpu_8x_h100_sxm5"),  # already concrete
        ("b200-8x", "gcp", "b200-8x"),  # unknown abstract name
    ],
)
def test_instance_types_map_by_provider_type(name, provider_type, expected):
    assert resolve_instance_type(name, provider_type) == expected


def test_entry_override_wins():
    assert resolve_instance_type("h100-8x", "gcp", "a3-megagpu-8g") == "a3-megagpu-8g"


def test_every_abstract_type_is_named_like_its_gpus():
    for name in INSTANCE_TYPES:
        _gpu, count = name.split("-")
        assert count.endswith("x") and count[:-1].isdigit(), name


def pool(*entries: PoolProviderEntry, instance_type: str = "h100-8x") -> PoolConfig:
    return PoolConfig(instance_type=instance_type, providers=entries, max_nodes=4)


def test_mapping_uses_the_provider_type_not_the_table_name():
    # A table called gcp-us of type gcp maps like any GCP account (the Go version looked up
    # "gcp-us" and found nothing).
    p = pool(
        PoolProviderEntry(provider="gcp-us"),
        PoolProviderEntry(provider="lambda-main", instance_type="gpu_8x_h100_sxm5_custom"),
    )
    candidates = candidates_for(p, {"gcp-us": "gcp", "lambda-main": "lambda"})
    assert [(c.provider, c.provider_type, c.instance_type) for c in candidates] == [
        ("gcp-us", "gcp", "a3-highgpu-8g"),
        ("lambda-main", "lambda", "gpu_8x_h100_sxm5_custom"),
    ]


def test_each_region_and_zone_is_a_candidate():
    p = pool(
        PoolProviderEntry(provider="g", regions=("us-central1", "europe-west4")),
        PoolProviderEntry(
            provider="g2",
            regions=("us-central1", "europe-west4"),
            zones=("us-central1-a", "europe-west4-b", "asia-east1-c"),
        ),
        PoolProviderEntry(provider="aws", regions=("us-east-1",), zones=("use1-az4",)),
        PoolProviderEntry(provider="l"),
    )
    places = [(c.provider, c.region, c.zone) for c in candidates_for(p, {})]
    assert places == [
        ("g", "us-central1", ""),
        ("g", "europe-west4", ""),
        ("g2", "us-central1", "us-central1-a"),
        ("g2", "europe-west4", "europe-west4-b"),
        ("g2", "", "asia-east1-c"),  # no listed region contains it: the provider decides
        ("aws", "us-east-1", "use1-az4"),  # the only region listed
        ("l", "", ""),
    ]


def test_catalog_facts_are_copied_onto_candidates():
    p = pool(
        PoolProviderEntry(provider="a", regions=("r1", "r2")),
        PoolProviderEntry(provider="b"),
        PoolProviderEntry(provider="c"),
        PoolProviderEntry(provider="d"),
    )
    h100 = InstanceType(
        name="h100-8x", gpu_count=8, gpu_type="H100", price_per_hour=20.0, available_regions=("r2",)
    )
    catalogs = {
        "a": [h100],
        "b": [InstanceType(name="other", gpu_count=1, gpu_type="A10")],
        "c": [InstanceType(name="h100-8x", gpu_count=8, gpu_type="H100")],
    }
    facts = [
        (c.provider, c.region, c.price_per_hour, c.available)
        for c in candidates_for(p, {}, catalogs)
    ]
    assert facts == [
        ("a", "r1", 20.0, False),
        ("a", "r2", 20.0, True),
        ("b", "", None, False),  # its catalog does not list the type
        ("c", "", None, False),  # listed, but no region reports capacity
        ("d", "", None, None),  # no catalog: unknown
    ]


async def test_fetch_catalogs_skips_providers_without_one_or_failing():
    class NoCatalog:
        pass

    class Broken:
        async def instance_types(self):
            raise TimeoutError("slow api")

    fake = FakeProvider(FakeProviderSettings(prices={"h100-8x": 12.5}))
    catalogs = await fetch_catalogs({"fake": fake, "plain": NoCatalog(), "broken": Broken()})
    assert list(catalogs) == ["fake"]
    assert catalogs["fake"][0].price_per_hour == 12.5
