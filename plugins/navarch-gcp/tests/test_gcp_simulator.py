"""A pool on the gcp provider runs in navarch's simulator, against the fake Compute Engine."""

import pytest
from fake_gce import FakeGce

from navarch.testing import pool_lifecycle_scenario, run_scenario


@pytest.mark.slow
def test_a_pool_scales_up_replaces_a_failed_node_and_scales_to_zero(tmp_path):
    with FakeGce() as gce:
        gce.op_polls = 1
        provider = {
            "type": "gcp",
            "project": gce.project,
            "compute_url": gce.compute_url,
            "credentials_file": str(gce.service_account_key(tmp_path / "key.json")),
        }
        scenario = pool_lifecycle_scenario(provider, entry={"zones": ["us-central1-a"]})
        report = run_scenario(scenario, tmp_path)
        left = dict(gce.instances)
        made = len(gce.inserted)
        # The pool's h100-8x, as Compute Engine names it.
        types = {body["machineType"].rsplit("/", 1)[-1] for body in gce.inserted}
    assert report["passed"]
    assert made == 3
    assert types == {"a3-highgpu-8g"}
    assert left == {}
