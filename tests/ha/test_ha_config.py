"""Configuration of control planes that share a store: `[ha]`, and several control-plane URLs
for daemons and the CLI."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.navarch_process import run_navarch

from navarch.config import parse_config
from navarch.controlplane.leadership import advertised_url
from navarch.daemon.config import parse_daemon_config
from navarch.errors import ConfigError


def test_ha_defaults_to_a_15s_lease_advertising_the_server_address() -> None:
    config = parse_config("", "navarch.toml")
    assert config.ha.lease_ttl == timedelta(seconds=15)
    assert advertised_url(config.ha.advertise_url, "", "10.0.0.5:50051", tls=False) == (
        "http://10.0.0.5:50051"
    )
    assert advertised_url("", "https://cp.example:443", "0.0.0.0:50051", tls=True) == (
        "https://cp.example:443"
    )
    assert advertised_url("http://cp-1:50051", "https://x", "0.0.0.0:1", tls=True) == (
        "http://cp-1:50051"
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('lease_ttl = "500ms"', "ha.lease_ttl: expected at least 1s, got 0.5s"),
        ('lease_ttl = "0s"', "ha.lease_ttl"),
        ('advertise_url = "cp-1:50051"', "ha.advertise_url: expected an http:// or https:// URL"),
        ('lease_tll = "3s"', "lease_tll"),
    ],
)
def test_a_bad_ha_table_is_refused_naming_the_key(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(f"[ha]\n{table}\n", "navarch.toml")


def test_a_daemon_takes_several_control_planes_as_a_list_or_comma_separated() -> None:
    listed = parse_daemon_config('[daemon]\ncontrol_plane = ["http://a:1", "http://b:2/"]\n')
    assert listed.control_plane == "http://a:1,http://b:2/"
    joined = parse_daemon_config('[daemon]\ncontrol_plane = "http://a:1, http://b:2"\n')
    assert joined.control_plane == "http://a:1, http://b:2"
    with pytest.raises(ConfigError, match=r'daemon.control_plane: .* got "b:2"'):
        parse_daemon_config('[daemon]\ncontrol_plane = "http://a:1,b:2"\n')


def test_the_cli_refuses_a_bad_url_among_several_in_one_line() -> None:
    result = run_navarch("list", "--server", "http://127.0.0.1:1,127.0.0.1:2")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "navarch: --server: expected an http:// or https:// URL, got '127.0.0.1:2'"
    ]
