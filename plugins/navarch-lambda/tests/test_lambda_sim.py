"""A pool on Lambda in the simulator, in real time against the fake Lambda API on loopback: the
installed plugin scales the pool up, replaces a failed node and scales it down through the API."""

import json
import os
import subprocess
import sys

import pytest
from fake_lambda import API_KEY, FakeLambda

SCENARIO = """
name = "lambda-pool"
description = "A pool on Lambda grows to two nodes, replaces one that fails, and empties."

[config.server]
heartbeat_interval = "1s"
health_check_interval = "1s"

[config.providers.lam]
type = "lambda"
url = "{url}"
ssh_key_name = "ops"
launch_interval = "300ms"
backoff = "100ms"

[config.pools.train]
# navarch's abstract name: the plugin maps it to Lambda's gpu_8x_h100_sxm5.
instance_type = "h100-8x"
min_nodes = 0
max_nodes = 2
scale_interval = "1s"
[[config.pools.train.providers]]
provider = "lam"
[config.pools.train.autoscaler]
type = "queue"
jobs_per_node = 1
[config.pools.train.scaling.scale_down]
window = "1s"
delay_after_scale_up = "1s"
[config.pools.train.health]
drain_timeout = "2s"

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
at = "0s"
action = "inject_failure"
pool = "train"
failure = "xid"
xid = 79

[[events]]
at = "0s"
action = "wait_for"
check = "event"
kind = "remediation.completed"
equals = 1
timeout = "20s"

[[events]]
at = "0s"
action = "wait_for"
check = "count"
pool = "train"
status = "active"
equals = 2
timeout = "20s"

[[events]]
at = "0s"
action = "set_queue_depth"
pool = "train"
depth = 0

[[events]]
at = "0s"
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
def test_a_pool_on_lambda_scales_up_replaces_a_failed_node_and_scales_down(tmp_path):
    fake = FakeLambda()
    # Lambda's own limit on launches, shortened as the scenario shortens the provider's spacing.
    fake.launch_interval = 0.3
    with fake.serve() as url:
        scenario = tmp_path / "lambda-pool.toml"
        scenario.write_text(SCENARIO.format(url=url))
        # In real time: the provider waits on a real HTTP server, which virtual time would skip.
        ran = subprocess.run(
            [
                *(sys.executable, "-m", "navarch", "sim", "run", str(scenario)),
                *("--real-time", "--report", str(tmp_path)),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "LAMBDA_API_KEY": API_KEY},
            timeout=120,
            check=False,
        )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"]
    assert len(fake.instances) == 3
    # The pool's h100-8x, as Lambda names it.
    assert {i["instance_type"]["name"] for i in fake.instances.values()} == {"gpu_8x_h100_sxm5"}
    assert fake.live() == []
    launched = [call for call in fake.calls if call[2] == "/instance-operations/launch"]
    assert len(launched) == 3, "a launch was refused or repeated"
