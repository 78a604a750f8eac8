"""A pool on a provider plugin in the simulator: the plugin provisions and terminates, the
simulator boots and powers off its machines, and the real pool manager runs."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from types import SimpleNamespace

import pytest
import trio

from navarch.errors import ConfigError
from navarch.plugins import (
    Instance,
    InstanceNotFound,
    InstanceState,
    InstanceType,
    ProvisionRequest,
    hookimpl,
)
from navarch.plugins.manager import load_plugins
from navarch.sim.runner import run_scenario
from navarch.sim.scenario import parse_scenario


class PretendCloud:
    """A provider plugin with a cloud of its own in memory, as a third party would write one."""

    made: list[str] = []
    ended: list[str] = []

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._instances: dict[str, Instance] = {}

    async def provision(self, request: ProvisionRequest) -> Instance:
        await trio.lowlevel.checkpoint()
        instance = Instance(
            instance_id=f"pc-{next(self._ids)}",
            provider="pretend",
            instance_type=request.instance_type,
            state=InstanceState.RUNNING,
            region=request.region,
            pool=request.pool,
            labels=dict(request.labels),
        )
        self._instances[instance.instance_id] = instance
        self.made.append(instance.instance_id)
        return instance

    async def terminate(self, instance_id: str) -> None:
        await trio.lowlevel.checkpoint()
        if self._instances.pop(instance_id, None) is None:
            raise InstanceNotFound(instance_id)
        self.ended.append(instance_id)

    async def list(self) -> Sequence[Instance]:
        await trio.lowlevel.checkpoint()
        return list(self._instances.values())

    async def instance_types(self) -> Sequence[InstanceType]:
        await trio.lowlevel.checkpoint()
        return [InstanceType(name="h100-8x", gpu_count=2, gpu_type="Pretend H100")]


@hookimpl
def navarch_providers(register):
    register("pretend", PretendCloud)


PLUGINS = load_plugins(
    entry_points=False, extra={"pretend": SimpleNamespace(navarch_providers=navarch_providers)}
)

SCENARIO = """
name = "plugin-pool"
duration = "6m"
[config.server]
heartbeat_interval = "5s"
health_check_interval = "10s"
[config.providers.cloud]
type = "pretend"
[config.pools.training]
instance_type = "h100-8x"
min_nodes = 0
max_nodes = 4
scale_interval = "5s"
[[config.pools.training.providers]]
provider = "cloud"
[config.pools.training.autoscaler]
type = "queue"
jobs_per_node = 10
[config.pools.training.scaling.scale_down]
window = "10s"
delay_after_scale_up = "30s"

[[events]]
at = "0s"
action = "set_queue_depth"
pool = "training"
depth = 20

[[events]]
at = "1s"
action = "wait_for"
check = "count"
pool = "training"
status = "active"
equals = 2
timeout = "1m"

[[events]]
at = "2m"
action = "set_queue_depth"
pool = "training"
depth = 0

[[events]]
at = "2m1s"
action = "wait_for"
check = "count"
pool = "training"
equals = 0
timeout = "3m"

[[assertions]]
check = "count"
provider = "cloud"
status = "terminated"
equals = 2

[[assertions]]
check = "no_lost_instances"
"""


def test_a_pool_on_a_provider_plugin_scales_up_and_down_through_it() -> None:
    PretendCloud.made.clear()
    PretendCloud.ended.clear()
    scenario = parse_scenario(SCENARIO, plugins=PLUGINS)
    report = run_scenario(scenario)
    assert report["passed"], [a for a in report["assertions"] if not a["passed"]]
    assert sorted(PretendCloud.made) == ["pc-1", "pc-2"]
    assert sorted(PretendCloud.ended) == ["pc-1", "pc-2"]


def test_the_scenarios_own_machines_need_the_fake_provider() -> None:
    text = SCENARIO + '\n[[fleet]]\nid = "n1"\nprovider = "cloud"\npool = "training"\n'
    with pytest.raises(ConfigError) as raised:
        parse_scenario(text, plugins=PLUGINS)
    assert 'config.providers.cloud.type: the scenario\'s machines need the "fake" provider' in str(
        raised.value
    )
