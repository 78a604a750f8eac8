"""What the gcp provider asks of Compute Engine, and what it reports back."""

import json

import pytest
from gcp_requests import request
from navarch_gcp import GcpProvider, GcpSettings

from navarch.plugins import (
    POOL_LABEL,
    InstanceState,
    ProviderError,
    RebootingProvider,
    TransientError,
)


async def test_an_on_demand_machine_asks_for_what_gpu_machines_need(gce, provider):
    instance = await provider.provision(request(user_data="#cloud-config\n"))
    [body] = gce.inserted
    assert body["machineType"] == "zones/us-central1-a/machineTypes/a3-highgpu-8g"
    assert body["scheduling"] == {
        "onHostMaintenance": "TERMINATE",
        "automaticRestart": True,
        "provisioningModel": "STANDARD",
    }
    assert body["disks"][0]["boot"] and body["disks"][0]["autoDelete"]
    items = {item["key"]: item["value"] for item in body["metadata"]["items"]}
    assert items["user-data"] == "#cloud-config\n"
    assert json.loads(items["navarch-labels"]) == {
        POOL_LABEL: "train",
        "navarch.io/team": "Vision",
    }
    assert body["labels"] == {
        "navarch-pool": "train",
        "navarch-managed": "true",
        "navarch-io-team": "vision",
    }
    assert instance.state is InstanceState.RUNNING
    assert (instance.region, instance.zone, instance.spot) == (
        "us-central1",
        "us-central1-a",
        False,
    )
    assert instance.created_at is not None and instance.created_at.year == 2025


async def test_a_spot_machine_is_stopped_when_taken_back_and_listed_as_preempted(gce, provider):
    instance = await provider.provision(request(spot=True))
    [body] = gce.inserted
    assert body["scheduling"] == {
        "onHostMaintenance": "TERMINATE",
        "automaticRestart": False,
        "provisioningModel": "SPOT",
        "instanceTerminationAction": "STOP",
    }
    assert "user-data" not in {item["key"] for item in body["metadata"]["items"]}
    assert instance.spot

    gce.preempt(instance.instance_id)
    [listed] = await provider.list()
    assert (listed.instance_id, listed.state, listed.spot) == (
        instance.instance_id,
        InstanceState.PREEMPTED,
        True,
    )
    await provider.terminate(instance.instance_id)
    assert await provider.list() == []


async def test_list_returns_navarch_labels_verbatim_and_reads_every_page(gce, provider):
    gce.page_size = 2
    zones = ["us-central1-a", "us-central1-b", "us-central1-a", "us-central1-b", "us-central1-a"]
    made = [
        await provider.provision(
            request(request_id=f"request-{n}", zone=zone, instance_type="g2-standard-4")
        )
        for n, zone in enumerate(zones)
    ]
    listed = await provider.list()
    assert sorted(i.instance_id for i in listed) == sorted(i.instance_id for i in made)
    assert {i.zone for i in listed} == {"us-central1-a", "us-central1-b"}
    assert all(i.labels == {POOL_LABEL: "train", "navarch.io/team": "Vision"} for i in listed)


def test_names_follow_gcp_rules_and_the_request_id():
    from navarch_gcp.instances import instance_name

    first = instance_name("Big_Train.v2", "a")
    assert first.startswith("big-train-v2-") and len(first) == len("big-train-v2-") + 10
    assert instance_name("Big_Train.v2", "a") == first != instance_name("Big_Train.v2", "b")
    assert instance_name("7-up", "a").startswith("navarch-7-up-")
    assert len(instance_name("x" * 100, "a")) <= 63


async def test_a_request_without_a_zone_says_to_list_zones(provider):
    with pytest.raises(ProviderError, match="list zones in the pool's provider entry"):
        await provider.provision(request(zone=""))


async def test_a_retry_after_the_request_id_expired_returns_the_existing_machine(gce, provider):
    first = await provider.provision(request())
    gce.forget_request_ids()
    again = await provider.provision(request())
    assert again.instance_id == first.instance_id
    assert len(gce.instances) == 1


async def test_a_retry_after_an_insert_failed_in_passing_makes_the_machine(gce, provider):
    gce.operation_rate_exceeded = True
    with pytest.raises(TransientError, match="RESOURCE_OPERATION_RATE_EXCEEDED"):
        await provider.provision(request())
    gce.operation_rate_exceeded = False
    # Compute Engine would answer the first requestId with its failed operation again.
    instance = await provider.provision(request())
    assert list(gce.instances) == [instance.instance_id]
    assert (await provider.provision(request())).instance_id == instance.instance_id


