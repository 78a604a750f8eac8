"""Credentials inside URLs are hidden wherever the configuration is shown, and the rest of the
URL stays readable."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from navarch.config import effective_dict, parse_config
from navarch.redaction import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:pass@cp.example.com:8443/navarch?token=abc&pool=dev",
            "https://<redacted>@cp.example.com:8443/navarch?token=<redacted>&pool=dev",
        ),
        ("https://TOKEN@hooks.example.com/x", "https://<redacted>@hooks.example.com/x"),
        (
            "https://q.example.com/depth/{pool}?key=K&field=depth",
            "https://q.example.com/depth/{pool}?key=<redacted>&field=depth",
        ),
        (
            "https://h.example.com/?access_token=a&apiKey=b&X-Amz-Signature=c&sig=d&page=2",
            "https://h.example.com/?access_token=<redacted>&apiKey=<redacted>"
            "&X-Amz-Signature=<redacted>&sig=<redacted>&page=2",
        ),
        ("postgres://navarch:pw@db:5432/fleet", "postgres://<redacted>@db:5432/fleet"),
        ("http://127.0.0.1:50051", "http://127.0.0.1:50051"),
        ("not a url", "not a url"),
    ],
)
def test_credentials_in_a_url_are_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@given(st.text())
def test_redaction_never_fails_and_is_stable(text: str) -> None:
    once = redact_url(text)
    assert redact_url(once) == once


def test_config_show_redacts_urls_everywhere(navarch, tmp_path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        """
[server]
external_url = "https://admin:hunter2@cp.example.com/navarch?token=abc123"
[providers.fake]
[pools.dev]
instance_type = "h100-8x"
[[pools.dev.providers]]
provider = "fake"
[pools.dev.metrics]
type = "http-json"
url = "https://queue.example.com/depth/{pool}?key=SECRETKEY&x=1"
[notifiers.hook]
type = "webhook"
url = "https://hooks.example.com/services/T0?access_token=tok"
"""
    )
    for args in (["--json"], []):
        result = navarch("config", "show", *args, str(path))
        assert result.returncode == 0, result.stderr
        for secret in ("hunter2", "abc123", "SECRETKEY", 'tok"'):
            assert secret not in result.stdout
    shown = json.loads(navarch("config", "show", "--json", str(path)).stdout)
    assert shown["server"]["external_url"] == (
        "https://<redacted>@cp.example.com/navarch?token=<redacted>"
    )
    assert shown["pools"]["dev"]["metrics"]["url"] == (
        "https://queue.example.com/depth/{pool}?key=<redacted>&x=1"
    )


def test_effective_dict_redacts_url_credentials(plugins) -> None:
    config = parse_config('[server]\nexternal_url = "https://u:p@cp.example.com"\n', "f", plugins)
    assert effective_dict(config)["server"]["external_url"] == "https://<redacted>@cp.example.com"  # type: ignore[index]


def test_a_password_holding_what_ends_an_authority_is_still_hidden() -> None:
    # libpq takes "?", "#", "[" and "]" in a password; urlsplit ends the host at the first two
    # and refuses the last two, so the user information is cut by libpq's rule first.
    for password in ("pa?ss", "pa#ss", "p[w", "p]w", "p@ss"):
        shown = redact_url(f"postgresql://navarch:{password}@db.internal:5432/navarch")
        assert shown == "postgresql://<redacted>@db.internal:5432/navarch", shown
        assert password not in shown
    assert redact_url("postgresql://db.internal/navarch?password=x&sslmode=require") == (
        "postgresql://db.internal/navarch?password=<redacted>&sslmode=require"
    )
