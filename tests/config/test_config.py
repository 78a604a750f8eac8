from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from navarch.config import effective_dict, load_config, parse_config
from navarch.errors import ConfigError
from navarch.plugins import hookimpl
from navarch.plugins.manager import load_plugins
from navarch.pools.providers import build_providers, provider_problems

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "local-fleet.toml"

VALID = """
[server]
heartbeat_interval = "10s"

[providers.fake]
gpu_count = 4

[pools.train]
instance_type = "h100-8x"
min_nodes = 1
max_nodes = 3

[[pools.train.providers]]
provider = "fake"

[pools.train.autoscaler]
type = "reactive"
scale_up_at = 90
"""


def problems_of(text: str, plugins) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "navarch.toml", plugins)
    return info.value.problems


def test_valid_file_parses_into_typed_objects(plugins):
    config = parse_config(VALID, "navarch.toml", plugins)
    assert config.server.heartbeat_interval == timedelta(seconds=10)
    assert config.server.effective_heartbeat_timeout == timedelta(seconds=30)
    pool = config.pools["train"]
    assert (pool.min_nodes, pool.max_nodes) == (1, 3)
    assert pool.providers[0].provider == "fake"
    assert pool.selector.type == "priority"
    assert pool.autoscaler.settings.scale_up_at == 90
    assert config.providers["fake"].settings.gpu_count == 4


def test_shipped_example_is_valid(plugins):
    config = load_config(EXAMPLE, plugins)
    assert "dev" in config.pools


def test_wrong_type_names_key_expected_and_found(plugins):
    assert problems_of('[server]\nmax_body_bytes = "big"\n', plugins) == [
        'server.max_body_bytes: expected an integer, got "big"'
    ]


def test_boolean_is_not_an_integer(plugins):
    assert problems_of("[server]\nmax_body_bytes = true\n", plugins) == [
        "server.max_body_bytes: expected an integer, got true"
    ]


def test_unknown_key_suggests_the_close_one(plugins):
    assert problems_of('[server]\nheartbeat_intervl = "5s"\n', plugins) == [
        "server.heartbeat_intervl: unknown key (did you mean 'heartbeat_interval'?)"
    ]
    assert problems_of('[servr]\nlisten = "x"\n', plugins) == [
        "servr: unknown key (did you mean 'server'?)"
    ]


def test_unknown_key_in_plugin_table_carries_full_path(plugins):
    text = VALID.replace("scale_up_at = 90", "scale_up_at = 90\nscale_up_att = 1")
    assert problems_of(text, plugins) == [
        "pools.train.autoscaler.scale_up_att: unknown key (did you mean 'scale_up_at'?)"
    ]


def test_plugin_validator_error_carries_full_path(plugins):
    text = VALID.replace("scale_up_at = 90", "scale_up_at = 150")
    assert problems_of(text, plugins) == [
        "pools.train.autoscaler.scale_up_at: expected a number from 0 to 100, got 150"
    ]


def test_missing_required_key(plugins):
    text = VALID.replace('instance_type = "h100-8x"\n', "")
    assert problems_of(text, plugins) == ["pools.train.instance_type: required key is missing"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"5 minutes"', 'expected a duration such as "500ms", "30s", "5m", "1h30m" or "1d"'),
        ("30", 'a duration needs a unit, like "30s"'),
        ('""', "expected a duration"),
    ],
)
def test_bad_duration(plugins, value, message):
    [problem] = problems_of(f"[server]\nheartbeat_interval = {value}\n", plugins)
    assert problem.startswith("server.heartbeat_interval: ")
    assert message in problem


def test_non_positive_duration(plugins):
    assert problems_of('[server]\nheartbeat_interval = "0s"\n', plugins) == [
        'server.heartbeat_interval: expected a positive duration, got "0s"'
    ]


def test_unknown_plugin_lists_registered_names(plugins):
    text = VALID.replace('type = "reactive"\nscale_up_at = 90', 'type = "magic"')
    assert problems_of(text, plugins) == [
        'pools.train.autoscaler.type: no autoscaler plugin named "magic" '
        "(registered: composite, predictive, queue, reactive, scheduled, target)"
    ]


