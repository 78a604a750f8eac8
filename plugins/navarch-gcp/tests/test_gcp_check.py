"""check() says, without calling Google, what keeps the provider from working."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_gce import FakeGce
from navarch_gcp import GcpProvider, GcpSettings

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def no_ambient_credentials(tmp_path, monkeypatch):
    """Neither the environment, gcloud's files nor the machine have credentials."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setattr("navarch_gcp.credentials._DMI_PRODUCT", tmp_path / "product_name")


@pytest.fixture
def key(tmp_path):
    with FakeGce() as gce:
        return gce.service_account_key(tmp_path / "key.json")


def problems(**settings):
    return GcpProvider(GcpSettings(**{"project": "navarch-test", **settings})).check()


def test_a_readable_key_and_a_project_have_no_problem(key):
    assert problems(credentials_file=str(key)) == []


def test_the_environment_variable_names_the_key(key, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    assert problems() == []


def test_gclouds_application_default_credentials_are_found(tmp_path):
    gcloud = tmp_path / "gcloud"
    gcloud.mkdir()
    (gcloud / "application_default_credentials.json").write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "764086051850.apps.googleusercontent.com",
                "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty",
                "refresh_token": "1//0refresh",
            }
        )
    )
    assert problems() == []


def test_an_empty_project_is_a_problem(key):
    assert problems(project="", credentials_file=str(key)) == [
        "no GCP project: set project to the project that pays for the machines"
    ]


def test_no_credentials_says_where_it_looked_and_how_to_set_them(tmp_path):
    [problem] = problems()
    assert problem.startswith("no GCP credentials found: credentials_file is not set, ")
    assert "GOOGLE_APPLICATION_CREDENTIALS is not set" in problem
    assert str(tmp_path / "gcloud" / "application_default_credentials.json") in problem
    assert "not a Compute Engine VM" in problem
    assert "set GOOGLE_APPLICATION_CREDENTIALS or credentials_file" in problem


def test_a_missing_file_names_the_setting_and_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "gone.json"))
    assert problems() == [
        f"GOOGLE_APPLICATION_CREDENTIALS: cannot read {tmp_path / 'gone.json'}: "
        "No such file or directory"
    ]


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"client_email": None}, "the service-account key has no 'client_email' field"),
        ({"private_key": None}, "the service-account key has no 'private_key' field"),
        (
            {"private_key": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n"},
            "'private_key' is not a PEM RSA private key",
        ),
        ({"type": None}, "no 'type' field; expected a service-account key"),
        ({"type": "external_account"}, "credentials of type 'external_account' are not supported"),
    ],
    ids=[
        "no client_email",
        "no private_key",
        "damaged private_key",
        "no type",
        "workload identity",
    ],
)
def test_a_bad_key_file_names_the_file_and_the_field_and_never_the_key(key, change, complaint):
    document = json.loads(key.read_text())
    document.update(change)
    key.write_text(json.dumps({k: v for k, v in document.items() if v is not None}))
    [problem] = problems(credentials_file=str(key))
    assert problem.startswith(f"{key}: {complaint}")
    assert "PRIVATE KEY" not in problem and "c2VjcmV0" not in problem


def test_a_file_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "key.json"
    path.write_text("project = 'x'")
    assert problems(credentials_file=str(path)) == [f"{path}: not a JSON credentials file"]


def test_navarch_config_check_accepts_the_example_configuration(key):
    checked = subprocess.run(
        [sys.executable, "-m", "navarch", "config", "check", "examples/gcp.toml"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "GOOGLE_APPLICATION_CREDENTIALS": str(key)},
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "(gcp)" in checked.stdout
