"""Operator commands on pools: `navarch pools`, `pools report-queue`, `pool get`, `pool scale`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from navarch.api import wire as m
from navarch.cli.connection import run_client, server_options
from navarch.cli.output import (
    Column,
    emit,
    output_option,
    print_json,
    print_table,
    wants_json,
    wide_option,
)

if TYPE_CHECKING:
    from navarch.api.client import HttpClient

_COLUMNS = [
    Column("name", "POOL"),
    Column("size", "SIZE", justify="right"),
    Column("target", "TARGET", justify="right"),
    Column("inFlight", "IN FLIGHT", priority=3, short="FLIGHT", justify="right"),
    Column("healthy", "HEALTHY", priority=1, justify="right"),
    Column("bounds", "MIN-MAX", priority=4),
    Column("utilization", "GPU UTIL", priority=2, short="UTIL", justify="right"),
    Column("autoscaler", "AUTOSCALER", priority=5),
    Column("lastDecision", "LAST DECISION", priority=1, short="DECISION", squeeze_to=24),
]


def _wire(value: Any) -> Any:
    from navarch.api.codec import unstructure

    return unstructure(value)


def _row(pool: m.Pool) -> dict[str, Any]:
    row: dict[str, Any] = _wire(pool)
    row.setdefault("size", 0)
    row.setdefault("target", 0)
    row.setdefault("inFlight", 0)
    row.setdefault("healthy", 0)
    row["bounds"] = f"{pool.min_nodes}-{pool.max_nodes}"
    row["utilization"] = None if pool.utilization is None else f"{pool.utilization:.0f}%"
    row["autoscaler"] = pool.autoscaler or "none"
    return row


@click.group("pools", invoke_without_command=True)
@wide_option
@output_option
@server_options
@click.pass_context
def pools(
    ctx: click.Context, wide: bool, output: str, as_json: bool, server: str, token: str
) -> None:
    """List pools: size, target, instances in flight and the last scaling decision."""
    if ctx.invoked_subcommand is not None:
        return

    async def fetch(client: HttpClient) -> m.ListPoolsResponse:
        return await client.list_pools(m.ListPoolsRequest())

    reply = run_client(server, token, fetch)
    if wants_json(output, as_json):
        print_json([_wire(p) for p in reply.pools])
        return
    emit(
        [_row(p) for p in reply.pools],
        _COLUMNS,
        output=output,
        as_json=as_json,
        empty="no pools are configured",
        wide=wide,
    )


@pools.command("report-queue")
@click.argument("pool")
@click.argument("depth", type=click.IntRange(min=0))
@server_options
def report_queue(pool: str, depth: int, server: str, token: str) -> None:
    """Report the number of jobs waiting for or running on POOL, for its autoscaler."""

    async def send(client: HttpClient) -> m.ReportQueueDepthResponse:
        return await client.report_queue_depth(m.ReportQueueDepthRequest(pool=pool, depth=depth))

    run_client(server, token, send)
    click.echo(f"pool {pool}: queue depth {depth}")


@click.group("pool")
def pool() -> None:
    """Show or scale one pool."""


@pool.command("get")
@click.argument("name")
@wide_option
@output_option
@server_options
def get_pool(name: str, wide: bool, output: str, as_json: bool, server: str, token: str) -> None:
    """Show one pool: its size, target, blocked providers and instances."""

    async def fetch(client: HttpClient) -> m.GetPoolResponse:
        return await client.get_pool(m.GetPoolRequest(name=name))

    p = run_client(server, token, fetch).pool
    if wants_json(output, as_json):
        print_json(_wire(p))
        return
    fields = [
        ("Pool", p.name),
        ("Instance type", p.instance_type),
        ("Min-max", f"{p.min_nodes}-{p.max_nodes}"),
        ("Size", str(p.size)),
        ("Target", str(p.target)),
        ("In flight", str(p.in_flight)),
        ("Healthy", str(p.healthy)),
        ("Manual target", "" if p.manual_target is None else str(p.manual_target)),
        ("GPU utilization", "" if p.utilization is None else f"{p.utilization:.1f}%"),
        ("Queue depth", "" if p.queue_depth is None else str(p.queue_depth)),
        ("Autoscaler", p.autoscaler or "none"),
        ("Last decision", p.last_decision),
    ]
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        click.echo(f"{label + ':':<{width + 1}} {value or '-'}")
    if p.blocked:
        click.echo()
        print_table(
            [_wire(b) for b in p.blocked],
            [
                ("provider", "BLOCKED PROVIDER"),
                ("region", "REGION"),
                ("zone", "ZONE"),
                ("kind", "KIND"),
                ("until", "UNTIL"),
                ("reason", "REASON"),
            ],
            wide=wide,
        )
    if p.instances:
        click.echo()
        print_table(
            [
                {**_wire(i), "bootstrap": _bootstrap_state(i), "preflight": _preflight_state(i)}
                for i in p.instances
            ],
            [
                ("instanceId", "INSTANCE"),
                ("provider", "PROVIDER"),
                ("region", "REGION"),
                ("status", "STATUS"),
                ("bootstrap", "BOOTSTRAP"),
                ("preflight", "PREFLIGHT"),
                ("reason", "REASON"),
            ],
            wide=wide,
        )
    for instance in p.instances:
        _show_bootstrap(instance, wide)


def _bootstrap_state(instance: m.PoolInstance) -> str:
    boot = instance.bootstrap
    if boot is None:
        return ""
    return f"{boot.state.value.removeprefix('BOOTSTRAP_STATE_').lower()} ({boot.method})"


def _preflight_state(instance: m.PoolInstance) -> str:
    preflight = instance.preflight
    if preflight is None:
        return ""
    state = preflight.state.value.removeprefix("PREFLIGHT_STATE_").lower()
    if preflight.state is m.PreflightState.PREFLIGHT_STATE_FAILED:
        return f"{state}: {preflight.detail}"
    return f"{state} (level {preflight.level})"


# Lines of a bootstrap's log shown under the table; --wide and -o json show all that is kept.
_LOG_LINES = 10


def _show_bootstrap(instance: m.PoolInstance, wide: bool) -> None:
    """The detail and log tail of a bootstrap that has not succeeded."""
    boot = instance.bootstrap
    if boot is None or boot.state is m.BootstrapState.BOOTSTRAP_STATE_SUCCEEDED:
        return
    click.echo()
    click.echo(f"Bootstrap of {instance.instance_id}: {_bootstrap_state(instance)}: {boot.detail}")
    lines = boot.log_tail.splitlines()
    for line in lines if wide else lines[-_LOG_LINES:]:
        click.echo(f"  | {line}")


@pool.command("scale")
@click.argument("name")
@click.argument("target", type=click.IntRange(min=0))
@click.option("--reason", default="", help="Why, for the event log.")
@server_options
def scale_pool(name: str, target: int, reason: str, server: str, token: str) -> None:
    """Hold at least TARGET nodes in pool NAME, whatever its autoscaler recommends."""

    async def send(client: HttpClient) -> m.ScalePoolResponse:
        return await client.scale_pool(m.ScalePoolRequest(name=name, target=target, reason=reason))

    p = run_client(server, token, send).pool
    click.echo(f"pool {p.name}: holding at least {target} nodes (now {p.size}, target {p.target})")
