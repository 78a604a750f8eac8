from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest
from support.pool_config import POOL, pool_config

from navarch.config import effective_dict, parse_config
from navarch.errors import ConfigError

ONE_WINDOW = 'windows = [{start = "08:00", end = "09:00"}]'


def problems_of(plugins, tables: str) -> list[str]:
    text = POOL.format(min_nodes=0, max_nodes=20) + textwrap.dedent(tables)
    with pytest.raises(ConfigError) as info:
        parse_config(text, "navarch.toml", plugins)
    return info.value.problems


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (
            'type = "reactive"\nstep = 0',
            "pools.p.autoscaler.step: expected at least 1, got 0",
        ),
        (
            'type = "target"\ntarget_value = 120',
            "pools.p.autoscaler.target_value: expected a percent above 0 and at most 100, got 120",
        ),
        (
            'type = "target"\nmetric = "queue_depth"\ntarget_value = 0',
            "pools.p.autoscaler.target_value: expected a number above 0, got 0",
        ),
        (
            'type = "target"\nmetric = "memory"',
            'pools.p.autoscaler.metric: expected "utilization" or "queue_depth", got "memory"',
        ),
        (
            'type = "target"\ntolerance = 1.0',
            "pools.p.autoscaler.tolerance: expected a fraction from 0 up to (not including) 1, "
            "got 1",
        ),
        (
            'type = "target"\ntarget_utilization = 50',
            "pools.p.autoscaler.target_utilization: unknown key",
        ),
        (
            'type = "queue"\njobs_per_node = 0',
            "pools.p.autoscaler.jobs_per_node: expected at least 1, got 0",
        ),
        (
            'type = "queue"\njobs_per_node = "ten"',
            'pools.p.autoscaler.jobs_per_node: expected an integer, got "ten"',
        ),
        (
            'type = "scheduled"',
            "pools.p.autoscaler.windows: required key is missing",
        ),
        (
            'type = "scheduled"\nwindows = []',
            "pools.p.autoscaler.windows: expected at least one window, got none",
        ),
        (
            'type = "scheduled"\ntimezone = "Mars/Olympus"\n' + ONE_WINDOW,
            'pools.p.autoscaler.timezone: expected an IANA time zone such as "Europe/Berlin", '
            'got "Mars/Olympus"',
        ),
        (
            'type = "scheduled"\nwindows = [{start = "08:00", end = "09:00"}, '
            '{start = "8am", end = "09:00"}]',
            'pools.p.autoscaler.windows[1].start: expected a time from "00:00" to "23:59", '
            'got "8am"',
        ),
        (
            'type = "scheduled"\nwindows = [{start = "08:00", end = "24:01"}]',
            'pools.p.autoscaler.windows[0].end: expected a time from "00:00" to "24:00", '
            'got "24:01"',
        ),
        (
            'type = "scheduled"\nwindows = [{start = "08:00", end = "08:00"}]',
            'pools.p.autoscaler.windows[0].end: expected a time other than start ("08:00"); '
            'a whole day is "00:00" to "24:00"',
        ),
        (
            'type = "scheduled"\nwindows = [{start = "08:00", end = "09:00", '
            'days = ["mon", "funday"]}]',
            'pools.p.autoscaler.windows[0].days: expected day names such as "mon" or "monday", '
            'got "funday"',
        ),
        (
            'type = "scheduled"\nwindows = [{start = "08:00", end = "09:00", '
            "min_nodes = 5, max_nodes = 4}]",
            "pools.p.autoscaler.windows[0].max_nodes: expected at least min_nodes (5), got 4",
        ),
        (
            'type = "scheduled"\nwindows = [{start = "08:00", end = "09:00", min_node = 5}]',
            "pools.p.autoscaler.windows[0].min_node: unknown key (did you mean 'min_nodes'?)",
        ),
        (
            'type = "predictive"\nlookback = 1',
            "pools.p.autoscaler.lookback: expected at least 2, got 1",
        ),
        (
            'type = "predictive"\nhorizon = 0',
            "pools.p.autoscaler.horizon: expected at least 1, got 0",
        ),
        (
            'type = "predictive"\ntarget_utilization = 0',
            "pools.p.autoscaler.target_utilization: expected a percent above 0 and at most 100, "
            "got 0",
        ),
        (
            'type = "composite"\nmembers = []',
            "pools.p.autoscaler.members: expected at least one autoscaler table, got none",
        ),
        (
            'type = "composite"\nmode = "median"\nmembers = [{type = "queue"}]',
            'pools.p.autoscaler.mode: expected "max", "min" or "average", got "median"',
        ),
    ],
)
def test_bad_autoscaler_settings_name_their_key(plugins, table, problem):
    assert problems_of(plugins, f"[pools.p.autoscaler]\n{table}\n") == [problem]


def test_composite_member_errors_carry_the_member_path(plugins):
    problems = problems_of(
        plugins,
        """
        [pools.p.autoscaler]
        type = "composite"

        [[pools.p.autoscaler.members]]
        type = "queue"

        [[pools.p.autoscaler.members]]
        type = "target"
        target_utilization = 70

        [[pools.p.autoscaler.members]]
        type = "predictive"
        base = {type = "target", target_value = 300}

        [[pools.p.autoscaler.members]]
        type = "magic"

        [[pools.p.autoscaler.members]]
        jobs_per_node = 3
        """,
    )
    assert problems == [
        "pools.p.autoscaler.members[4].type: required key is missing",
    ]
    problems = problems_of(
        plugins,
        """
        [pools.p.autoscaler]
        type = "composite"
        members = [
          {type = "queue"},
          {type = "target", target_utilization = 70},
          {type = "predictive", base = {type = "target", target_value = 300}},
          {type = "magic"},
        ]
        """,
    )
    assert problems == [
        "pools.p.autoscaler.members[1].target_utilization: unknown key",
        "pools.p.autoscaler.members[2].base.target_value: expected a percent above 0 and at "
        "most 100, got 300",
        'pools.p.autoscaler.members[3].type: no autoscaler plugin named "magic" (registered: '
        "composite, predictive, queue, reactive, scheduled, target)",
    ]


