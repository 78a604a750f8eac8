"""Operator overrides of remediation: list episodes, pause, resume, cancel, reset a breaker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from navarch.api import wire as m
from navarch.cli.connection import run_client, server_options
from navarch.cli.nodes import local_time
from navarch.cli.output import (
    Column,
    output_option,
    print_json,
    print_table,
    wants_json,
    wide_option,
)

if TYPE_CHECKING:
    from navarch.api.client import HttpClient

COLUMNS = [
    Column("episode", "EPISODE"),
    Column("node", "NODE"),
    Column("pool", "POOL", priority=3),
    Column("action", "ACTION"),
    Column("step", "STEP"),
    Column("rule", "RULE", priority=2),
    Column("updated", "UPDATED", priority=4),
    Column("detail", "DETAIL", priority=1, squeeze_to=20),
]


def _wire(value: Any) -> Any:
    from navarch.api.codec import unstructure

    return unstructure(value)


def _action(episode: m.Remediation) -> str:
    """The episode's action, with the GPU it is about: `reset_gpu (GPU 3)`."""
    action = episode.action.value.removeprefix("REMEDIATION_ACTION_").lower()
    return f"{action} (GPU {episode.gpu_index})" if episode.gpu_index >= 0 else action


def _show_controls(controls: m.RemediationControls) -> None:
    paused = "every pool" if controls.paused else ", ".join(controls.paused_pools) or "none"
    click.echo(f"paused: {paused}")
    click.echo(f"open breakers: {', '.join(controls.open_breakers) or 'none'}")


@click.group()
def remediation() -> None:
    """List, pause, resume or cancel node remediations; reset a pool's circuit breaker."""


@remediation.command("list")
@click.option("--pool", default="", help="Only episodes of this pool.")
@click.option("--node", default="", help="Only episodes of this node.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@wide_option
@output_option
@server_options
def list_remediations(
    pool: str,
    node: str,
    limit: int,
    wide: bool,
    output: str,
    as_json: bool,
    server: str,
    token: str,
) -> None:
    """Show remediation episodes, newest first, and the pauses and open breakers."""
    request = m.ListRemediationsRequest(pool=pool, node_id=node, limit=limit)

    async def fetch(client: HttpClient) -> m.ListRemediationsResponse:
        return await client.list_remediations(request)

    reply = run_client(server, token, fetch)
    if wants_json(output, as_json):
        print_json(_wire(reply))
        return
    rows = [
        {
            "episode": e.episode_id,
            "node": e.node_id,
            "pool": e.pool or "-",
            "action": _action(e),
            "step": e.step.value.removeprefix("REMEDIATION_STEP_").lower(),
            "rule": e.rule or "-",
            "updated": local_time(e.updated_at),
            "detail": e.detail or "-",
        }
        for e in reply.remediations
    ]
    print_table(rows, COLUMNS, empty="no remediations", wide=wide)
    _show_controls(reply.controls)


@remediation.command()
@click.argument("pool", required=False, default="")
@click.option("--reason", default="", help="Why, for the event log.")
@server_options
def pause(pool: str, reason: str, server: str, token: str) -> None:
    """Stop remediation in POOL, or in every pool when POOL is left out.

    Open episodes stop before their next step, and new ones wait at the start.
    """
    request = m.PauseRemediationRequest(pool=pool, reason=reason)

    async def call(client: HttpClient) -> m.RemediationControlsResponse:
        return await client.pause_remediation(request)

    _show_controls(run_client(server, token, call).controls)


@remediation.command()
@click.argument("pool", required=False, default="")
@server_options
def resume(pool: str, server: str, token: str) -> None:
    """Lift the pause of POOL, or the global pause when POOL is left out."""
    request = m.ResumeRemediationRequest(pool=pool)

    async def call(client: HttpClient) -> m.RemediationControlsResponse:
        return await client.resume_remediation(request)

    _show_controls(run_client(server, token, call).controls)


@remediation.command()
@click.argument("episode")
@click.option("--reason", default="", help="Why, for the event log.")
@server_options
def cancel(episode: str, reason: str, server: str, token: str) -> None:
    """End EPISODE where it is; its node stays out of service."""
    request = m.CancelRemediationRequest(episode_id=episode, reason=reason)

    async def call(client: HttpClient) -> m.CancelRemediationResponse:
        return await client.cancel_remediation(request)

    cancelled = run_client(server, token, call).remediation
    click.echo(f"cancelled {cancelled.episode_id} (node {cancelled.node_id})")


@remediation.command()
@click.argument("pool")
@server_options
def reset(pool: str, server: str, token: str) -> None:
    """Close the circuit breaker of POOL so that new episodes start again."""
    request = m.ResetBreakerRequest(pool=pool)

    async def call(client: HttpClient) -> m.RemediationControlsResponse:
        return await client.reset_breaker(request)

    _show_controls(run_client(server, token, call).controls)
