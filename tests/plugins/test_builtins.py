"""The built-in plugins on their own: the reactive autoscaler, the priority selector, the fake
provider."""

from __future__ import annotations

from datetime import timedelta

import pytest
import trio
from attrs import frozen

from navarch.plugins import (
    CapacityError,
    InstanceNotFound,
    InstanceState,
    ProvisionRequest,
    ScalingState,
)
from navarch.plugins.builtin.autoscalers import ReactiveAutoscaler, ReactiveSettings
from navarch.plugins.builtin.fake_provider import FakeProvider, FakeProviderSettings
from navarch.plugins.builtin.selectors import PrioritySelector


def state(utilization, current=3):
    return ScalingState(
        pool="p", current_nodes=current, min_nodes=1, max_nodes=10, utilization=utilization
    )


@pytest.mark.parametrize(
    ("utilization", "target"),
    [(80.0, 3), (80.1, 5), (100.0, 5), (20.0, 3), (19.9, 1), (0.0, 1), (50.0, 3), (None, 3)],
)
def test_reactive_thresholds_are_strict(utilization, target):
    scaler = ReactiveAutoscaler(ReactiveSettings(scale_up_at=80, scale_down_at=20, step=2))
    assert scaler.recommend(state(utilization)).target == target


def test_reactive_reason_names_the_threshold():
    scaler = ReactiveAutoscaler(ReactiveSettings())
    assert scaler.recommend(state(91.25)).reason == "utilization 91.2% is above 80%"
    assert scaler.recommend(state(None)).reason == "no utilization reported"


def test_priority_selector_orders_by_priority_and_keeps_ties_stable():
    @frozen
    class Entry:
        provider: str
        priority: int

    entries = [Entry("b", 2), Entry("a", 1), Entry("c", 2), Entry("d", 0)]
    ordered = PrioritySelector().order(entries)
    assert [e.provider for e in ordered] == ["d", "a", "b", "c"]


async def test_fake_provider_lifecycle_and_capacity(autojump_clock):
    provider = FakeProvider(
        FakeProviderSettings(capacity=2, provision_delay=timedelta(seconds=5)), name="local"
    )
    request = ProvisionRequest(name="n", instance_type="h100-8x", pool="dev")
    start = trio.current_time()
    first = await provider.provision(request)
    assert trio.current_time() - start == pytest.approx(5)
    assert first.state is InstanceState.RUNNING
    # Unique across restarts: the provider's name, a token of this run, a counter.
    assert first.instance_id.startswith("local-") and first.instance_id.endswith("-1")
    second = await provider.provision(request)
    with pytest.raises(CapacityError):
        await provider.provision(request)
    await provider.terminate(first.instance_id)
    assert [i.instance_id for i in await provider.list()] == [second.instance_id]
    with pytest.raises(InstanceNotFound):
        await provider.terminate("local-99")
    [itype] = await provider.instance_types()
    assert itype.available_regions == ("local",)