def test_scheduled_base_errors_carry_the_base_path(plugins):
    assert problems_of(
        plugins,
        """
        [pools.p.autoscaler]
        type = "scheduled"
        windows = [{start = "08:00", end = "20:00"}]
        base = {type = "queue", jobs_per_nod = 3}
        """,
    ) == ["pools.p.autoscaler.base.jobs_per_nod: unknown key (did you mean 'jobs_per_node'?)"]


@pytest.mark.parametrize("name", ["priority", "round-robin", "cost", "availability"])
def test_selectors_take_no_keys(plugins, name):
    assert problems_of(plugins, f'[pools.p.selector]\ntype = "{name}"\nweight = 2\n') == [
        "pools.p.selector.weight: unknown key"
    ]


def test_unknown_selector_lists_the_registered_ones(plugins):
    assert problems_of(plugins, '[pools.p.selector]\ntype = "cheapest"\n') == [
        'pools.p.selector.type: no selector plugin named "cheapest" (registered: availability, '
        "cost, priority, round-robin)"
    ]


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (
            "[pools.p.scaling.scale_up]\nnodes = -1",
            "pools.p.scaling.scale_up.nodes: expected at least 0, got -1",
        ),
        (
            '[pools.p.scaling.scale_up]\nwindow = "-1s"',
            'pools.p.scaling.scale_up.window: expected a duration such as "500ms", "30s", "5m", '
            '"1h30m" or "1d", got "-1s"',
        ),
        (
            '[pools.p.scaling.scale_up]\nperiod = "0s"',
            'pools.p.scaling.scale_up.period: expected a positive duration, got "0s"',
        ),
        (
            "[pools.p.scaling.scale_down]\npercent = 150",
            "pools.p.scaling.scale_down.percent: expected a number from 0 to 100, got 150",
        ),
        (
            '[pools.p.scaling.scale_down]\ndrain = "yes"',
            'pools.p.scaling.scale_down.drain: expected true or false, got "yes"',
        ),
        (
            '[pools.p.scaling]\nscale_down_window = "5m"',
            "pools.p.scaling.scale_down_window: unknown key (did you mean 'scale_down'?)",
        ),
    ],
)
def test_bad_scaling_settings_name_their_key(plugins, table, problem):
    assert problems_of(plugins, table + "\n") == [problem]


def test_scaling_defaults_follow_the_kubernetes_autoscalers(plugins):
    scaling = pool_config(plugins).scaling
    assert scaling.scale_up.window == timedelta(0)
    assert (scaling.scale_up.nodes, scaling.scale_up.percent) == (4, 100.0)
    assert scaling.scale_down.window == timedelta(minutes=5)
    assert scaling.scale_down.delay_after_scale_up == timedelta(minutes=10)
    assert scaling.scale_down.drain is True


def test_scaling_settings_are_read(plugins):
    scaling = pool_config(
        plugins,
        """
        [pools.p.scaling.scale_up]
        window = "1m"
        nodes = 2
        percent = 0

        [pools.p.scaling.scale_down]
        window = "10m"
        delay_after_scale_up = "0s"
        drain = false
        """,
    ).scaling
    assert scaling.scale_up.window == timedelta(minutes=1)
    assert (scaling.scale_up.nodes, scaling.scale_up.percent) == (2, 0.0)
    assert scaling.scale_down.window == timedelta(minutes=10)
    assert scaling.scale_down.delay_after_scale_up == timedelta(0)
    assert scaling.scale_down.drain is False


NESTED = """
[pools.p.autoscaler]
type = "composite"
mode = "average"

[[pools.p.autoscaler.members]]
type = "queue"
jobs_per_node = 4

[[pools.p.autoscaler.members]]
type = "scheduled"
timezone = "Europe/Berlin"

[[pools.p.autoscaler.members.windows]]
days = ["sat", "sun"]
start = "22:00"
end = "06:00"
max_nodes = 2

[pools.p.autoscaler.members.base]
type = "target"
target_value = 60

[pools.p.selector]
type = "round-robin"

[pools.p.scaling.scale_down]
window = "10m"
"""


def test_show_prints_nested_plugin_tables_that_parse_back(navarch, plugins, tmp_path):
    path = tmp_path / "pools.toml"
    path.write_text(POOL.format(min_nodes=1, max_nodes=8) + NESTED)
    result = navarch("config", "show", str(path))
    assert result.returncode == 0, result.stderr
    again = parse_config(result.stdout, "shown.toml", plugins)
    original = parse_config(path.read_text(), "pools.toml", plugins)
    assert effective_dict(again) == effective_dict(original)
    shown = effective_dict(original)["pools"]["p"]
    assert shown["autoscaler"]["members"][1]["base"] == {
        "type": "target",
        "metric": "utilization",
        "target_value": 60.0,
        "tolerance": 0.1,
    }
    assert shown["selector"] == {"type": "round-robin"}
    assert shown["scaling"]["scale_down"]["window"] == "10m"
