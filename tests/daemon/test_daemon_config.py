from __future__ import annotations

from datetime import timedelta

import pytest

from navarch.daemon.config import DaemonConfig, load_daemon_config, parse_daemon_config
from navarch.errors import ConfigError


def test_daemon_table_is_read_and_other_tables_ignored():
    config = parse_daemon_config(
        """
        [server]
        listen = "0.0.0.0:50051"

        [daemon]
        control_plane = "http://cp:50051"
        pool = "train"
        drain_command = "true"
        drain_timeout = "90s"
        labels = { rack = "r1" }

        [daemon.health_checks.thermal]
        margin_c = 5
        """
    )
    assert config.control_plane == "http://cp:50051"
    assert config.drain_timeout == timedelta(seconds=90)
    assert config.labels == {"rack": "r1"}
    assert config.health_checks == {"thermal": {"margin_c": 5}}


def test_defaults_without_a_daemon_table():
    assert parse_daemon_config("") == DaemonConfig()
    assert DaemonConfig().drain_timeout == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('drain_timout = "1s"', "daemon.drain_timout: unknown key (did you mean 'drain_timeout'?)"),
        ("drain_timeout = 5", 'daemon.drain_timeout: a duration needs a unit, like "5s"; got 5'),
        ('drain_timeout = "0s"', "daemon.drain_timeout: expected a positive duration"),
        ('control_plane = "cp:50051"', "daemon.control_plane: expected an http:// or https:// URL"),
        ("labels = { rack = 1 }", "expected a string, got 1"),
        ("health_checks = { xid = 1 }", "daemon.health_checks: xid: expected a table"),
    ],
)
def test_bad_values_are_named_by_path(text, problem):
    with pytest.raises(ConfigError) as info:
        parse_daemon_config(f"[daemon]\n{text}\n", "node.toml")
    message = str(info.value)
    assert message.startswith("node.toml: daemon.")
    assert problem in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found"):
        load_daemon_config(tmp_path / "nope.toml")
