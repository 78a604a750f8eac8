"""The Lambda provider's settings, its API key and what `check()` and the navarch commands say."""

import json
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from fake_lambda import API_KEY
from navarch_lambda import LambdaProvider, LambdaSettings

from navarch.plugins import AuthError

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "lambda.toml"


def test_a_provider_with_a_key_and_an_ssh_key_has_no_problems(provider):
    assert provider.check() == []


def test_check_names_the_environment_variable_it_reads(monkeypatch):
    monkeypatch.delenv("LAMBDA_PROD_KEY", raising=False)
    provider = LambdaProvider(LambdaSettings(api_key_env="LAMBDA_PROD_KEY", ssh_key_name="ops"))
    assert provider.check() == ["no Lambda API key: set LAMBDA_PROD_KEY or api_key_file"]


def test_check_reports_a_missing_ssh_key_name(monkeypatch):
    monkeypatch.setenv("LAMBDA_API_KEY", API_KEY)
    [problem] = LambdaProvider(LambdaSettings()).check()
    assert problem.startswith("no ssh_key_name: Lambda launches every instance with one SSH key")


def test_check_reports_an_api_key_file_it_cannot_read_or_that_is_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMBDA_API_KEY", API_KEY)
    missing = tmp_path / "missing"
    provider = LambdaProvider(LambdaSettings(api_key_file=str(missing), ssh_key_name="ops"))
    assert provider.check() == [
        f"api_key_file {missing}: cannot read the Lambda API key (No such file or directory)"
    ]
    (tmp_path / "empty").write_text("\n")
    provider = LambdaProvider(
        LambdaSettings(api_key_file=str(tmp_path / "empty"), ssh_key_name="ops")
    )
    assert provider.check() == [
        f"api_key_file {tmp_path / 'empty'} is empty: write the Lambda API key into it"
    ]


async def test_the_api_key_file_is_used_instead_of_the_environment(
    settings, fake, tmp_path, monkeypatch
):
    key_file = tmp_path / "lambda-key"
    key_file.write_text(API_KEY + "\n")
    monkeypatch.setenv("LAMBDA_API_KEY", "secret_from_the_shell")
    provider = LambdaProvider(attrs.evolve(settings, api_key_file=str(key_file)))
    assert provider.check() == []
    assert await provider.list() == []
    assert fake.calls[0][4]["authorization"] == f"Bearer {API_KEY}"


async def test_without_a_key_calls_raise_auth_error_and_reach_no_api(settings, fake, monkeypatch):
    monkeypatch.delenv("LAMBDA_API_KEY")
    with pytest.raises(AuthError, match="no Lambda API key: set LAMBDA_API_KEY"):
        await LambdaProvider(settings).list()
    assert fake.calls == []


async def test_a_refused_key_is_never_shown(provider, fake):
    fake.api_key = "secret_other"
    with pytest.raises(AuthError) as raised:
        await provider.list()
    assert API_KEY not in str(raised.value)
    assert API_KEY not in repr(provider.settings)


def navarch(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "navarch", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_navarch_lists_the_installed_plugin():
    listed = navarch("plugins", "--json", env={})
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["lambda"]["distribution"] == "navarch-lambda"
    assert rows["lambda"]["registered"] == ["provider:lambda"]
    assert rows["lambda"]["error"] is None


@pytest.mark.slow
def test_navarch_config_check_takes_the_example_and_reports_a_missing_key(tmp_path):
    checked = navarch("config", "check", str(EXAMPLE), env={"LAMBDA_API_KEY": API_KEY})
    assert checked.returncode == 0, checked.stderr
    assert "providers: lambda (lambda)" in checked.stdout
    unset = {key: value for key, value in os.environ.items() if key != "LAMBDA_API_KEY"}
    refused = subprocess.run(
        [sys.executable, "-m", "navarch", "config", "check", str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=unset,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "providers.lambda: no Lambda API key: set LAMBDA_API_KEY or api_key_file" in (
        refused.stderr
    )
    config = tmp_path / "navarch.toml"
    config.write_text(
        EXAMPLE.read_text().replace("image_family", 'request_timeout = "0s"\nimage_family')
    )
    bad = navarch("config", "check", str(config), env={"LAMBDA_API_KEY": API_KEY})
    assert bad.returncode == 2
    assert 'providers.lambda.request_timeout: expected a positive duration, got "0s"' in bad.stderr