def test_pool_naming_an_unconfigured_provider(plugins):
    text = VALID.replace('provider = "fake"', 'provider = "lambda"')
    assert problems_of(text, plugins) == [
        "pools.train.providers[0].provider: no [providers.lambda] table (configured: fake)"
    ]


def test_duplicate_provider_entries(plugins):
    text = VALID + '\n[[pools.train.providers]]\nprovider = "fake"\n'
    assert problems_of(text, plugins) == [
        'pools.train.providers[1].provider: duplicate entry for provider "fake" with the same '
        "regions and zones"
    ]


def test_duplicate_table_is_a_syntax_error_with_its_line(plugins):
    [problem] = problems_of("[server]\nlisten = 'a'\n[server]\nlisten = 'b'\n", plugins)
    assert problem.startswith("TOML syntax error:")
    assert "line 3" in problem


def test_min_above_max(plugins):
    text = VALID.replace("max_nodes = 3", "max_nodes = 0")
    assert "pools.train.max_nodes: expected at least 1, got 0" in problems_of(text, plugins)


def test_every_problem_is_reported_at_once(plugins):
    text = """
[server]
listen = 5
heartbeat_timeout = "soon"
[providers.fake]
gpu_count = "eight"
[pools.a]
instance_type = "x"
providers = [{provider = "nope"}]
"""
    problems = problems_of(text, plugins)
    assert len(problems) == 4, problems


