"""check(): what keeps the AWS provider from working, found before it calls EC2."""

import socket
import time

import pytest
from aws_cloud import aws_env
from navarch_aws import AwsProvider, AwsSettings

from navarch.plugins import CheckedProvider

__all__ = ["aws_env"]

NO_CREDENTIALS = (
    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or "
    "profile, or run with an instance role"
)


@pytest.fixture
def no_credentials(aws_env, monkeypatch):
    """The chain finds nothing: no keys, no profile, and an instance metadata service that
    refuses connections, as off EC2."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{port}/")


def test_a_configured_provider_has_no_problems(aws_env):
    provider = AwsProvider(AwsSettings(image_id="ami-0123456789abcdef0"))
    assert isinstance(provider, CheckedProvider)
    assert provider.check() == []


def test_missing_credentials_are_one_line_and_found_quickly(no_credentials):
    started = time.monotonic()
    problems = AwsProvider(AwsSettings(image_id="ami-0123456789abcdef0")).check()
    assert problems == [NO_CREDENTIALS]
    assert time.monotonic() - started < 5


def test_an_instance_metadata_service_that_does_not_answer_is_given_up_on_soon(
    no_credentials, monkeypatch
):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint)
        started = time.monotonic()
        problems = AwsProvider(AwsSettings(image_id="ami-0123456789abcdef0")).check()
    assert problems == [NO_CREDENTIALS]
    assert time.monotonic() - started < 5


def test_credentials_from_a_profile_in_the_shared_files_count(aws_env, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[gpu]\naws_access_key_id = AKIAPROFILEKEY000000\naws_secret_access_key = s3cr3t\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    settings = AwsSettings(profile="gpu", image_id="ami-0123456789abcdef0")
    assert AwsProvider(settings).check() == []
    missing = AwsProvider(AwsSettings(profile="cpu", image_id="ami-0123456789abcdef0")).check()
    assert missing == ["AWS credentials: The config profile (cpu) could not be found"]
    assert "s3cr3t" not in repr(AwsProvider(settings).check()) + repr(settings)


def test_each_region_without_an_image_is_named(aws_env):
    settings = AwsSettings(
        regions=("us-east-1", "us-west-2", "eu-west-1"),
        images={"us-west-2": "ami-0bbbbbbbbbbbbbbb0"},
    )
    assert AwsProvider(settings).check() == [
        "no image for us-east-1: set image_id, or images.us-east-1, to an AMI there",
        "no image for eu-west-1: set image_id, or images.eu-west-1, to an AMI there",
    ]


def test_without_regions_the_sessions_region_needs_an_image(aws_env, monkeypatch):
    assert AwsProvider(AwsSettings()).check() == [
        "no image for us-east-1: set image_id, or images.us-east-1, to an AMI there"
    ]
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert AwsProvider(AwsSettings(image_id="ami-0123456789abcdef0")).check() == [
        "no AWS region: set regions, AWS_DEFAULT_REGION or the profile's region"
    ]
