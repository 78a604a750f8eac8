"""The installed AWS provider under navarch itself: its CLI, and a pool in the simulator that
scales up, replaces a failed node and scales down against moto's EC2 on loopback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cloud import ACCESS_KEY, REGION, SECRET_KEY, moto_client, moto_url, register_image

from navarch.testing import pool_lifecycle_scenario, run_scenario

__all__ = ["moto_url"]

# A region no other test uses: `no_lost_instances` counts every instance the provider lists.
SIM_REGION = "us-west-2"

REPO = Path(__file__).resolve().parents[3]


def run(*args, env, cwd=REPO, timeout=60):
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def env(tmp_path):
    """A process environment whose AWS credential chain holds only the fake key."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **keep,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.mark.slow
def test_navarch_loads_the_plugin_and_checks_its_table(env, tmp_path):
    listed = run("-m", "navarch", "plugins", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["aws"]["distribution"] == "navarch-aws"
    assert rows["aws"]["registered"] == ["provider:aws"]
    assert rows["aws"]["error"] is None

    checked = run("-m", "navarch", "config", "check", "examples/aws.toml", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "providers: ec2 (aws)" in checked.stdout

    example = (REPO / "examples" / "aws.toml").read_text()
    config = tmp_path / "navarch.toml"
    config.write_text(example.replace('us-east-1 = "ami-0123', 'us-east-1 = "img-0123'))
    refused = run("-m", "navarch", "config", "check", str(config), env=env)
    assert refused.returncode == 2
    assert (
        f"{config}: providers.ec2.images.us-east-1: expected an id such as "
        f'"ami-0123456789abcdef0", got "img-0123456789abcdef0"' in refused.stderr
    )

    no_keys = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID",)}
    missing = run("-m", "navarch", "config", "check", "examples/aws.toml", env=no_keys)
    assert missing.returncode == 2
    assert "providers.ec2: no AWS credentials: set AWS_ACCESS_KEY_ID" in missing.stderr


@pytest.mark.slow
def test_a_pool_on_ec2_scales_up_replaces_a_failed_node_and_scales_down(env, tmp_path, moto_url):
    provider = {
        "type": "aws",
        "endpoint_url": moto_url,
        "image_id": register_image(moto_url, SIM_REGION),
        "regions": [SIM_REGION],
        "request_timeout": "10s",
    }
    # a10-1x: navarch's abstract name, which the plugin maps to EC2's g5.xlarge.
    scenario = pool_lifecycle_scenario(
        provider, instance_type="a10-1x", entry={"regions": [SIM_REGION]}
    )
    report = run_scenario(scenario, tmp_path, env=env)
    pages = moto_client(moto_url, region=SIM_REGION).get_paginator("describe_instances")
    described = [
        i
        for page in pages.paginate()
        for reservation in page["Reservations"]
        for i in reservation["Instances"]
    ]
    assert report["passed"]
    # Two for the queue and one replacement, each ended by navarch.
    assert sorted(i["State"]["Name"] for i in described) == ["terminated"] * 3
    assert {i["InstanceType"] for i in described} == {"g5.xlarge"}


def test_loading_the_plugin_leaves_boto3_and_trio_unimported(env):
    # navarch loads every plugin for every command; boto3 takes longer to import than navarch,
    # and `navarch --help` imports no runtime.
    probe = (
        "import sys, navarch_aws; print(sorted({'boto3', 'botocore', 'trio'} & set(sys.modules)))"
    )
    loaded = run("-c", probe, env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
