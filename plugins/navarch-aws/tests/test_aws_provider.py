"""What the AWS provider asks of EC2, and what it makes of EC2's answers."""

import base64

import pytest
from aws_cloud import REGION, aws_env, ec2_proxy, image_id, moto_client, moto_url
from aws_describe import Described, describe_instances, terminate_instances
from navarch_aws import AwsProvider, AwsSettings

from navarch.plugins import (
    POOL_LABEL,
    InstanceNotFound,
    InstanceState,
    ProvisionRequest,
    RebootingProvider,
)

__all__ = ["aws_env", "ec2_proxy", "image_id", "moto_url"]


def request(pool="train", **changes):
    fields = {
        "name": pool,
        "instance_type": "g5.xlarge",
        "region": REGION,
        "pool": pool,
        "labels": {POOL_LABEL: pool, "team": "vision"},
        "request_id": f"req-{pool}",
    }
    return ProvisionRequest(**{**fields, **changes})


@pytest.fixture
def provider(aws_env, ec2_proxy, image_id):
    return AwsProvider(AwsSettings(endpoint_url=ec2_proxy.url, image_id=image_id))


@pytest.fixture
def moto(moto_url):
    return moto_client(moto_url)


def tags(form):
    """The instance tags of a RunInstances call's form."""
    assert form["TagSpecification.1.ResourceType"] == "instance"
    found, n = {}, 1
    while f"TagSpecification.1.Tag.{n}.Key" in form:
        found[form[f"TagSpecification.1.Tag.{n}.Key"]] = form[f"TagSpecification.1.Tag.{n}.Value"]
        n += 1
    return found


async def test_provision_launches_one_tagged_instance_with_a_client_token(
    provider, ec2_proxy, image_id, moto, aws_env
):
    instance = await provider.provision(request("launch", user_data="#cloud-config\n"))
    (form,) = ec2_proxy.of("RunInstances")
    assert form["ImageId"] == image_id
    assert form["InstanceType"] == "g5.xlarge"
    assert (form["MinCount"], form["MaxCount"]) == ("1", "1")
    assert form["ClientToken"] == "req-launch"
    assert base64.b64decode(form["UserData"]) == b"#cloud-config\n"
    assert "InstanceMarketOptions.MarketType" not in form
    assert "Placement.AvailabilityZone" not in form
    assert tags(form) == {
        POOL_LABEL: "launch",
        "team": "vision",
        "Name": "launch",
        "navarch.io/request-id": "req-launch",
    }
    assert instance.state is InstanceState.PROVISIONING
    assert instance.spot is False
    assert instance.created_at is not None
    described = moto.describe_instances(InstanceIds=[instance.instance_id])
    (made,) = described["Reservations"][0]["Instances"]
    assert made["ImageId"] == image_id


async def test_without_user_data_none_is_sent(provider, ec2_proxy):
    await provider.provision(request("plain"))
    (form,) = ec2_proxy.of("RunInstances")
    assert "UserData" not in form


async def test_a_spot_request_asks_for_a_one_time_spot_instance(provider, ec2_proxy):
    instance = await provider.provision(request("spot", spot=True))
    (form,) = ec2_proxy.of("RunInstances")
    assert form["InstanceMarketOptions.MarketType"] == "spot"
    assert form["InstanceMarketOptions.SpotOptions.SpotInstanceType"] == "one-time"
    assert form["InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior"] == "terminate"
    assert instance.spot is True
    (listed,) = [i for i in await provider.list() if i.pool == "spot"]
    assert listed.spot is True


