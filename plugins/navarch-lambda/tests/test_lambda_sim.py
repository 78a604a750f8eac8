"""A pool on Lambda in the simulator, in real time against the fake Lambda API on loopback: the
installed plugin scales the pool up, replaces a failed node and scales it down through the API."""

import pytest
from fake_lambda import API_KEY, FakeLambda

from navarch.testing import pool_lifecycle_scenario, run_scenario


@pytest.mark.slow
def test_a_pool_on_lambda_scales_up_replaces_a_failed_node_and_scales_down(tmp_path):
    fake = FakeLambda()
    # Lambda's own limit on launches, shortened as the scenario shortens the provider's spacing.
    fake.launch_interval = 0.3
    with fake.serve() as url:
        provider = {
            "type": "lambda",
            "url": url,
            "ssh_key_name": "ops",
            "launch_interval": "300ms",
            "backoff": "100ms",
        }
        # navarch's abstract h100-8x, which the plugin maps to Lambda's gpu_8x_h100_sxm5.
        report = run_scenario(
            pool_lifecycle_scenario(provider), tmp_path, env={"LAMBDA_API_KEY": API_KEY}
        )
    assert report["passed"]
    assert len(fake.instances) == 3
    assert {i["instance_type"]["name"] for i in fake.instances.values()} == {"gpu_8x_h100_sxm5"}
    assert fake.live() == []
    launched = [call for call in fake.calls if call[2] == "/instance-operations/launch"]
    assert len(launched) == 3, "a launch was refused or repeated"
