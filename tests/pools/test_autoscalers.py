from __future__ import annotations

from datetime import UTC, datetime

import pytest
from attrs import frozen
from support.pool_config import autoscaler, state

from navarch.plugins import Recommendation, hookimpl
from navarch.plugins.manager import load_plugins


class Probe:
    """An autoscaler that answers a fixed target and remembers the states it was shown."""

    @frozen(kw_only=True)
    class Settings:
        answer: int = 0
        fail: bool = False

    seen: list = []

    def __init__(self, settings) -> None:
        self.settings = settings

    def recommend(self, state):
        Probe.seen.append(state)
        if self.settings.fail:
            raise RuntimeError("probe broke")
        return Recommendation(
            target=self.settings.answer, reason=f"probe says {self.settings.answer}"
        )


class ProbePlugin:
    @hookimpl
    def navarch_autoscalers(self, register):
        register("probe", Probe)


@pytest.fixture
def probing():
    Probe.seen.clear()
    return load_plugins(entry_points=False, extra={"probe": ProbePlugin()})


# target (HPA formula)


@pytest.mark.parametrize(
    ("utilization", "expected"),
    [
        (77.0, 4),  # ratio exactly 1.1: inside the tolerance
        (77.1, 5),  # just outside: ceil(4 * 1.1014) = 5
        (63.0, 4),  # ratio exactly 0.9: inside
        (62.9, 4),  # outside, but ceil(4 * 0.8986) is still 4
        (87.5, 5),  # 4 * 1.25 is exactly 5: no rounding up past it
        (100.0, 6),
        (35.0, 2),
        (0.0, 0),
    ],
)
def test_target_follows_the_hpa_formula_with_its_tolerance(plugins, utilization, expected):
    scaler = autoscaler(plugins, '[pools.p.autoscaler]\ntype = "target"\ntarget_value = 70\n')
    assert scaler.recommend(state(current_nodes=4, utilization=utilization)).target == expected


def test_target_reasons_say_ratio_or_tolerance(plugins):
    scaler = autoscaler(plugins, '[pools.p.autoscaler]\ntype = "target"\n')
    assert scaler.recommend(state(utilization=91.0)).reason == (
        "utilization 91.0% is 1.30 times the target 70%"
    )
    assert scaler.recommend(state(utilization=72.0)).reason == (
        "utilization 72.0% is within 10% of the target 70%"
    )


def test_target_counts_only_reporting_nodes_so_in_flight_ones_are_not_added_twice(plugins):
    scaler = autoscaler(plugins, '[pools.p.autoscaler]\ntype = "target"\ntarget_value = 60\n')
    # 4 registered nodes at 90% need 6; two more are already on their way.
    booting = state(current_nodes=6, in_flight=2, utilization=90.0)
    assert scaler.recommend(booting).target == 6


def test_target_holds_without_data(plugins):
    scaler = autoscaler(plugins, '[pools.p.autoscaler]\ntype = "target"\n')
    answer = scaler.recommend(state(current_nodes=3, utilization=None))
    assert (answer.target, answer.reason) == (3, "no utilization reported")
    assert scaler.recommend(state(current_nodes=2, in_flight=2, utilization=50.0)).target == 2


def test_target_holds_when_silent_nodes_would_turn_a_scale_up_around(plugins):
    scaler = autoscaler(plugins, '[pools.p.autoscaler]\ntype = "target"\ntarget_value = 30\n')
    # One of three nodes reports 40 %: the two silent ones count as idle for a scale-up, which
    # makes it 13 %, a scale-down, so the pool holds instead of growing to 4.
    answer = scaler.recommend(state(current_nodes=3, readings=(40.0, None, None), utilization=40.0))
    assert answer.target == 3
    assert answer.reason == (
        "utilization 40.0% is 1.33 times the target 30%; counting 2 without metrics at 0%, "
        "0.44 times, which turns the direction around"
    )


def test_target_counts_silent_nodes_as_busy_when_scaling_down(plugins):
    scaler = autoscaler(plugins, '[pools.p.autoscaler]\ntype = "target"\ntarget_value = 50\n')
    quiet = state(current_nodes=4, readings=(10.0, 10.0, None, None), utilization=10.0)
    answer = scaler.recommend(quiet)
    # (10 + 10 + 100 + 100) / 4 = 55 %: within the tolerance of 50 %, so no scale-down to 1.
    assert answer.target == 4
    assert answer.reason.endswith("counting 2 without metrics at 100%, 1.10 times, within 10%")


