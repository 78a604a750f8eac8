from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.pool_config import pool_config, state

from navarch.config import PoolScalingConfig, ScaleDownConfig, ScaleUpConfig
from navarch.config.tables import ScalingPolicy
from navarch.errors import ConfigError
from navarch.plugins import Recommendation, ask
from navarch.plugins.builtin.autoscalers import ReactiveAutoscaler, ReactiveSettings
from navarch.pools.behavior import ScalingBehavior

MINUTE = 60.0


def behavior(up: dict | None = None, down: dict | None = None) -> ScalingBehavior:
    """Scaling behavior with every rule off unless a test turns it on."""
    up_rules = {"window": timedelta(0), "nodes": 1000, "percent": 0.0}
    down_rules = {
        "window": timedelta(0),
        "nodes": 1000,
        "percent": 0.0,
        "delay_after_scale_up": timedelta(0),
    }
    up_rules.update(up or {})
    down_rules.update(down or {})
    return ScalingBehavior(
        PoolScalingConfig(
            scale_up=ScaleUpConfig(**up_rules), scale_down=ScaleDownConfig(**down_rules)
        )
    )


def rec(target: int, reason: str = "asked") -> Recommendation:
    return Recommendation(target=target, reason=reason)


# Bounds and the healthy floor


def test_recommendation_is_clamped_to_min_and_max():
    b = behavior()
    high = b.decide(state(current_nodes=4, min_nodes=2, max_nodes=6), rec(9), 0.0)
    assert high.target == 6
    assert high.reasons == ("asked → 9", "clamped to max_nodes 6")
    low = b.decide(state(current_nodes=4, min_nodes=2, max_nodes=6), rec(0), 1.0)
    assert low.target == 2
    assert low.reason == "asked → 0; raised to min_nodes 2"


def test_pool_without_autoscaler_reaches_its_minimum_at_once():
    b = ScalingBehavior()  # defaults: at most 4 nodes or 100% per minute when in bounds
    decision = b.decide(state(current_nodes=0, min_nodes=10, max_nodes=20), None, 0.0)
    assert decision.target == 10
    assert decision.recommended is None
    assert decision.reason == "no autoscaler; holding 0; raised to min_nodes 10"


def test_pool_without_autoscaler_holds_above_its_minimum():
    decision = ScalingBehavior().decide(state(current_nodes=5, min_nodes=2), None, 0.0)
    assert (decision.target, decision.change) == (5, 0)


def test_unhealthy_nodes_do_not_count_toward_the_minimum():
    decision = behavior().decide(
        state(current_nodes=3, healthy_nodes=2, min_nodes=3), rec(3, "hold"), 0.0
    )
    assert decision.target == 4
    assert decision.reasons[-1] == "raised to 4 to hold 3 healthy nodes (2 healthy, 0 provisioning)"


def test_nodes_in_flight_count_so_the_pool_does_not_over_provision():
    b = ScalingBehavior()
    first = b.decide(state(current_nodes=0, healthy_nodes=0, min_nodes=4), None, 0.0)
    assert first.target == 4
    # The four instances are still booting: they are in current_nodes and in_flight.
    for t in (30.0, 60.0, 90.0):
        booting = state(current_nodes=4, in_flight=4, healthy_nodes=0, min_nodes=4)
        assert b.decide(booting, None, t).target == 4
    # One registers unhealthy while the rest boot: one more is needed.
    one_bad = state(current_nodes=4, in_flight=3, healthy_nodes=0, min_nodes=4)
    assert b.decide(one_bad, None, 120.0).target == 5


def test_healthy_floor_never_exceeds_max():
    decision = behavior().decide(
        state(current_nodes=3, healthy_nodes=1, min_nodes=3, max_nodes=3), rec(3), 0.0
    )
    assert decision.target == 3


def test_healthy_floor_bypasses_windows_delay_and_rate_limits():
    b = behavior(up={"nodes": 1, "window": timedelta(minutes=5)})
    b.decide(state(current_nodes=5, min_nodes=5), rec(5), 0.0)
    decision = b.decide(state(current_nodes=5, healthy_nodes=1, min_nodes=5), rec(5), 10.0)
    assert decision.target == 9