async def test_a_zone_places_the_instance_in_its_subnet(
    aws_env, ec2_proxy, image_id, moto, moto_url
):
    moto_client(moto_url, "iam").create_instance_profile(InstanceProfileName="navarch-node")
    moto.create_key_pair(KeyName="ops")
    subnets = moto.describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1b"]}]
    )["Subnets"]
    subnet = subnets[0]["SubnetId"]
    provider = AwsProvider(
        AwsSettings(
            endpoint_url=ec2_proxy.url,
            image_id=image_id,
            subnets={"us-east-1b": subnet},
            key_name="ops",
            iam_instance_profile="navarch-node",
        )
    )
    instance = await provider.provision(request("zoned", region="", zone="us-east-1b"))
    (form,) = ec2_proxy.of("RunInstances")
    assert form["Placement.AvailabilityZone"] == "us-east-1b"
    assert form["SubnetId"] == subnet
    assert form["KeyName"] == "ops"
    assert form["IamInstanceProfile.Name"] == "navarch-node"
    assert (instance.region, instance.zone) == ("us-east-1", "us-east-1b")


async def test_a_retry_finds_the_instance_by_its_request_id_tag(provider, ec2_proxy):
    first = await provider.provision(request("retried"))
    again = await provider.provision(request("retried"))
    assert again.instance_id == first.instance_id
    # moto makes a second instance for a repeated client token; the tag lookup keeps it from.
    assert len(ec2_proxy.of("RunInstances")) == 1


async def test_a_new_provider_finds_and_terminates_instances_in_the_listed_regions(
    aws_env, ec2_proxy, image_id, moto_url
):
    settings = AwsSettings(endpoint_url=ec2_proxy.url, images={"eu-west-1": image_id})
    made = await AwsProvider(settings).provision(request("abroad", region="eu-west-1"))
    # After a restart: the new provider has never provisioned, and looks in the regions it knows.
    restarted = AwsProvider(settings)
    listed = [i for i in await restarted.list() if i.pool == "abroad"]
    assert [(i.instance_id, i.region) for i in listed] == [(made.instance_id, "eu-west-1")]
    await AwsProvider(settings).terminate(made.instance_id)
    assert [i for i in await restarted.list() if i.pool == "abroad"] == []
    with pytest.raises(InstanceNotFound, match="in us-east-1, eu-west-1"):
        await AwsProvider(settings).terminate("i-0123456789abcdef0")


async def test_list_pages_through_every_instance_and_reports_what_the_cloud_took_back(
    provider, ec2_proxy
):
    pages = {
        "": describe_instances(
            [
                Described("i-0000000000000000a", "pending", spot=False),
                Described("i-0000000000000000b", "running", public_ip="203.0.113.7"),
                Described("i-0000000000000000c", "terminated", "Server.SpotInstanceTermination"),
                Described("i-0000000000000000d", "terminated", "Client.UserInitiatedShutdown"),
            ],
            next_token="page-2",
        ),
        "page-2": describe_instances(
            [
                Described("i-0000000000000000e", "stopped", "Server.SpotInstanceShutdown"),
                Described("i-0000000000000000f", "shutting-down", "Client.UserInitiatedShutdown"),
                Described("i-00000000000000010", "stopped", "Client.InstanceInitiatedShutdown"),
                Described("i-00000000000000011", "stopping", "Server.ScheduledStop"),
            ]
        ),
    }
    answers = {
        "DescribeInstances": lambda form: (200, pages[form.get("NextToken", "")]),
        "TerminateInstances": lambda form: (
            200,
            terminate_instances(form["InstanceId.1"], "terminated"),
        ),
    }
    ec2_proxy.responder = lambda action, form: answers[action](form)
    listed = {i.instance_id: i for i in await provider.list()}
    assert {key: i.state for key, i in listed.items()} == {
        "i-0000000000000000a": InstanceState.PROVISIONING,
        "i-0000000000000000b": InstanceState.RUNNING,
        "i-0000000000000000c": InstanceState.PREEMPTED,
        "i-0000000000000000e": InstanceState.PREEMPTED,
        # Stopped by its own OS: it still exists, and runs no node.
        "i-00000000000000010": InstanceState.FAILED,
        "i-00000000000000011": InstanceState.PREEMPTED,
    }
    assert listed["i-0000000000000000b"].address == "203.0.113.7"
    # Without a public IP, the instance is reached at its private one.
    assert listed["i-0000000000000000a"].address == "172.31.16.5"
    preempted = listed["i-0000000000000000c"]
    assert (preempted.pool, preempted.zone, preempted.spot) == ("train", "us-east-1b", True)
    assert preempted.labels == {POOL_LABEL: "train"}
    assert preempted.created_at.isoformat() == "2025-06-02T09:30:00+00:00"
    (first, second) = ec2_proxy.of("DescribeInstances")
    assert (first["Filter.1.Name"], first["Filter.1.Value.1"]) == ("tag-key", POOL_LABEL)
    assert second["NextToken"] == "page-2"

    # Once navarch has terminated it, a preempted instance is no longer listed.
    await provider.terminate("i-0000000000000000c")
    assert "i-0000000000000000c" not in {i.instance_id for i in await provider.list()}