def test_error_message_names_the_file(plugins, tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text("[server]\nlisten = 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, plugins)
    assert str(info.value) == f"{path}: server.listen: expected a string, got 5"


def test_check_command_prints_summary(navarch):
    result = navarch("config", "check", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert "dev (2-6 nodes)" in result.stdout


def test_check_command_reports_every_error_with_status_2(navarch, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nheartbeat_intervl = "5s"\nlisten = 1\n')
    result = navarch("config", "check", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"{path}: server.heartbeat_intervl: unknown key" in result.stderr
    assert f"{path}: server.listen: expected a string, got 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_command_syntax_error(navarch, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[server\n")
    result = navarch("config", "check", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"navarch: {path}: TOML syntax error:")
    assert "line 1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_show_fills_defaults_and_redacts_secrets(navarch, tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text(VALID)
    result = navarch("config", "show", "--json", str(path))
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["server"]["heartbeat_timeout"] == "30s"
    assert shown["server"]["listen"] == "127.0.0.1:50051"
    assert shown["pools"]["train"]["autoscaler"] == {
        "type": "reactive",
        "scale_up_at": 90.0,
        "scale_down_at": 20.0,
        "step": 1,
    }
    assert shown["auth"]["admin_token_env"] == "NAVARCH_ADMIN_TOKEN"


def test_show_prints_toml_that_parses_back(navarch, plugins):
    result = navarch("config", "show", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    again = parse_config(result.stdout, "shown.toml", plugins)
    assert effective_dict(again) == effective_dict(load_config(EXAMPLE, plugins))


def test_health_policy_is_resolved_next_to_the_file_and_checked(plugins, tmp_path):
    (tmp_path / "rules.toml").write_text(
        '[[rules]]\nname = "broken"\ncondition = "event.xid =="\nresult = "unhealthy"\n'
    )
    path = tmp_path / "fleet.toml"
    path.write_text('[health]\npolicy = "rules.toml"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, plugins)
    [problem] = info.value.problems
    assert problem.startswith(f"health.policy: {tmp_path / 'rules.toml'}: ")
    assert "broken" in problem

    (tmp_path / "rules.toml").write_text(
        '[[rules]]\nname = "any"\ncondition = "true"\nresult = "healthy"\n'
    )
    assert load_config(path, plugins).health.policy == str(tmp_path / "rules.toml")


class _OnDemandOnly:
    """A provider plugin whose cloud sells no spot machines."""

    class Provider:
        def __init__(self, settings=None):
            pass

    @hookimpl
    def navarch_providers(self, register):
        register("ondemand", self.Provider)


def test_spot_on_a_provider_without_spot_machines_is_refused():
    plugins = load_plugins(entry_points=False, extra={"ondemand": _OnDemandOnly()})
    text = VALID.replace(
        "[providers.fake]\n", '[providers.od]\ntype = "ondemand"\n\n[providers.fake]\n'
    )
    text += '\n[[pools.train.providers]]\nprovider = "od"\nspot = true\n'
    assert problems_of(text, plugins) == [
        'pools.train.providers[1].spot: provider "od" (type ondemand) offers no spot machines; '
        "remove spot or use a provider that has them"
    ]
    # The fake provider has them.
    parse_config(VALID.replace('provider = "fake"', 'provider = "fake"\nspot = true'), "x", plugins)


def test_a_cloud_whose_plugin_is_missing_names_the_package_to_install():
    plugins = load_plugins(entry_points=False)
    text = VALID.replace("[providers.fake]\ngpu_count = 4", '[providers.fake]\ntype = "lambda"')
    [problem] = problems_of(text, plugins)
    assert problem.startswith('providers.fake.type: no provider plugin named "lambda" (registered:')
    assert problem.endswith("; install it with: pip install navarch-lambda")


class _Checked:
    """A provider that can tell that its credentials are missing."""

    class Provider:
        def __init__(self, settings=None):
            pass

        async def provision(self, request): ...

        async def terminate(self, instance_id): ...

        async def list(self):
            return []

        def check(self):
            return ["no Moon API key: set MOON_API_KEY"]

    @hookimpl
    def navarch_providers(self, register):
        register("moon", self.Provider)


def test_provider_problems_name_the_table():
    plugins = load_plugins(entry_points=False, extra={"moon": _Checked()})
    config = parse_config('[providers.home]\ntype = "moon"\n', "navarch.toml", plugins)
    assert provider_problems(build_providers(config)) == [
        "providers.home: no Moon API key: set MOON_API_KEY"
    ]


def test_check_names_the_package_of_a_cloud_plugin_that_is_not_installed(navarch, tmp_path):
    path = tmp_path / "navarch.toml"
    path.write_text(
        '[providers.lambda]\ntype = "lambda"\n\n[pools.train]\ninstance_type = "h100-8x"\n'
        'max_nodes = 2\n[[pools.train.providers]]\nprovider = "lambda"\n'
    )
    # As on a machine where only navarch is installed.
    result = navarch("config", "check", str(path), env={"NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f'navarch: {path}: providers.lambda.type: no provider plugin named "lambda" '
        "(registered: fake); install it with: pip install navarch-lambda"
    ]


def test_one_pass_reports_the_problems_of_every_phase(navarch, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        """
[server]
heartbeat_intervl = "5s"
[providers.fake]
gpu_count = 99
[providers.lambda]
type = "lambda"
[pools.dev]
instance_type = "h100-8x"
max_nodes = 0
[[pools.dev.providers]]
provider = "nope"
[pools.dev.autoscaler]
type = "reactive"
scale_up_at = "high"
[health]
policy = "missing.yaml"
"""
    )
    result = navarch("config", "check", str(path), env={"LAMBDA_API_KEY": ""})
    assert result.returncode == 2
    for problem in (
        "server.heartbeat_intervl: unknown key",
        "providers.fake.gpu_count: expected a number from 1 to 16, got 99",
        "pools.dev.max_nodes: expected at least 1, got 0",
        "pools.dev.providers[0].provider: no [providers.nope] table",
        "pools.dev.autoscaler.scale_up_at: expected a number",
        "health.policy:",
        "providers.lambda: no Lambda API key",
    ):
        assert f"{path}: {problem}" in result.stderr, problem
    assert "providers.fake:" not in result.stderr.replace("providers.fake.gpu_count", "")


def test_server_limits_are_checked(plugins):
    assert problems_of("[server]\nmax_connections = 0\n", plugins) == [
        "server.max_connections: expected at least 1, got 0"
    ]
    assert problems_of('[server]\nbody_timeout = "0s"\n', plugins) == [
        'server.body_timeout: expected a positive duration, got "0s"'
    ]