def test_pool_above_max_goes_straight_to_max():
    b = behavior(down={"window": timedelta(minutes=5), "nodes": 1})
    b.decide(state(current_nodes=12, max_nodes=20), rec(12), 0.0)
    decision = b.decide(state(current_nodes=12, max_nodes=8), rec(12), 10.0)
    assert decision.target == 8
    assert decision.reason == "asked → 12; clamped to max_nodes 8"


# Stabilization windows


def test_scale_down_takes_the_highest_recommendation_of_its_window():
    b = behavior(down={"window": timedelta(minutes=5)})
    assert b.decide(state(current_nodes=10), rec(10), 0.0).target == 10
    assert b.decide(state(current_nodes=10), rec(7), 60.0).target == 10
    assert b.decide(state(current_nodes=10), rec(5), 120.0).target == 10
    held = b.decide(state(current_nodes=10), rec(5), 299.0)
    assert held.target == 10
    assert held.reasons[-1] == (
        "held at 10 by the scale-down window (highest recommendation in the last 5m)"
    )
    # At 300 s the first sample leaves the window (strictly older than 5 minutes counts out).
    partial = b.decide(state(current_nodes=10), rec(5), 300.0)
    assert partial.target == 7
    assert partial.reasons[-1].startswith("limited to 7 by the scale-down window")
    assert b.decide(state(current_nodes=7), rec(5), 360.0).target == 5


def test_scale_down_window_resets_on_a_higher_recommendation():
    b = behavior(down={"window": timedelta(minutes=5)})
    for t in range(0, 300, 30):
        b.decide(state(current_nodes=6), rec(3 if t != 150 else 6), float(t))
    assert b.decide(state(current_nodes=6), rec(3), 300.0).target == 6
    assert b.decide(state(current_nodes=6), rec(3), 449.0).target == 6
    assert b.decide(state(current_nodes=6), rec(3), 450.0).target == 3


def test_scale_up_takes_the_lowest_recommendation_of_its_window():
    b = behavior(up={"window": timedelta(minutes=1)})
    assert b.decide(state(current_nodes=4), rec(4), 0.0).target == 4
    held = b.decide(state(current_nodes=4), rec(8), 30.0)
    assert held.target == 4
    assert held.reasons[-1] == (
        "held at 4 by the scale-up window (lowest recommendation in the last 1m)"
    )
    assert b.decide(state(current_nodes=4), rec(8), 60.0).target == 8


def test_default_scale_up_window_acts_at_once():
    b = ScalingBehavior()
    b.decide(state(current_nodes=4), rec(4), 0.0)
    assert b.decide(state(current_nodes=4), rec(7), 15.0).target == 7


# Delay after scale-up


def test_scale_down_waits_after_a_scale_up():
    b = behavior(down={"delay_after_scale_up": timedelta(minutes=10)})
    assert b.decide(state(current_nodes=4), rec(6), 0.0).target == 6
    held = b.decide(state(current_nodes=6), rec(2), 60.0)
    assert held.target == 6
    assert held.reasons[-1] == "held at 6: scale-down waits 10m after a scale-up (9m left)"
    assert b.decide(state(current_nodes=6), rec(2), 599.0).target == 6
    assert b.decide(state(current_nodes=6), rec(2), 600.0).target == 2


def test_delay_does_not_hold_scale_up():
    b = behavior(down={"delay_after_scale_up": timedelta(minutes=10)})
    b.decide(state(current_nodes=4), rec(6), 0.0)
    assert b.decide(state(current_nodes=6), rec(9), 30.0).target == 9


# Rate limits


def test_scale_up_rate_in_nodes_per_period():
    b = behavior(up={"nodes": 1, "period": timedelta(minutes=1)})
    first = b.decide(state(current_nodes=4), rec(10), 0.0)
    assert first.target == 5
    assert first.reasons[-1] == "limited to 5 by the scale-up rate (at most 1 node per 1m)"
    again = b.decide(state(current_nodes=5), rec(10), 30.0)
    assert again.target == 5
    assert again.reasons[-1] == "held at 5 by the scale-up rate (at most 1 node per 1m)"
    assert b.decide(state(current_nodes=5), rec(10), 60.0).target == 6


@pytest.mark.parametrize(
    ("current", "percent", "expected"),
    [(4, 50.0, 6), (10, 10.0, 11), (3, 10.0, 4), (10, 100.0, 20), (0, 100.0, 0)],
)
def test_scale_up_rate_in_percent_rounds_up(current, percent, expected):
    b = behavior(up={"nodes": 0, "percent": percent})
    assert b.decide(state(current_nodes=current), rec(100), 0.0).target == expected