async def test_the_catalog_has_the_mapped_types_with_their_gpus_prices_and_regions(
    aws_env, ec2_proxy
):
    provider = AwsProvider(AwsSettings(endpoint_url=ec2_proxy.url, prices={"g5.xlarge": 0.75}))
    types = {t.name: t for t in await provider.instance_types()}
    assert sorted(types) == ["g5.xlarge", "g6.xlarge", "p4d.24xlarge", "p5.48xlarge", "p5.4xlarge"]
    h100 = types["p5.48xlarge"]
    assert (h100.gpu_count, h100.gpu_type, h100.price_per_hour) == (8, "NVIDIA H100", 55.04)
    assert types["g5.xlarge"].price_per_hour == 0.75
    assert types["g6.xlarge"].gpu_type == "NVIDIA L4"
    assert h100.available_regions == ("us-east-1",)
    calls = len(ec2_proxy.calls)
    await provider.instance_types()
    assert len(ec2_proxy.calls) == calls  # kept for an hour


def test_abstract_instance_types_map_to_ec2_types():
    provider = AwsProvider(AwsSettings())
    assert {
        name: provider.instance_type_for(name)
        for name in ("h100-8x", "h100-1x", "a100-8x", "a10-1x", "l4-1x", "a100-4x", "p5e.48xlarge")
    } == {
        "h100-8x": "p5.48xlarge",
        "h100-1x": "p5.4xlarge",
        "a100-8x": "p4d.24xlarge",
        "a10-1x": "g5.xlarge",
        "l4-1x": "g6.xlarge",
        "a100-4x": "a100-4x",
        "p5e.48xlarge": "p5e.48xlarge",
    }


async def test_an_instance_is_reachable_at_its_public_ip(provider, moto):
    instance = await provider.provision(request("reached"))
    (made,) = moto.describe_instances(InstanceIds=[instance.instance_id])["Reservations"][0][
        "Instances"
    ]
    assert instance.address == made["PublicIpAddress"]
    (listed,) = [i for i in await provider.list() if i.pool == "reached"]
    assert listed.address == made["PublicIpAddress"]
    # EC2's descriptions carry no SSH host keys.
    assert listed.host_keys == ()


async def test_reboot_asks_ec2_to_reboot_the_instance_and_keeps_it(provider, ec2_proxy):
    assert isinstance(provider, RebootingProvider)
    instance = await provider.provision(request("rebooted"))
    await provider.reboot(instance.instance_id)
    (form,) = ec2_proxy.of("RebootInstances")
    assert form["InstanceId.1"] == instance.instance_id
    (listed,) = [i for i in await provider.list() if i.pool == "rebooted"]
    assert (listed.instance_id, listed.state) == (instance.instance_id, InstanceState.RUNNING)


async def test_reboot_finds_the_region_of_an_instance_another_provider_made(
    aws_env, ec2_proxy, image_id
):
    settings = AwsSettings(endpoint_url=ec2_proxy.url, images={"eu-west-1": image_id})
    made = await AwsProvider(settings).provision(request("reboot-abroad", region="eu-west-1"))
    await AwsProvider(settings).reboot(made.instance_id)
    assert ec2_proxy.of("RebootInstances")[-1]["InstanceId.1"] == made.instance_id
    with pytest.raises(InstanceNotFound, match="in us-east-1, eu-west-1"):
        await AwsProvider(settings).reboot("i-0123456789abcdef0")