def test_target_counts_in_flight_instances_as_idle_only_when_scaling_up(plugins):
    scaler = autoscaler(plugins, '[pools.p.autoscaler]\ntype = "target"\ntarget_value = 50\n')
    # 3 nodes at 70 % alone would need ceil(3 * 1.4) = 5; with the booting one at 0 % the mean is
    # 52.5 %, within the tolerance, so the instance on its way is enough.
    warm = state(current_nodes=4, in_flight=1, readings=(70.0, 70.0, 70.0), utilization=70.0)
    assert scaler.recommend(warm).target == 4
    cold = state(current_nodes=4, in_flight=1, readings=(10.0, 10.0, 10.0), utilization=10.0)
    assert scaler.recommend(cold).target == 1  # ceil(3 * 10 / 50): the booting one is ignored


def test_target_reads_every_registered_node_as_reporting_without_readings(plugins):
    scaler = autoscaler(plugins, '[pools.p.autoscaler]\ntype = "target"\ntarget_value = 30\n')
    # A state built by a caller that gives only the mean, as before per-node readings existed.
    assert scaler.recommend(state(current_nodes=3, utilization=40.0)).target == 4


def test_target_with_zero_tolerance_acts_on_any_difference(plugins):
    scaler = autoscaler(plugins, '[pools.p.autoscaler]\ntype = "target"\ntolerance = 0.0\n')
    assert scaler.recommend(state(current_nodes=10, utilization=70.7)).target == 11


@pytest.mark.parametrize(
    ("current", "queue", "expected"),
    [(4, 30, 6), (4, 21, 4), (4, 19, 4), (4, 17, 4), (4, 8, 2), (0, 11, 3), (0, 0, 0)],
)
def test_target_on_queue_depth_keeps_jobs_per_node(plugins, current, queue, expected):
    scaler = autoscaler(
        plugins,
        '[pools.p.autoscaler]\ntype = "target"\nmetric = "queue_depth"\ntarget_value = 5\n',
    )
    assert scaler.recommend(state(current_nodes=current, queue_depth=queue)).target == expected


def test_target_on_queue_depth_holds_without_data(plugins):
    scaler = autoscaler(plugins, '[pools.p.autoscaler]\ntype = "target"\nmetric = "queue_depth"\n')
    assert scaler.recommend(state(current_nodes=3)).reason == "no queue depth reported"


# queue


@pytest.mark.parametrize(("queue", "expected"), [(0, 0), (1, 1), (10, 1), (11, 2), (95, 10)])
def test_queue_needs_ceil_of_depth_over_jobs_per_node(plugins, queue, expected):
    scaler = autoscaler(plugins, '[pools.p.autoscaler]\ntype = "queue"\njobs_per_node = 10\n')
    answer = scaler.recommend(state(queue_depth=queue))
    assert answer.target == expected
    assert answer.reason == f"queue depth {queue} needs {expected} nodes at 10 per node"


def test_queue_without_data_holds_instead_of_falling_to_min(plugins):
    scaler = autoscaler(plugins, '[pools.p.autoscaler]\ntype = "queue"\n')
    answer = scaler.recommend(state(current_nodes=7, queue_depth=None))
    assert (answer.target, answer.reason) == (7, "no queue depth reported")


# scheduled

WORKDAYS = """
[pools.p.autoscaler]
type = "scheduled"
timezone = "America/New_York"

[[pools.p.autoscaler.windows]]
days = ["mon", "tue", "wed", "thu", "friday"]
start = "08:00"
end = "20:00"
min_nodes = 4
max_nodes = 16
"""