@pytest.mark.parametrize(("current", "expected"), [(1, 5), (2, 6), (4, 8), (10, 20)])
def test_default_scale_up_rate_is_four_nodes_or_double(current, expected):
    assert ScalingBehavior().decide(state(current_nodes=current), rec(50), 0.0).target == expected


@pytest.mark.parametrize(
    ("nodes", "percent", "expected"),
    [(1, 0.0, 9), (0, 50.0, 5), (0, 25.0, 7), (2, 10.0, 8), (3, 50.0, 5), (0, 100.0, 0)],
)
def test_scale_down_rate_takes_the_larger_allowance(nodes, percent, expected):
    b = behavior(down={"nodes": nodes, "percent": percent})
    assert b.decide(state(current_nodes=10), rec(0), 0.0).target == expected


def test_rate_limit_counts_changes_within_the_period():
    b = behavior(down={"nodes": 2, "period": timedelta(minutes=1)})
    assert b.decide(state(current_nodes=10), rec(0), 0.0).target == 8
    assert b.decide(state(current_nodes=8), rec(0), 20.0).target == 8
    assert b.decide(state(current_nodes=8), rec(0), 60.0).target == 6


def test_both_allowances_zero_stops_scaling_in_that_direction():
    b = behavior(up={"nodes": 0, "percent": 0.0})
    decision = b.decide(state(current_nodes=3), rec(6), 0.0)
    assert decision.target == 3
    assert decision.reasons[-1] == "held at 3 by the scale-up rate (at most no change per 1m)"


def policy(kind: str, value: float, seconds: int = 60) -> ScalingPolicy:
    return ScalingPolicy(type=kind, value=value, period=timedelta(seconds=seconds))


@pytest.mark.parametrize(("select", "expected"), [("max", 20), ("min", 14), ("disabled", 10)])
def test_select_policy_picks_the_largest_change_the_smallest_or_none(select, expected):
    up = {"policies": (policy("nodes", 4), policy("percent", 100)), "select_policy": select}
    assert behavior(up=up).decide(state(current_nodes=10), rec(50), 0.0).target == expected


@pytest.mark.parametrize(("select", "expected"), [("max", 5), ("min", 8), ("disabled", 10)])
def test_select_policy_applies_to_scale_down(select, expected):
    down = {"policies": (policy("nodes", 2), policy("percent", 50)), "select_policy": select}
    decision = behavior(down=down).decide(state(current_nodes=10), rec(0), 0.0)
    assert decision.target == expected
    if select == "disabled":
        assert decision.reasons[-1] == "held at 10 by the scale-down rate (select_policy disabled)"


def test_each_policy_counts_changes_over_its_own_period():
    # 1 node per 15 s, or 3 nodes per 2 minutes, whichever allows more.
    up = {"policies": (policy("nodes", 1, 15), policy("nodes", 3, 120))}
    b = behavior(up=up)
    assert b.decide(state(current_nodes=4), rec(20), 0.0).target == 7
    # 15 s later the first policy allows one more; the second, counting from 4, none.
    again = b.decide(state(current_nodes=7), rec(20), 15.0)
    assert again.target == 8
    assert again.reasons[-1] == (
        "limited to 8 by the scale-up rate (at most 1 node per 15s or 3 nodes per 2m)"
    )


