"""A pool on the gcp provider runs in navarch's simulator, against the fake Compute Engine."""

import json
import os
import subprocess
import sys

import pytest
from fake_gce import FakeGce

SCENARIO = """
name = "gcp-pool"
description = "A queue-sized pool on Compute Engine grows, replaces a failed node, empties."

[config.server]
heartbeat_interval = "1s"
health_check_interval = "1s"

[config.providers.g]
type = "gcp"
project = "{project}"
compute_url = "{compute_url}"
credentials_file = "{key}"

[config.pools.train]
instance_type = "h100-8x"
min_nodes = 0
max_nodes = 2
scale_interval = "1s"
[[config.pools.train.providers]]
provider = "g"
zones = ["us-central1-a"]
[config.pools.train.autoscaler]
type = "queue"
jobs_per_node = 1
[config.pools.train.scaling.scale_down]
window = "0s"
delay_after_scale_up = "0s"

[[events]]
at = "0s"
action = "set_queue_depth"
pool = "train"
depth = 2

[[events]]
at = "0s"
action = "wait_for"
check = "count"
pool = "train"
status = "active"
equals = 2
timeout = "20s"

[[events]]
at = "1s"
action = "inject_failure"
pool = "train"
failure = "xid"
xid = 79

[[events]]
at = "1s"
action = "wait_for"
check = "event"
kind = "remediation.completed"
min = 1
timeout = "20s"

[[events]]
at = "1s"
action = "wait_for"
check = "count"
pool = "train"
status = "active"
equals = 2
timeout = "20s"

[[events]]
at = "2s"
action = "set_queue_depth"
pool = "train"
depth = 0

[[events]]
at = "2s"
action = "wait_for"
check = "count"
pool = "train"
status = "active"
equals = 0
timeout = "20s"

# Every node terminated: the pool's machines are deleted.
[[events]]
at = "2s"
action = "wait_for"
check = "count"
pool = "train"
equals = 0
timeout = "20s"

[[assertions]]
check = "event"
kind = "instance.provisioned"
equals = 3

[[assertions]]
check = "no_lost_instances"
"""


@pytest.mark.slow
def test_a_pool_scales_up_replaces_a_failed_node_and_scales_to_zero(tmp_path):
    with FakeGce() as gce:
        gce.op_polls = 1
        key = gce.service_account_key(tmp_path / "key.json")
        scenario = tmp_path / "gcp-pool.toml"
        scenario.write_text(
            SCENARIO.format(project=gce.project, compute_url=gce.compute_url, key=key)
        )
        # In real time: the provider waits on a real HTTP server, which virtual time would skip.
        ran = subprocess.run(
            [
                *(sys.executable, "-m", "navarch", "sim", "run", str(scenario), "--real-time"),
                *("--report", str(tmp_path / "report")),
            ],
            capture_output=True,
            text=True,
            env={**os.environ},
            timeout=120,
            check=False,
        )
        left = dict(gce.instances)
        made = len(gce.inserted)
        # The pool's h100-8x, as Compute Engine names it.
        types = {body["machineType"].rsplit("/", 1)[-1] for body in gce.inserted}
    assert ran.returncode == 0, ran.stdout + ran.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["passed"]
    assert made == 3
    assert types == {"a3-highgpu-8g"}
    assert left == {}