# 2025-01-15 is a Wednesday; New York is UTC-5 in January and UTC-4 in July.
WEDNESDAY_9AM = datetime(2025, 1, 15, 14, 0, tzinfo=UTC)
SATURDAY_9AM = datetime(2025, 1, 18, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(("current", "expected"), [(0, 4), (2, 4), (10, 10), (16, 16), (20, 16)])
def test_schedule_without_base_moves_the_pool_into_the_window(plugins, current, expected):
    scaler = autoscaler(plugins, WORKDAYS)
    assert scaler.recommend(state(current_nodes=current, now=WEDNESDAY_9AM)).target == expected


def test_schedule_outside_every_window_uses_the_pool_bounds(plugins):
    scaler = autoscaler(plugins, WORKDAYS)
    answer = scaler.recommend(state(current_nodes=2, min_nodes=1, max_nodes=20, now=SATURDAY_9AM))
    assert answer.target == 2
    assert answer.reason == "outside the schedule: 1-20 nodes; holding"
    inside = scaler.recommend(state(current_nodes=2, now=WEDNESDAY_9AM))
    assert inside.reason == (
        "window mon,tue,wed,thu,fri 08:00-20:00 America/New_York: 4-16 nodes; holding → 2, "
        "moved into 4-16"
    )


@pytest.mark.parametrize(
    ("utc", "inside"),
    [
        (datetime(2025, 1, 15, 13, 0), True),  # 08:00 EST
        (datetime(2025, 1, 15, 12, 59), False),  # 07:59 EST
        (datetime(2025, 7, 16, 12, 0), True),  # 08:00 EDT: the window follows local time
        (datetime(2025, 7, 16, 11, 59), False),
        (datetime(2025, 1, 16, 0, 59), True),  # 19:59 EST
        (datetime(2025, 1, 16, 1, 0), False),  # 20:00 EST: the end is not inside
    ],
)
def test_schedule_follows_local_time_across_daylight_saving(plugins, utc, inside):
    scaler = autoscaler(plugins, WORKDAYS)
    answer = scaler.recommend(state(current_nodes=0, now=utc.replace(tzinfo=UTC)))
    assert answer.target == (4 if inside else 0)


FRIDAY_NIGHT = """
[pools.p.autoscaler]
type = "scheduled"
timezone = "Europe/Berlin"

[[pools.p.autoscaler.windows]]
days = ["fri"]
start = "22:00"
end = "06:00"
min_nodes = 8
"""


@pytest.mark.parametrize(
    ("local", "inside"),
    [
        ((2025, 1, 17, 22, 0), True),  # Friday 22:00
        ((2025, 1, 17, 23, 59), True),
        ((2025, 1, 18, 0, 0), True),  # Saturday after midnight belongs to Friday's window
        ((2025, 1, 18, 5, 59), True),
        ((2025, 1, 18, 6, 0), False),
        ((2025, 1, 17, 5, 0), False),  # Friday early morning belongs to Thursday: not listed
        ((2025, 1, 18, 22, 30), False),  # Saturday night
        ((2025, 1, 17, 21, 59), False),
    ],
)
def test_schedule_window_across_midnight_belongs_to_its_start_day(plugins, local, inside):
    from zoneinfo import ZoneInfo

    scaler = autoscaler(plugins, FRIDAY_NIGHT)
    now = datetime(*local, tzinfo=ZoneInfo("Europe/Berlin"))
    assert scaler.recommend(state(current_nodes=1, now=now)).target == (8 if inside else 1)


def test_schedule_on_the_spring_forward_night(plugins):
    # New York skips 02:00-03:00 on Sunday 2025-03-09; a window from 02:30 starts at 03:00.
    scaler = autoscaler(
        plugins,
        """
        [pools.p.autoscaler]
        type = "scheduled"
        timezone = "America/New_York"
        windows = [{days = ["sun"], start = "02:30", end = "04:00", min_nodes = 3}]
        """,
    )
    before = datetime(2025, 3, 9, 6, 59, tzinfo=UTC)  # 01:59 EST
    after = datetime(2025, 3, 9, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert scaler.recommend(state(current_nodes=0, now=before)).target == 0
    assert scaler.recommend(state(current_nodes=0, now=after)).target == 3


def test_schedule_first_matching_window_wins_and_whole_day_windows(plugins):
    scaler = autoscaler(
        plugins,
        """
        [pools.p.autoscaler]
        type = "scheduled"
        windows = [
          {start = "09:00", end = "10:00", min_nodes = 7},
          {start = "00:00", end = "24:00", min_nodes = 2},
        ]
        """,
    )
    at = datetime(2025, 1, 15, 9, 30, tzinfo=UTC)
    assert scaler.recommend(state(current_nodes=0, now=at)).target == 7
    assert scaler.recommend(state(current_nodes=0, now=at.replace(hour=23, minute=59))).target == 2
    # A naive time is read as UTC.
    assert scaler.recommend(state(current_nodes=0, now=at.replace(tzinfo=None))).target == 7
    assert scaler.recommend(state(current_nodes=0, now=None)).reason == (
        "no time given: 0-20 nodes; holding"
    )


def test_schedule_gives_its_base_the_window_bounds(probing):
    scaler = autoscaler(
        probing,
        WORKDAYS + '[pools.p.autoscaler.base]\ntype = "probe"\nanswer = 30\n',
    )
    answer = scaler.recommend(state(current_nodes=5, now=WEDNESDAY_9AM))
    assert answer.target == 16
    assert (Probe.seen[-1].min_nodes, Probe.seen[-1].max_nodes) == (4, 16)
    assert answer.reason.endswith("probe says 30 → 30, moved into 4-16")
    outside = scaler.recommend(state(current_nodes=5, max_nodes=25, now=SATURDAY_9AM))
    assert outside.target == 25
    assert (Probe.seen[-1].min_nodes, Probe.seen[-1].max_nodes) == (0, 25)


def test_schedule_raises_the_floor_even_when_the_base_scales_down(probing):
    scaler = autoscaler(
        probing,
        WORKDAYS + '[pools.p.autoscaler.base]\ntype = "probe"\nanswer = 0\n',
    )
    assert scaler.recommend(state(current_nodes=1, now=WEDNESDAY_9AM)).target == 4


# predictive

RISING = tuple(float(v) for v in range(10, 101, 10))  # 10, 20, ... 100


def predictive(plugins, extra: str = ""):
    return autoscaler(
        plugins,
        '[pools.p.autoscaler]\ntype = "predictive"\nlookback = 10\nhorizon = 5\n'
        "target_utilization = 70\n" + extra,
    )


def test_predictive_raises_the_pool_ahead_of_a_rising_trend(plugins):
    # Slope 10 per round; the fitted line reaches 150% five rounds after the last sample, and
    # 4 nodes at 150% need ceil(4 * 150 / 70) = 9 nodes at 70%.
    answer = predictive(plugins).recommend(
        state(current_nodes=4, utilization=100.0, history=RISING)
    )
    assert answer.target == 9
    assert answer.reason == (
        "utilization trend +10.0 points per round predicts 150.0% in 5 rounds, which needs "
        "9 nodes at 70%"
    )


@pytest.mark.parametrize(
    "history", [tuple(reversed(RISING)), (50.0,) * 10, (0.0,) * 10, (5.0, 0.0) * 5]
)
def test_predictive_never_lowers_the_pool(plugins, history):
    answer = predictive(plugins).recommend(state(current_nodes=4, history=history))
    assert answer.target == 4


def test_predictive_waits_for_enough_history(plugins):
    answer = predictive(plugins).recommend(state(current_nodes=4, history=RISING[:9]))
    assert answer.target == 4
    assert answer.reason == "holding (prediction needs 10 samples, has 9)"


def test_predictive_only_raises_its_base(probing):
    high = predictive(probing, '[pools.p.autoscaler.base]\ntype = "probe"\nanswer = 12\n')
    low = predictive(probing, '[pools.p.autoscaler.base]\ntype = "probe"\nanswer = 2\n')
    rising = state(current_nodes=4, history=RISING)
    assert high.recommend(rising).target == 12
    assert low.recommend(rising).target == 9
    falling = state(current_nodes=4, history=tuple(reversed(RISING)))
    assert low.recommend(falling).target == 2
    assert low.recommend(falling).reason == "probe says 2 (prediction needs 0)"


def test_predictive_uses_only_the_lookback(plugins):
    history = (100.0,) * 20 + (40.0,) * 10
    assert predictive(plugins).recommend(state(current_nodes=7, history=history)).target == 7


# composite


def composite(plugins, mode: str, answers: list[int | None]) -> object:
    members = "".join(
        '\n[[pools.p.autoscaler.members]]\ntype = "probe"\n'
        + ("fail = true\n" if a is None else f"answer = {a}\n")
        for a in answers
    )
    return autoscaler(
        plugins, f'[pools.p.autoscaler]\ntype = "composite"\nmode = "{mode}"\n' + members
    )


@pytest.mark.parametrize(
    ("mode", "answers", "expected"),
    [
        ("max", [3, 8, 4], 8),
        ("min", [3, 8, 4], 3),
        ("average", [3, 8, 4], 5),
        ("average", [3, 4], 4),  # 3.5 rounds up
        ("average", [2, 2, 3], 3),
        ("max", [5], 5),
        ("max", [3, None, 4], 4),  # a failing member is left out
        ("min", [None, 6], 6),
    ],
)
def test_composite_modes(probing, mode, answers, expected):
    scaler = composite(probing, mode, answers)
    assert scaler.recommend(state(current_nodes=1)).target == expected


def test_composite_reason_lists_every_member(probing):
    answer = composite(probing, "max", [3, None]).recommend(state(current_nodes=1))
    assert answer.reason == (
        "max of [probe: probe says 3 → 3; probe failed (RuntimeError: probe broke)]"
    )


def test_composite_with_every_member_failing_holds(probing):
    answer = composite(probing, "max", [None, None]).recommend(state(current_nodes=6))
    assert answer.target == 6
    assert answer.reason.startswith("every member failed: probe failed")


def test_composite_of_builtins_nests_through_the_registry(plugins):
    scaler = autoscaler(
        plugins,
        """
        [pools.p.autoscaler]
        type = "composite"

        [[pools.p.autoscaler.members]]
        type = "target"
        target_value = 50

        [[pools.p.autoscaler.members]]
        type = "queue"
        jobs_per_node = 2
        """,
    )
    assert scaler.recommend(state(current_nodes=4, utilization=75.0, queue_depth=20)).target == 10
    assert scaler.recommend(state(current_nodes=4, utilization=75.0, queue_depth=2)).target == 6
