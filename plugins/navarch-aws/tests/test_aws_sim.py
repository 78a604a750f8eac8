"""The installed AWS provider under navarch itself: its CLI, and a pool in the simulator that
scales up, replaces a failed node and scales down against moto's EC2 on loopback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cloud import ACCESS_KEY, REGION, SECRET_KEY, moto_client, moto_url, register_image

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
        f'{config}: providers.ec2.images: expected an id such as "ami-0123456789abcdef0", '
        f'got "img-0123456789abcdef0" for us-east-1' in refused.stderr
    )

    no_keys = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID",)}
    missing = run("-m", "navarch", "config", "check", "examples/aws.toml", env=no_keys)
    assert missing.returncode == 2
    assert "providers.ec2: no AWS credentials: set AWS_ACCESS_KEY_ID" in missing.stderr


SCENARIO = """
name = "aws-queue"
description = "A queue-sized pool on EC2 grows to two nodes, replaces a failed one, and empties."

[config.server]
heartbeat_interval = "1s"
health_check_interval = "1s"

[config.providers.ec2]
type = "aws"
endpoint_url = "{url}"
image_id = "{image}"
regions = ["{region}"]
request_timeout = "10s"

[config.pools.awsq]
instance_type = "a10-1x"
min_nodes = 0
max_nodes = 2
scale_interval = "1s"
[config.pools.awsq.autoscaler]
type = "queue"
jobs_per_node = 1
[config.pools.awsq.scaling.scale_down]
window = "0s"
delay_after_scale_up = "0s"
drain = false
[config.pools.awsq.health]
breaker_percent = 100
[[config.pools.awsq.providers]]
provider = "ec2"
regions = ["{region}"]

[[events]]
at = "0s"
action = "set_queue_depth"
pool = "awsq"
depth = 2

[[events]]
at = "0s"
action = "wait_for"
check = "count"
pool = "awsq"
status = "active"
equals = 2
timeout = "30s"

[[events]]
at = "0s"
action = "inject_failure"
pool = "awsq"
failure = "xid"
xid = 79

[[events]]
at = "0s"
action = "wait_for"
check = "event"
kind = "remediation.completed"
min = 1
timeout = "30s"

[[events]]
at = "0s"
action = "wait_for"
check = "count"
pool = "awsq"
status = "active"
equals = 2
timeout = "30s"

[[events]]
at = "0s"
action = "set_queue_depth"
pool = "awsq"
depth = 0

[[events]]
at = "0s"
action = "wait_for"
check = "count"
pool = "awsq"
status = "active"
equals = 0
timeout = "30s"

[[events]]
at = "0s"
action = "wait_for"
check = "count"
pool = "awsq"
status = "terminated"
equals = 3
timeout = "30s"

[[assertions]]
check = "no_lost_instances"
"""


@pytest.mark.slow
def test_a_pool_on_ec2_scales_up_replaces_a_failed_node_and_scales_down(env, tmp_path, moto_url):
    scenario = tmp_path / "aws-queue.toml"
    image = register_image(moto_url, SIM_REGION)
    scenario.write_text(SCENARIO.format(url=moto_url, image=image, region=SIM_REGION))
    # In real time: the provider waits on moto over HTTP, which virtual time would skip.
    ran = run(
        *("-m", "navarch", "sim", "run", str(scenario), "--real-time"),
        *("--report", str(tmp_path)),
        env=env,
        timeout=120,
    )
    pages = moto_client(moto_url, region=SIM_REGION).get_paginator("describe_instances")
    described = [
        i
        for page in pages.paginate()
        for reservation in page["Reservations"]
        for i in reservation["Instances"]
    ]
    states = [i["State"]["Name"] for i in described]
    assert ran.returncode == 0, ran.stdout + ran.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"]
    # Two for the queue and one replacement, each ended by navarch.
    assert sorted(states) == ["terminated"] * 3
    # The pool's a10-1x, as EC2 names it.
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