def test_policies_in_toml_replace_the_shorthand(plugins):
    scaling = pool_config(
        plugins,
        """
        [pools.p.scaling.scale_up]
        select_policy = "min"

        [[pools.p.scaling.scale_up.policies]]
        type = "nodes"
        value = 2
        period = "15s"

        [[pools.p.scaling.scale_up.policies]]
        type = "percent"
        value = 50
        """,
    ).scaling
    assert scaling.scale_up.rates == (policy("nodes", 2, 15), policy("percent", 50, 60))
    assert scaling.scale_up.select_policy == "min"
    assert scaling.scale_down.rates == (policy("percent", 100),)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (
            "[pools.p.scaling.scale_down]\nnodes = 2\n[[pools.p.scaling.scale_down.policies]]\n"
            'type = "nodes"\nvalue = 1\n',
            "pools.p.scaling.scale_down.policies: set either policies or the one-policy shorthand "
            "(nodes, percent, period), not both; got nodes as well",
        ),
        (
            '[[pools.p.scaling.scale_up.policies]]\ntype = "nodes"\nvalue = 1.5\n',
            "pools.p.scaling.scale_up.policies[0].value: expected a whole number of nodes, got 1.5",
        ),
        (
            '[[pools.p.scaling.scale_up.policies]]\ntype = "pods"\nvalue = 1\n',
            'pools.p.scaling.scale_up.policies[0].type: expected "nodes" or "percent", got "pods"',
        ),
        (
            '[pools.p.scaling.scale_up]\nselect_policy = "most"\n',
            'pools.p.scaling.scale_up.select_policy: expected "max", "min" or "disabled", '
            'got "most"',
        ),
        (
            '[pools.p.scaling]\nprofile = "cheap"\n',
            'pools.p.scaling.profile: expected "balanced" or "optimize-cost", got "cheap"',
        ),
    ],
)
def test_bad_policies_name_their_key(plugins, table, problem):
    with pytest.raises(ConfigError) as caught:
        pool_config(plugins, table)
    assert caught.value.problems == [problem]


def test_optimize_cost_profile_sets_the_scale_down_defaults(plugins):
    down = pool_config(plugins, '[pools.p.scaling]\nprofile = "optimize-cost"\n').scaling.scale_down
    assert (down.window, down.delay_after_scale_up) == (timedelta(minutes=1), timedelta(minutes=2))
    assert down.rates == (policy("percent", 100, 15),)


def test_explicit_keys_override_the_profile(plugins):
    down = pool_config(
        plugins,
        """
        [pools.p.scaling]
        profile = "optimize-cost"

        [pools.p.scaling.scale_down]
        window = "3m"

        [[pools.p.scaling.scale_down.policies]]
        type = "nodes"
        value = 1
        """,
    ).scaling.scale_down
    assert (down.window, down.delay_after_scale_up) == (timedelta(minutes=3), timedelta(minutes=2))
    assert down.rates == (policy("nodes", 1),)


def test_balanced_profile_is_the_default():
    assert PoolScalingConfig().profile == "balanced"
    assert PoolScalingConfig().scale_down == ScaleDownConfig()


def test_decision_reason_chain_names_each_rule():
    scaler = ReactiveAutoscaler(ReactiveSettings(step=2))
    b = behavior(up={"nodes": 1})
    s = state(current_nodes=4, utilization=91.0)
    decision = b.decide(s, scaler.recommend(s), 0.0)
    assert (decision.previous, decision.recommended, decision.target) == (4, 6, 5)
    assert decision.reason == (
        "utilization 91.0% is above 80% → 6; limited to 5 by the scale-up rate "
        "(at most 1 node per 1m)"
    )


# Asking an autoscaler


def test_a_failing_autoscaler_holds_the_pool():
    class Broken:
        def recommend(self, state):
            raise KeyError("gpu")

    class Confused:
        def recommend(self, state):
            return 7

    answer = ask(Broken(), state(current_nodes=3))
    assert (answer.target, answer.reason) == (3, "autoscaler failed (KeyError: 'gpu'); holding")
    assert ask(Confused(), state(current_nodes=3)).target == 3


# Properties


steps = st.lists(
    st.tuples(
        st.integers(0, 30),  # current
        st.integers(0, 30),  # recommendation
        st.integers(0, 5),  # unhealthy or in flight
        st.integers(1, 120),  # seconds since the last round
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(steps=steps, low=st.integers(0, 10), span=st.integers(0, 10))
def test_target_stays_in_bounds_and_holds_the_healthy_floor(steps, low, span):
    high = max(low + span, 1)
    b = ScalingBehavior()
    now = 0.0
    last_up = None
    for current, recommended, missing, gap in steps:
        now += gap
        healthy = max(current - missing, 0)
        s = state(current_nodes=current, healthy_nodes=healthy, min_nodes=low, max_nodes=high)
        decision = b.decide(s, rec(recommended), now)
        assert low <= decision.target <= high
        floor = min(current + low - healthy if healthy < low else low, high)
        assert decision.target >= floor
        if low <= current <= high and decision.target < current:
            # No scale-down within the delay after a scale-up made from inside the bounds.
            assert last_up is None or now - last_up >= 600
        if decision.target > current:
            last_up = now
