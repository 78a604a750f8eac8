from __future__ import annotations

import pytest
from attrs import frozen

from navarch.daemon.checks import load_health_checks
from navarch.daemon.config import parse_daemon_config
from navarch.errors import ConfigError, NavarchError
from navarch.plugins import hookimpl
from navarch.plugins.manager import load_plugins


@frozen(kw_only=True)
class HotSettings:
    limit_c: int = 85


class HotCheck:
    Settings = HotSettings

    def __init__(self, settings: HotSettings) -> None:
        self.settings = settings

    def run(self, gpus):
        return []


class PlainCheck:
    def run(self, gpus):
        return []


class ChecksPlugin:
    @hookimpl
    def navarch_health_checks(self, register):
        register("hot", HotCheck)
        register("plain", PlainCheck)


@pytest.fixture
def plugins():
    return load_plugins(builtins=False, entry_points=False, extra={"checks": ChecksPlugin()})


def test_every_registered_check_runs_with_its_table(plugins):
    config = parse_daemon_config("[daemon.health_checks.hot]\nlimit_c = 90\n")
    checks = dict(load_health_checks(plugins, config))
    assert set(checks) == {"hot", "plain"}
    assert checks["hot"].settings.limit_c == 90


def test_no_plugins_means_no_checks():
    plugins = load_plugins(builtins=False, entry_points=False)
    assert load_health_checks(plugins, parse_daemon_config("")) == []


def test_bad_tables_are_named(plugins):
    config = parse_daemon_config(
        "[daemon.health_checks.hot]\nlimit = 90\n[daemon.health_checks.cold]\nx = 1\n"
        "[daemon.health_checks.plain]\ny = 2\n"
    )
    with pytest.raises(ConfigError) as info:
        load_health_checks(plugins, config, "node.toml")
    problems = info.value.problems
    assert (
        'daemon.health_checks.cold: no health check plugin named "cold" (registered: hot, plain)'
        in problems
    )
    assert any(p.startswith("daemon.health_checks.hot.limit: unknown key") for p in problems)
    assert any(p.startswith("daemon.health_checks.plain.y: unknown key") for p in problems)


class NeedsKey:
    def __init__(self):
        raise NavarchError("daemon.health_checks.keyed: set NODE_KEY to the node's key")


class Crashes:
    def __init__(self):
        raise OSError("no such device")


class Neither:
    pass


class FaultyPlugin:
    @hookimpl
    def navarch_health_checks(self, register):
        register("keyed", NeedsKey)
        register("crashes", Crashes)
        register("neither", Neither)


def test_checks_that_cannot_be_made_are_named_together_one_line_each():
    plugins = load_plugins(builtins=False, entry_points=False, extra={"faulty": FaultyPlugin()})
    with pytest.raises(ConfigError) as info:
        load_health_checks(plugins, parse_daemon_config(""), "node.toml")
    assert info.value.problems == [
        'daemon.health_checks.crashes: the health check plugin "crashes" could not start: '
        "OSError: no such device (plugin 'faulty'; fix or update it, or remove its table)",
        "daemon.health_checks.keyed: set NODE_KEY to the node's key",
        'daemon.health_checks.neither: the health check plugin "neither" made an object '
        "(Neither) without run, which a HealthCheck must have (plugin 'faulty'; fix or update "
        "it, or remove its table)",
    ]