async def test_terminate_finds_the_zone_of_a_machine_made_by_another_control_plane(gce, key):
    def fresh():
        settings = GcpSettings(
            project=gce.project, compute_url=gce.compute_url, credentials_file=str(key)
        )
        return GcpProvider(settings)

    instance = await fresh().provision(request(zone="us-central1-b", instance_type="g2-standard-4"))
    await fresh().terminate(instance.instance_id)
    assert gce.instances == {}


async def test_the_catalog_has_the_mapped_types_with_prices_and_offering_regions(gce, key):
    provider = GcpProvider(
        GcpSettings(
            project=gce.project,
            compute_url=gce.compute_url,
            credentials_file=str(key),
            prices={"a3-highgpu-8g": 60.0},
        )
    )
    catalog = {entry.name: entry for entry in await provider.instance_types()}
    assert set(catalog) == {
        "a3-highgpu-8g",
        "a3-highgpu-1g",
        "a2-highgpu-8g",
        "a2-highgpu-4g",
        "a2-highgpu-1g",
        "g2-standard-4",
    }
    h100 = catalog["a3-highgpu-8g"]
    assert (h100.gpu_count, h100.gpu_type, h100.price_per_hour) == (
        8,
        "NVIDIA H100 80GB HBM3",
        60.0,
    )
    assert h100.available_regions == ("europe-west4", "us-central1")
    assert catalog["g2-standard-4"].available_regions == ("us-central1",)
    assert catalog["a2-highgpu-4g"].available_regions == ()
    assert catalog["a2-highgpu-4g"].price_per_hour is not None


def test_abstract_types_map_to_machine_types(provider):
    assert {
        name: provider.instance_type_for(name)
        for name in ["h100-8x", "h100-1x", "a100-8x", "a100-4x", "a100-1x", "l4-1x", "a10-1x"]
    } == {
        "h100-8x": "a3-highgpu-8g",
        "h100-1x": "a3-highgpu-1g",
        "a100-8x": "a2-highgpu-8g",
        "a100-4x": "a2-highgpu-4g",
        "a100-1x": "a2-highgpu-1g",
        "l4-1x": "g2-standard-4",
        "a10-1x": "a10-1x",
    }
    assert provider.instance_type_for("a2-ultragpu-8g") == "a2-ultragpu-8g"


async def test_the_token_is_kept_between_calls(gce, provider):
    await provider.list()
    await provider.instance_types()
    assert gce.token_grants == 1


async def test_the_metadata_server_gives_the_token_when_no_file_is_found(
    gce, tmp_path, monkeypatch
):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    provider = GcpProvider(
        GcpSettings(project=gce.project, compute_url=gce.compute_url, metadata_url=gce.metadata_url)
    )
    assert provider.check() == []
    await provider.provision(request())
    assert [i.pool for i in await provider.list()] == ["train"]
    assert gce.token_grants == 0


async def test_a_machine_is_reachable_at_its_external_ip(gce, provider):
    instance = await provider.provision(request())
    [interface] = gce.instances[instance.instance_id]["networkInterfaces"]
    assert instance.address == interface["accessConfigs"][0]["natIP"]
    [listed] = await provider.list()
    assert listed.address == instance.address
    # Compute Engine's instance resource carries no SSH host keys.
    assert listed.host_keys == ()


async def test_a_machine_without_an_external_ip_is_reached_at_its_internal_one(gce, key):
    provider = GcpProvider(
        GcpSettings(
            project=gce.project,
            compute_url=gce.compute_url,
            credentials_file=str(key),
            external_ip=False,
        )
    )
    instance = await provider.provision(request())
    [interface] = gce.instances[instance.instance_id]["networkInterfaces"]
    assert "accessConfigs" not in interface
    assert instance.address == interface["networkIP"]


async def test_reboot_resets_the_machine_and_follows_the_operation(gce, provider):
    assert isinstance(provider, RebootingProvider)
    instance = await provider.provision(request())
    await provider.reboot(instance.instance_id)
    assert gce.resets == [instance.instance_id]
    [listed] = await provider.list()
    assert (listed.instance_id, listed.state, listed.address) == (
        instance.instance_id,
        InstanceState.RUNNING,
        instance.address,
    )


async def test_reboot_finds_the_zone_of_a_machine_made_by_another_control_plane(gce, key):
    def fresh():
        settings = GcpSettings(
            project=gce.project, compute_url=gce.compute_url, credentials_file=str(key)
        )
        return GcpProvider(settings)

    instance = await fresh().provision(request(zone="us-central1-b", instance_type="g2-standard-4"))
    await fresh().reboot(instance.instance_id)
    assert gce.resets == [instance.instance_id]
