"""How operator commands reach the control plane: `--server`, `--token`, and one-line errors.

Nothing here imports trio or httpx at module level, so `navarch --help` stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from navarch.errors import NavarchError, UsageError

if TYPE_CHECKING:
    from navarch.api.client import HttpClient
    from navarch.api.codec import ApiError

T = TypeVar("T")

DEFAULT_SERVER = "http://127.0.0.1:50051"
TOKEN_ENV = "NAVARCH_ADMIN_TOKEN"  # the control plane's name for the same token
DEPRECATED_TOKEN_ENV = "NAVARCH_TOKEN"


def server_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds `--server` (env NAVARCH_SERVER) and `--token` (env NAVARCH_ADMIN_TOKEN) to a command."""
    fn = click.option(
        "--token",
        envvar=TOKEN_ENV,
        default="",
        show_default=False,
        show_envvar=True,
        callback=_deprecated_token_env,
        help=f"Admin token of the control plane. {DEPRECATED_TOKEN_ENV} is still read, deprecated.",
    )(fn)
    fn = click.option(
        "--server",
        envvar="NAVARCH_SERVER",
        default=DEFAULT_SERVER,
        show_default=True,
        show_envvar=True,
        help="URL of the control plane, or several separated by commas (control planes that "
        "share a store; commands go to the leader).",
    )(fn)
    return fn


def _deprecated_token_env(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """NAVARCH_TOKEN, the old name, when neither --token nor NAVARCH_ADMIN_TOKEN gives a token."""
    if value:
        return value
    legacy = os.environ.get(DEPRECATED_TOKEN_ENV, "")
    if legacy:
        click.echo(
            f"navarch: {DEPRECATED_TOKEN_ENV} is deprecated; set {TOKEN_ENV} instead",
            err=True,
        )
    return legacy


def run_client(server: str, token: str, fn: Callable[[HttpClient], Awaitable[T]]) -> T:
    """Runs `fn(client)` under trio with a client of `server`; API errors become one line."""
    import trio

    from navarch.api.client import HttpClient, split_urls
    from navarch.api.codec import ApiError

    for url in split_urls(server) or [server]:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--server: expected an http:// or https:// URL, got {url!r}")

    async def main() -> T:
        async with HttpClient(server, token=token) as client:
            return await fn(client)

    try:
        return trio.run(main)
    except ApiError as exc:
        raise explain(exc, server, token) from None


def explain(exc: ApiError, server: str, token: str) -> NavarchError:
    """Turns an error of the control plane into what the operator should know or do."""
    if exc.code == "unauthenticated":
        if not token:
            return NavarchError(
                f"the control plane at {server} requires a token; pass --token or set {TOKEN_ENV}"
            )
        return NavarchError(
            f"the control plane at {server} did not accept the token ({exc.message}); check "
            f"--token or {TOKEN_ENV}"
        )
    if exc.code == "permission_denied":
        return NavarchError(f"the token is not allowed to do this: {exc.message}")
    if exc.code == "invalid_argument":
        return UsageError(exc.message)
    return NavarchError(exc.message)
