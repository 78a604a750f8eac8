from __future__ import annotations

from navarch.config import PoolConfig, PoolProviderEntry
from navarch.plugins import ABSTRACT_INSTANCE_TYPES, InstanceType, parse_abstract
from navarch.plugins.builtin.fake_provider import FakeProvider, FakeProviderSettings
from navarch.pools.candidates import candidates_for, fetch_catalogs


class Cloud:
    """A provider that names the abstract types its own way, as a cloud's plugin does."""

    supports_spot = True

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def instance_type_for(self, name: str) -> str:
        return self.names.get(name, name)


def pool(*entries: PoolProviderEntry, instance_type: str = "h100-8x") -> PoolConfig:
    return PoolConfig(instance_type=instance_type, providers=entries, max_nodes=4)


def test_the_provider_names_the_instance_type_and_an_entry_override_wins():
    p = pool(
        PoolProviderEntry(provider="gcp-us"),
        PoolProviderEntry(provider="lambda-main", instance_type="gpu_8x_h100_sxm5_custom"),
        PoolProviderEntry(provider="local"),
    )
    providers = {
        "gcp-us": Cloud({"h100-8x": "a3-highgpu-8g"}),
        "lambda-main": Cloud({"h100-8x": "gpu_8x_h100_sxm5"}),
        # The fake provider maps nothing: it takes the abstract name as it is.
        "local": FakeProvider(FakeProviderSettings()),
    }
    candidates = candidates_for(
        p, {"gcp-us": "gcp", "lambda-main": "lambda", "local": "fake"}, providers=providers
    )
    assert [(c.provider, c.provider_type, c.instance_type) for c in candidates] == [
        ("gcp-us", "gcp", "a3-highgpu-8g"),
        ("lambda-main", "lambda", "gpu_8x_h100_sxm5_custom"),
        ("local", "fake", "h100-8x"),
    ]


def test_a_spot_entry_asks_for_spot_until_it_falls_back_to_on_demand():
    p = pool(PoolProviderEntry(provider="a", spot=True), PoolProviderEntry(provider="b"))
    assert [c.spot for c in candidates_for(p, {})] == [True, False]
    assert [c.spot for c in candidates_for(p, {}, on_demand=[0])] == [False, False]
    assert candidates_for(p, {})[0].describe() == "a h100-8x spot"


def test_every_listed_abstract_type_parses_as_its_gpus():
    for name, kind in ABSTRACT_INSTANCE_TYPES.items():
        assert parse_abstract(name) == kind
    assert parse_abstract("p5.48xlarge") is None
    assert parse_abstract("h100-0x") is None


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
