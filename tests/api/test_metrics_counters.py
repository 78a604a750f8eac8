"""What the pools count for `/metrics`: the reason label of `navarch_pool_scaling_decisions_total`
(the rule of the core's scaling behavior that set each round's target), read from decisions the
real `ScalingBehavior` makes, so that a change of a rule's wording the label no longer recognises
fails here; and the kinds of `navarch_provider_errors_total`, counted by the real failover."""

from __future__ import annotations

from datetime import timedelta

import trio

from navarch.config import (
    PoolConfig,
    PoolProviderEntry,
    PoolScalingConfig,
    ScaleDownConfig,
    ScaleUpConfig,
)
from navarch.plugins import (
    AuthError,
    CapacityError,
    Instance,
    InstanceState,
    ProvisionRequest,
    QuotaError,
    Recommendation,
    ScalingState,
    TransientError,
)
from navarch.plugins.builtin.selectors import PrioritySelector
from navarch.pools.behavior import Decision, ScalingBehavior
from navarch.pools.candidates import candidates_for
from navarch.pools.counters import PoolCounters, decision_reason
from navarch.pools.failover import BlockList, provision_with_failover


def state(
    current: int, *, healthy: int | None = None, low: int = 0, high: int = 20
) -> ScalingState:
    return ScalingState(
        pool="p",
        current_nodes=current,
        min_nodes=low,
        max_nodes=high,
        healthy_nodes=current if healthy is None else healthy,
    )


def decide(
    behavior: ScalingBehavior, current: int, target: int | None, at: float, **bounds: int
) -> Decision:
    recommendation = None if target is None else Recommendation(target=target, reason="queue")
    return behavior.decide(state(current, **bounds), recommendation, at)


def test_each_rule_that_sets_the_target_is_its_reason() -> None:
    behavior = ScalingBehavior(PoolScalingConfig())
    assert decision_reason(decide(behavior, 4, 6, 0.0)) == "autoscaler"
    assert decision_reason(decide(behavior, 6, 40, 1.0)) in ("max_nodes", "scale_up_rate")
    assert decision_reason(decide(ScalingBehavior(), 4, 40, 0.0, high=6)) == "max_nodes"
    assert decision_reason(decide(ScalingBehavior(), 3, 0, 0.0, low=3)) == "min_nodes"
    assert decision_reason(decide(ScalingBehavior(), 4, None, 0.0)) == "no_autoscaler"
    # Scale-up by at most 1 node a minute.
    slow = ScalingBehavior(PoolScalingConfig(scale_up=ScaleUpConfig(nodes=1, percent=0)))
    assert decision_reason(decide(slow, 4, 9, 0.0)) == "scale_up_rate"
    # A recommendation of 10 a minute ago keeps the pool at 10 (the scale-down window) ...
    windowed = ScalingBehavior(
        PoolScalingConfig(scale_down=ScaleDownConfig(delay_after_scale_up=timedelta(0)))
    )
    decide(windowed, 10, 10, 0.0)
    assert decision_reason(decide(windowed, 10, 5, 60.0)) == "scale_down_window"
    # ... and a recent scale-up holds any scale-down.
    delayed = ScalingBehavior(PoolScalingConfig(scale_down=ScaleDownConfig(window=timedelta(0))))
    decide(delayed, 4, 8, 0.0)
    assert decision_reason(decide(delayed, 8, 5, 60.0)) == "scale_down_delay"
    # Two of four nodes are unhealthy: the pool grows to hold min_nodes healthy ones.
    assert decision_reason(decide(ScalingBehavior(), 4, 4, 0.0, healthy=2, low=4)) == "min_healthy"


def test_a_reason_not_known_is_other_and_counts_go_by_direction() -> None:
    strange = Decision(pool="p", previous=2, recommended=None, target=1, reasons=("?",), at=0.0)
    assert decision_reason(strange) == "other"
    counters = PoolCounters()
    counters.decided(strange)
    counters.decided(decide(ScalingBehavior(), 4, 6, 0.0))
    counters.decided(decide(ScalingBehavior(), 4, 4, 0.0))
    assert counters.decisions == {
        ("p", "down", "other"): 1,
        ("p", "up", "autoscaler"): 1,
        ("p", "hold", "autoscaler"): 1,
    }


class Failing:
    """A provider that raises `errors` one a call, then provisions."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)

    async def provision(self, request: ProvisionRequest) -> Instance:
        if self.errors:
            raise self.errors.pop(0)
        return Instance(
            instance_id="i-1",
            provider="last",
            instance_type=request.instance_type,
            state=InstanceState.RUNNING,
        )


async def test_provider_errors_count_by_kind_and_every_transient_retry_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    names = ["capacity", "quota", "auth", "odd", "flaky", "last"]
    entries = tuple(PoolProviderEntry(provider=name, priority=i) for i, name in enumerate(names))
    candidates = candidates_for(
        PoolConfig(instance_type="h100-8x", providers=entries, max_nodes=4),
        dict.fromkeys(names, "fake"),
    )
    providers = {
        "capacity": Failing(CapacityError("none left")),
        "quota": Failing(QuotaError("at quota")),
        "auth": Failing(AuthError("bad key")),
        "odd": Failing(KeyError("surprise")),
        "flaky": Failing(*[TransientError("503")] * 3),
        "last": Failing(),
    }
    counters = PoolCounters()
    request = ProvisionRequest(name="n1", instance_type="h100-8x", pool="p")
    result = await provision_with_failover(
        candidates, PrioritySelector(), providers, request, BlockList(), counters=counters
    )
    assert result.candidate.provider == "last"
    assert counters.provider_errors == {
        ("capacity", "capacity"): 1,
        ("quota", "quota"): 1,
        ("auth", "auth"): 1,
        ("odd", "other"): 1,
        ("flaky", "transient"): 3,
    }
    assert counters.provisions == {"last": 1}
