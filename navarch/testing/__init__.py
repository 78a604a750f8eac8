"""What plugin authors test with, as `trio.testing` is what trio programs test with.

- `ProviderContract`: the provider contract as pytest tests, which a provider package subclasses
  to run them against its own provider.
- `MockProviderContext`: the context a provider's `attach` gets, for a test.
- `control_plane`: a control plane in this process, with its pools and their fake machines, that
  a test drives through the real API.
- `pool_lifecycle_scenario` and `run_scenario`: a pool's whole life on a provider (grow from 0
  to 2, replace a failed node, shrink to 0), run by the simulator against the provider's cloud.
- `build_fake_nvml` and `FakeNvml`: a fake libnvidia-ml, compiled from the C source that ships in
  this package, whose GPUs a test sets, for health checks tested on machines without GPUs.

The test kit needs pytest and pytest-trio (navarch's `test` extra). navarch itself never imports
this package.
"""

import pytest

# The contract's asserts explain themselves the way a test module's do.
pytest.register_assert_rewrite("navarch.testing.provider_contract")

from navarch.testing.fake_nvml import CompilerNotFound, FakeNvml, build_fake_nvml  # noqa: E402
from navarch.testing.in_process import InProcessControlPlane, control_plane  # noqa: E402
from navarch.testing.lifecycle import pool_lifecycle_scenario, run_scenario  # noqa: E402
from navarch.testing.provider_context import MockProviderContext  # noqa: E402
from navarch.testing.provider_contract import ProviderContract  # noqa: E402

__all__ = [
    "CompilerNotFound",
    "FakeNvml",
    "InProcessControlPlane",
    "MockProviderContext",
    "ProviderContract",
    "build_fake_nvml",
    "control_plane",
    "pool_lifecycle_scenario",
    "run_scenario",
]
