"""What the Lambda provider asks of the API, and what it makes of the answers."""

import itertools
from datetime import timedelta

import attrs
import pytest
import trio
from fake_lambda import API_KEY, SSH_KEY
from navarch_lambda import LambdaProvider

from navarch.plugins import (
    POOL_LABEL,
    CapacityError,
    InstanceState,
    InstanceType,
    ProviderError,
    ProvisionRequest,
    RebootingProvider,
)

LAUNCH = "/instance-operations/launch"
REQUEST_ID = "0d6f4c43-1b1e-4a43-9d52-5f1b0f7f9a10"


def request(**changes):
    asked = ProvisionRequest(
        name="train",
        instance_type="gpu_8x_h100_sxm5",
        region="us-east-1",
        pool="train",
        labels={POOL_LABEL: "train", "team": "vision"},
        request_id=REQUEST_ID,
    )
    return attrs.evolve(asked, **changes)


def launches(fake):
    return [call for call in fake.calls if call[1:3] == ("POST", LAUNCH)]


async def test_a_launch_names_the_machine_by_its_request_and_tags_it_with_its_pool(provider, fake):
    instance = await provider.provision(request(user_data="#cloud-config\nruncmd: [navarch]\n"))
    [(_, _, _, body, headers)] = launches(fake)
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert body == {
        "region_name": "us-east-1",
        "instance_type_name": "gpu_8x_h100_sxm5",
        "ssh_key_names": [SSH_KEY],
        "name": f"train-{REQUEST_ID}",
        "tags": [
            {"key": POOL_LABEL, "value": "train"},
            {"key": "team", "value": "vision"},
            {"key": "navarch.io/request-id", "value": REQUEST_ID},
        ],
        "user_data": "#cloud-config\nruncmd: [navarch]\n",
    }
    assert (instance.pool, instance.region, instance.state) == (
        "train",
        "us-east-1",
        InstanceState.RUNNING,
    )
    assert instance.spot is False


async def test_a_launch_sends_the_image_and_file_systems_and_no_empty_user_data(settings, fake):
    settings = attrs.evolve(settings, image_family="lambda-stack-22-04", file_systems=("data",))
    await LambdaProvider(settings).provision(request())
    [(_, _, _, body, _)] = launches(fake)
    assert body["image"] == {"family": "lambda-stack-22-04"}
    assert body["file_system_names"] == ["data"]
    assert "user_data" not in body


async def test_a_long_pool_name_and_request_id_still_make_a_name_lambda_accepts(provider, fake):
    long = request(name="p" * 80, request_id="r" * 100)
    first = await provider.provision(long)
    again = await provider.provision(long)
    [(_, _, _, body, _)] = launches(fake)
    assert len(body["name"]) == 64
    assert again.instance_id == first.instance_id


async def test_a_launch_whose_reply_is_lost_makes_one_machine(provider, fake):
    # The gateway answers 502 after Lambda made the machine; the provider's retry finds it by
    # its name instead of launching a second one.
    fake.lose_launch_replies = 1
    instance = await provider.provision(request())
    assert list(fake.instances) == [instance.instance_id]
    assert len(launches(fake)) == 1


async def test_a_booting_machine_is_provisioning(provider, fake):
    fake.boot_time = 60
    instance = await provider.provision(request())
    assert instance.state is InstanceState.PROVISIONING


async def test_list_maps_lambdas_statuses_and_leaves_out_machines_that_are_gone(provider, fake):
    fake.boot_time = 60
    fake.capacity[("gpu_8x_h100_sxm5", "us-east-1")] = 6
    made = {}
    for status in ("booting", "active", "unhealthy", "preempted", "terminating", "terminated"):
        instance = await provider.provision(request(request_id=status))
        made[status] = instance.instance_id
        if status == "preempted":
            fake.preempt(instance.instance_id)
        else:
            fake.instances[instance.instance_id]["status"] = status
    listed = {i.instance_id: i.state for i in await provider.list()}
    assert listed == {
        made["booting"]: InstanceState.PROVISIONING,
        made["active"]: InstanceState.RUNNING,
        made["unhealthy"]: InstanceState.RUNNING,
        made["preempted"]: InstanceState.PREEMPTED,
    }


async def test_a_preempted_machine_is_listed_until_navarch_terminates_it(provider, fake):
    instance = await provider.provision(request())
    fake.preempt(instance.instance_id)
    [listed] = await provider.list()
    assert listed.state is InstanceState.PREEMPTED
    await provider.terminate(instance.instance_id)
    assert await provider.list() == []
    assert fake.live() == []


