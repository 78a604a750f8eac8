"""The `[providers.NAME]` table of a Lambda provider, and where its API key comes from."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from attrs import field, frozen

from navarch.plugins import validators


@frozen(kw_only=True)
class LambdaSettings:
    url: str = field(default="https://cloud.lambda.ai/api/v1", validator=validators.url)
    # The environment variable that holds the API key; read when `api_key_file` is empty.
    api_key_env: str = "LAMBDA_API_KEY"
    # A file that holds the API key. When set, it is the only source: the environment variable
    # is not read, so a key left in a shell never overrides the one the configuration names.
    api_key_file: str = ""
    # The account's SSH key that every instance gets; Lambda launches with exactly one.
    ssh_key_name: str = ""
    # The image family to boot (`lambda-stack-22-04`); empty takes Lambda's default image.
    image_family: str = ""
    # Lambda file systems to attach to every instance; each must be in the instance's region.
    file_systems: tuple[str, ...] = ()
    # The least time from the answer to one launch call to the next launch call: Lambda accepts
    # one launch a 12 s and answers faster ones with 429.
    launch_interval: timedelta = field(
        default=timedelta(seconds=12), validator=validators.not_negative
    )
    request_timeout: timedelta = field(default=timedelta(seconds=30), validator=validators.positive)
    # Tries after a call that failed with 429, a 5xx or a network error, before the provider
    # raises TransientError; `backoff` is the wait before the first, doubled for each after it.
    retries: int = field(default=3, validator=validators.at_least(0))
    backoff: timedelta = field(default=timedelta(seconds=1), validator=validators.not_negative)


class KeyProblem(Exception):
    """The API key cannot be had; the message says what to do and never holds a key."""


def read_api_key(settings: LambdaSettings) -> str:
    """The API key, from `api_key_file` when it is set and from `api_key_env` otherwise."""
    if settings.api_key_file:
        path = Path(settings.api_key_file).expanduser()
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise KeyProblem(
                f"api_key_file {path}: cannot read the Lambda API key ({reason})"
            ) from None
        if not key:
            raise KeyProblem(f"api_key_file {path} is empty: write the Lambda API key into it")
        return key
    key = os.environ.get(settings.api_key_env, "").strip()
    if not key:
        raise KeyProblem(f"no Lambda API key: set {settings.api_key_env} or api_key_file")
    return key


def key_problem(settings: LambdaSettings) -> str | None:
    """What keeps the provider from having an API key, in one line; None when it has one."""
    try:
        read_api_key(settings)
    except KeyProblem as exc:
        return str(exc)
    return None
