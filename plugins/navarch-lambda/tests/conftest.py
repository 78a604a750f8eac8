from datetime import timedelta

import pytest
from fake_lambda import API_KEY, SSH_KEY, FakeLambda
from navarch_lambda import LambdaProvider, LambdaSettings


@pytest.fixture
def fake():
    return FakeLambda()


@pytest.fixture
def lambda_url(fake):
    with fake.serve() as url:
        yield url


@pytest.fixture
def settings(lambda_url, monkeypatch):
    monkeypatch.setenv("LAMBDA_API_KEY", API_KEY)
    return LambdaSettings(
        url=lambda_url,
        ssh_key_name=SSH_KEY,
        launch_interval=timedelta(0),
        retries=2,
        backoff=timedelta(milliseconds=10),
    )


@pytest.fixture
def provider(settings):
    return LambdaProvider(settings)