async def test_list_leaves_out_machines_that_navarch_did_not_make(provider, fake):
    await provider.provision(request(labels={"team": "vision"}, request_id="by-hand"))
    mine = await provider.provision(request())
    assert [i.instance_id for i in await provider.list()] == [mine.instance_id]


async def test_a_request_without_a_region_goes_to_one_with_capacity(provider, fake):
    fake.capacity[("gpu_8x_h100_sxm5", "us-east-1")] = 0
    instance = await provider.provision(request(region=""))
    assert instance.region == "us-west-1"


async def test_a_request_without_a_region_when_none_has_capacity_launches_nothing(provider, fake):
    fake.capacity = dict.fromkeys(fake.capacity, 0)
    with pytest.raises(CapacityError, match="no region has capacity for gpu_8x_h100_sxm5"):
        await provider.provision(request(region=""))
    assert launches(fake) == []


async def test_the_catalog_reads_the_price_of_the_instance_type_not_of_its_entry(provider, fake):
    fake.capacity[("gpu_8x_h100_sxm5", "us-west-1")] = 0
    types = {t.name: t for t in await provider.instance_types()}
    assert types["gpu_8x_h100_sxm5"] == InstanceType(
        name="gpu_8x_h100_sxm5",
        gpu_count=8,
        gpu_type="H100 (80 GB SXM5)",
        price_per_hour=23.92,
        available_regions=("us-east-1",),
    )
    assert types["gpu_1x_a10"].price_per_hour == 0.75


@pytest.mark.parametrize(
    ("abstract", "lambda_name"),
    [
        ("h100-8x", "gpu_8x_h100_sxm5"),
        ("h100-1x", "gpu_1x_h100_pcie"),
        ("a100-8x", "gpu_8x_a100"),
        ("a100-4x", "gpu_4x_a100"),
        ("a100-1x", "gpu_1x_a100"),
        ("a10-1x", "gpu_1x_a10"),
        # Lambda has no L4; a cloud's own name passes through as it is.
        ("l4-1x", "l4-1x"),
        ("gpu_1x_gh200", "gpu_1x_gh200"),
    ],
)
def test_abstract_instance_types_map_to_lambdas_names(provider, abstract, lambda_name):
    assert provider.instance_type_for(abstract) == lambda_name


async def test_lambda_sells_no_spot_machines(provider, fake):
    assert LambdaProvider.supports_spot is False
    with pytest.raises(ProviderError, match="no spot"):
        await provider.provision(request(spot=True))
    assert fake.calls == []


async def test_launches_are_spaced_by_the_launch_interval(settings, fake):
    # The fake refuses launches closer than Lambda's limit; the provider never meets it.
    fake.launch_interval = 0.3
    provider = LambdaProvider(attrs.evolve(settings, launch_interval=timedelta(seconds=0.3)))
    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(provider.provision, request(request_id=f"spaced-{n}"))
    times = [at for at, *_ in launches(fake)]
    assert len(times) == 3 and len(fake.instances) == 3
    assert all(later - earlier >= 0.3 for earlier, later in itertools.pairwise(times))


async def test_a_machine_is_reachable_at_its_public_ip(provider, fake):
    instance = await provider.provision(request())
    launched = fake.instances[instance.instance_id]
    assert instance.address == launched["ip"]
    [listed] = await provider.list()
    assert listed.address == launched["ip"]
    # Lambda's replies carry no SSH host keys.
    assert listed.host_keys == ()


async def test_a_machine_without_a_public_ip_is_reached_at_its_private_one(provider, fake):
    instance = await provider.provision(request())
    launched = fake.instances[instance.instance_id]
    del launched["ip"]
    [listed] = await provider.list()
    assert listed.address == launched["private_ip"]
    del launched["private_ip"]
    [listed] = await provider.list()
    assert listed.address == ""


async def test_reboot_restarts_the_machine_and_keeps_it(provider, fake):
    assert isinstance(provider, RebootingProvider)
    instance = await provider.provision(request())
    await provider.reboot(instance.instance_id)
    [(_, _, _, body, _)] = [c for c in fake.calls if c[2] == "/instance-operations/restart"]
    assert body == {"instance_ids": [instance.instance_id]}
    assert fake.restarts == [instance.instance_id]
    [listed] = await provider.list()
    assert (listed.instance_id, listed.address) == (instance.instance_id, instance.address)
