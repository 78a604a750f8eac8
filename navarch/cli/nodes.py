"""Operator commands on nodes: list, get, cordon, uncordon, drain, terminate, events."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from navarch.api import wire as m
from navarch.cli.connection import run_client, server_options
from navarch.cli.labels import parse_label
from navarch.cli.output import (
    Column,
    console,
    make_table,
    output_option,
    print_json,
    print_table,
    wants_json,
    wide_option,
)
from navarch.errors import NavarchError, UsageError

if TYPE_CHECKING:
    from rich.table import Table

    from navarch.api.client import HttpClient

R = TypeVar("R")


class EnumChoice(click.ParamType[enum.Enum, object]):
    """An enum member by short name (`cordoned`) or full name (`NODE_STATUS_CORDONED`)."""

    def __init__(self, cls: type[enum.Enum], prefix: str) -> None:
        self.cls = cls
        self.prefix = prefix
        self.name = cls.__name__
        self.choices = [member.value.removeprefix(prefix).lower() for member in cls]

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(self.choices) + "]"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> enum.Enum:
        if isinstance(value, self.cls):
            return value
        text = str(value).strip().upper().removeprefix(self.prefix)
        try:
            return self.cls(self.prefix + text)
        except ValueError:
            self.fail(f"{value!r} is not one of {', '.join(self.choices)}", param, ctx)


STATUS = EnumChoice(m.NodeStatus, "NODE_STATUS_")
HEALTH = EnumChoice(m.HealthStatus, "HEALTH_STATUS_")


def short(member: enum.Enum | None) -> str:
    """`NODE_STATUS_CORDONED` -> `cordoned`."""
    if member is None:
        return "-"
    value = str(member.value)
    for prefix in ("NODE_STATUS_", "HEALTH_STATUS_", "COMMAND_TYPE_", "COMMAND_STATUS_"):
        if value.startswith(prefix):
            return value.removeprefix(prefix).lower()
    return value.lower()


def age(when: datetime | None, now: datetime | None = None) -> str:
    """How long ago, the way people say it: "12s ago", "5m ago", "never"."""
    if when is None:
        return "never"
    seconds = max(0, int(((now or datetime.now(UTC)) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def local_time(when: datetime | None) -> str:
    return "-" if when is None else when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _wire(value: Any) -> Any:
    from navarch.api.codec import unstructure

    return unstructure(value)


def _not_found(node: str) -> NavarchError:
    return NavarchError(f"node {node} not found")


async def _node_call(node: str, call: Awaitable[R]) -> R:
    """Awaits `call`; a not_found from the control plane names the node."""
    from navarch.api.codec import ApiError

    try:
        return await call
    except ApiError as exc:
        if exc.code == "not_found":
            raise _not_found(node) from None
        raise


# list

NODE_COLUMNS = [
    Column("node", "NODE"),
    Column("status", "STATUS"),
    Column("health", "HEALTH", priority=1),
    Column("pool", "POOL", priority=2),
    Column("provider", "PROVIDER", priority=5),
    Column("region", "REGION", priority=4),
    Column("instance_type", "INSTANCE TYPE", priority=6, short="TYPE"),
    Column("gpus", "GPUS", priority=3, justify="right"),
    Column("heartbeat", "HEARTBEAT", priority=1, short="SEEN"),
]


def node_row(node: m.Node, now: datetime | None = None) -> dict[str, Any]:
    return {
        "node": node.node_id,
        "status": short(node.status),
        "health": short(node.health),
        "pool": node.pool or "-",
        "provider": node.provider or "-",
        "region": node.region or "-",
        "instance_type": node.instance_type or "-",
        "gpus": len(node.gpus),
        "heartbeat": age(node.last_heartbeat_at, now),
    }


@click.command("list")
@click.option("--status", "statuses", type=STATUS, multiple=True, help="Only nodes in this status.")
@click.option(
    "--health", "healths", type=HEALTH, multiple=True, help="Only nodes with this health."
)
@click.option("--pool", default="", help="Only nodes of this pool.")
@click.option("--provider", default="", help="Only nodes of this provider.")
@click.option("--region", default="", help="Only nodes in this region.")
@click.option(
    "--label",
    "labels",
    multiple=True,
    callback=parse_label,
    metavar="KEY=VALUE",
    help="Only nodes with this label; repeat to require several.",
)
@click.option("--all", "show_all", is_flag=True, help="Also list terminated nodes.")
@click.option("--watch", "-w", is_flag=True, help="Redraw the table every --interval until Ctrl-C.")
@click.option(
    "--interval",
    default="2s",
    show_default=True,
    help="How often --watch redraws, as a duration.",
)
@wide_option
@output_option
@server_options
def list_nodes(
    statuses: tuple[m.NodeStatus, ...],
    healths: tuple[m.HealthStatus, ...],
    pool: str,
    provider: str,
    region: str,
    labels: dict[str, str],
    show_all: bool,
    watch: bool,
    interval: str,
    wide: bool,
    output: str,
    as_json: bool,
    server: str,
    token: str,
) -> None:
    """List nodes, their status, health and last heartbeat.

    Terminated nodes are left out unless --all or --status terminated asks for them.
    """
    request = m.ListNodesRequest(
        statuses=statuses,
        healths=healths,
        pool=pool,
        provider=provider,
        region=region,
        labels=labels,
    )
    hide = not show_all and not statuses
    if watch:
        if wants_json(output, as_json):
            raise UsageError("--watch draws a table; it cannot be combined with JSON output")
        from navarch.durations import parse_duration

        try:
            seconds = parse_duration(interval).total_seconds()
        except ValueError as exc:
            raise UsageError(f"--interval: {exc}") from None
        _watch(server, token, request, max(seconds, 0.2), hide, wide)
        return

    async def fetch(client: HttpClient) -> m.ListNodesResponse:
        return await client.list_nodes(request)

    nodes, hidden = _hide_terminated(run_client(server, token, fetch).nodes, hide)
    if wants_json(output, as_json):
        print_json([_wire(node) for node in nodes])
        return
    if not nodes:
        click.echo("no nodes")
    else:
        table, width = node_table(nodes, wide)
        console(width).print(table)
    if hidden:
        click.echo(_hidden_note(hidden))


def _hide_terminated(nodes: Sequence[m.Node], hide: bool) -> tuple[Sequence[m.Node], int]:
    """The nodes to show, and how many terminated ones were left out."""
    if not hide:
        return nodes, 0
    shown = [n for n in nodes if n.status is not m.NodeStatus.NODE_STATUS_TERMINATED]
    return shown, len(nodes) - len(shown)


def _hidden_note(hidden: int) -> str:
    return f"{hidden} terminated node{'' if hidden == 1 else 's'} hidden; --all shows them"


def node_table(nodes: Sequence[m.Node], wide: bool = False) -> tuple[Table, int]:
    """A rich table of nodes, one row each, and the width it needs."""
    now = datetime.now(UTC)
    return make_table([node_row(node, now) for node in nodes], NODE_COLUMNS, wide=wide)


def _watch(
    server: str,
    token: str,
    request: m.ListNodesRequest,
    interval: float,
    hide: bool,
    wide: bool,
) -> None:
    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    from navarch.api.client import Unreachable
    from navarch.api.codec import ApiError
    from navarch.cli.connection import explain

    screen = console(0)

    def render(nodes: Sequence[m.Node], hidden: int, problem: str) -> Group:
        stamp = datetime.now().strftime("%H:%M:%S")
        count = f"{len(nodes)} node" + ("" if len(nodes) == 1 else "s")
        note = f" ({_hidden_note(hidden)})" if hidden else ""
        footer = Text(f"{count} at {stamp}{note}; Ctrl-C to stop", style="dim")
        if problem:
            footer = Text(f"navarch: {problem} (showing the last answer)", style="red")
        table, width = node_table(nodes, wide)
        screen.width = max(width, screen.width)
        return Group(table, footer)

    async def loop(client: HttpClient) -> None:
        import trio

        nodes: Sequence[m.Node] = ()
        hidden = 0
        with Live(render(nodes, 0, ""), console=screen, auto_refresh=False) as live:
            while True:
                problem = ""
                try:
                    answer = (await client.list_nodes(request)).nodes
                    nodes, hidden = _hide_terminated(answer, hide)
                except Unreachable as exc:
                    problem = str(exc)
                except ApiError as exc:
                    if exc.code in ("unauthenticated", "permission_denied", "invalid_argument"):
                        raise
                    problem = str(explain(exc, server, token))
                live.update(render(nodes, hidden, problem), refresh=True)
                await trio.sleep(interval)

    try:
        run_client(server, token, loop)
    except KeyboardInterrupt:
        pass


# get


@click.command("get")
@click.argument("node")
@output_option
@server_options
def get_node(node: str, output: str, as_json: bool, server: str, token: str) -> None:
    """Show one node in detail.

    Prints the machine, its GPUs with their last metrics, the last health events and the
    commands not yet finished.
    """

    async def fetch(client: HttpClient) -> m.GetNodeResponse:
        return await _node_call(node, client.get_node(m.GetNodeRequest(node_id=node)))

    reply = run_client(server, token, fetch)
    if wants_json(output, as_json):
        print_json(_wire(reply))
        return
    n = reply.node
    fields = [
        ("Node", n.node_id),
        ("Status", short(n.status) + _reason_suffix(n)),
        ("Health", short(n.health)),
        ("Pool", n.pool),
        ("Provider", n.provider),
        ("Region", n.region),
        ("Zone", n.zone),
        ("Instance type", n.instance_type),
        ("Hostname", n.hostname),
        ("Labels", ", ".join(f"{k}={v}" for k, v in sorted(n.labels.items()))),
        ("Registered", local_time(n.registered_at)),
        ("Last heartbeat", age(n.last_heartbeat_at)),
    ]
    if n.metrics is not None:
        fields.append(("CPU", f"{n.metrics.cpu_percent:.1f}%"))
        fields.append(("Memory", f"{n.metrics.memory_percent:.1f}%"))
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        click.echo(f"{name + ':':<{width + 1}} {value or '-'}")
    metrics = {g.index: g for g in (n.metrics.gpus if n.metrics else ())}
    if n.gpus:
        click.echo()
        rows = []
        for info in n.gpus:
            sample = metrics.get(info.index)
            rows.append(
                {
                    "index": info.index,
                    "name": info.name,
                    "uuid": info.uuid,
                    "util": f"{sample.utilization_percent:.0f}%" if sample else "-",
                    "temp": f"{sample.temperature_c:.0f} C" if sample else "-",
                    "power": f"{sample.power_watts:.0f} W" if sample else "-",
                }
            )
        print_table(
            rows,
            [
                ("index", "GPU"),
                ("name", "NAME"),
                ("uuid", "UUID"),
                ("util", "UTIL"),
                ("temp", "TEMP"),
                ("power", "POWER"),
            ],
        )
    if n.last_health_events:
        click.echo()
        click.echo("Last health events:")
        for event in n.last_health_events:
            gpu = f"GPU {event.gpu_index}" if event.gpu_index >= 0 else "node"
            xid = f" XID {event.xid}" if event.xid else ""
            what = event.type.value.removeprefix("HEALTH_EVENT_TYPE_").lower()
            click.echo(f"  {local_time(event.time)}  {gpu}  {what}{xid}: {event.message}")
    if reply.open_commands:
        click.echo()
        click.echo("Open commands:")
        for command in reply.open_commands:
            click.echo(
                f"  {command.command_id}  {short(command.type)}  {short(command.status)}"
                + (f"  ({command.reason})" if command.reason else "")
            )


def _reason_suffix(node: m.Node) -> str:
    reason = node.status_reason
    return f" ({reason})" if reason and reason != short(node.status) else ""


# cordon, uncordon, drain, terminate


def _issue(
    server: str,
    token: str,
    node: str,
    kind: m.CommandType,
    reason: str,
    parameters: dict[str, str] | None = None,
) -> m.IssueCommandResponse:
    request = m.IssueCommandRequest(
        node_id=node, type=kind, reason=reason, parameters=parameters or {}
    )

    async def issue(client: HttpClient) -> m.IssueCommandResponse:
        return await _node_call(node, client.issue_command(request))

    return run_client(server, token, issue)


def _report(reply: m.IssueCommandResponse, text: str, output: str, as_json: bool) -> None:
    if wants_json(output, as_json):
        print_json(_wire(reply))
    else:
        click.echo(f"{text} (command {reply.command.command_id})")


@click.command()
@click.argument("node")
@click.option("--reason", default="", help="Why, for the node's events.")
@output_option
@server_options
def cordon(node: str, reason: str, output: str, as_json: bool, server: str, token: str) -> None:
    """Stop placing new work on NODE; what runs there keeps running."""
    reply = _issue(server, token, node, m.CommandType.COMMAND_TYPE_CORDON, reason)
    _report(reply, f"node {node} cordoned", output, as_json)


@click.command()
@click.argument("node")
@click.option("--reason", default="", help="Why, for the node's events.")
@click.option("--force", is_flag=True, help="Return an unhealthy node to service.")
@output_option
@server_options
def uncordon(
    node: str, reason: str, force: bool, output: str, as_json: bool, server: str, token: str
) -> None:
    """Return NODE to service."""
    parameters = {"force": "true"} if force else {}
    reply = _issue(server, token, node, m.CommandType.COMMAND_TYPE_UNCORDON, reason, parameters)
    _report(reply, f"node {node} uncordoned", output, as_json)


@click.command()
@click.argument("node")
@click.option("--reason", default="", help="Why, for the node's events.")
@click.option("--wait", is_flag=True, help="Wait until NODE is drained; exit 1 if draining fails.")
@click.option(
    "--timeout",
    default="10m",
    show_default=True,
    help="How long --wait waits, as a duration.",
)
@output_option
@server_options
def drain(
    node: str,
    reason: str,
    wait: bool,
    timeout: str,
    output: str,
    as_json: bool,
    server: str,
    token: str,
) -> None:
    """Move the work off NODE and keep it out of service.

    The node's daemon runs its drain command; the node is drained when the command succeeds.
    """
    from navarch.durations import parse_duration

    try:
        limit = parse_duration(timeout).total_seconds()
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from None
    reply = _issue(server, token, node, m.CommandType.COMMAND_TYPE_DRAIN, reason)
    if not wait:
        _report(reply, f"node {node} draining", output, as_json)
        return
    if not wants_json(output, as_json):
        click.echo(f"node {node} draining (command {reply.command.command_id})")
    command = _follow(server, token, reply.command, limit, timeout)
    if command.status is not m.CommandStatus.COMMAND_STATUS_SUCCEEDED:
        detail = command.result_message or short(command.status)
        raise NavarchError(f"drain of node {node} failed: {detail}")
    if wants_json(output, as_json):
        print_json(_wire(command))
    else:
        click.echo(
            f"node {node} drained"
            + (f": {command.result_message}" if command.result_message else "")
        )


_FINISHED = {
    m.CommandStatus.COMMAND_STATUS_SUCCEEDED,
    m.CommandStatus.COMMAND_STATUS_FAILED,
    m.CommandStatus.COMMAND_STATUS_CANCELLED,
}


def _follow(
    server: str, token: str, command: m.NodeCommand, limit: float, shown_limit: str
) -> m.NodeCommand:
    """Polls a command until it finishes, or raises after `limit` seconds."""

    async def follow(client: HttpClient) -> m.NodeCommand:
        import trio

        request = m.GetCommandRequest(command_id=command.command_id)
        current = command
        with trio.move_on_after(limit):
            while current.status not in _FINISHED:
                await trio.sleep(0.5)
                current = (await client.get_command(request)).command
            return current
        raise NavarchError(
            f"node {command.node_id} did not finish draining within {shown_limit} "
            f"(command {command.command_id} is {short(current.status)})"
        )

    return run_client(server, token, follow)


@click.command()
@click.argument("node")
@click.option("--reason", default="", help="Why, for the node's events.")
@output_option
@server_options
def terminate(node: str, reason: str, output: str, as_json: bool, server: str, token: str) -> None:
    """Take NODE out of the fleet for good.

    The node's daemon acknowledges the command and stops.
    """
    reply = _issue(server, token, node, m.CommandType.COMMAND_TYPE_TERMINATE, reason)
    _report(reply, f"node {node} terminating", output, as_json)


# events

EVENT_COLUMNS = [
    Column("time", "TIME"),
    Column("kind", "KIND"),
    Column("node", "NODE"),
    Column("actor", "ACTOR", priority=3),
    Column("change", "CHANGE", priority=2),
    Column("reason", "REASON", priority=1, squeeze_to=20),
]


@click.command()
@click.option("--node", default="", help="Only events of this node.")
@click.option("--kind", "kinds", multiple=True, help="Only events of this kind; repeatable.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@wide_option
@output_option
@server_options
def events(
    node: str,
    kinds: tuple[str, ...],
    limit: int,
    wide: bool,
    output: str,
    as_json: bool,
    server: str,
    token: str,
) -> None:
    """Show lifecycle and command events, newest first."""
    request = m.ListEventsRequest(node_id=node, kinds=kinds, limit=limit)

    async def fetch(client: HttpClient) -> m.ListEventsResponse:
        return await client.list_events(request)

    reply = run_client(server, token, fetch)
    if wants_json(output, as_json):
        print_json([_wire(e) for e in reply.events])
        return
    rows = []
    for event in reply.events:
        change = ""
        if event.to_status is not None:
            before = f"{short(event.from_status)} " if event.from_status is not None else ""
            change = f"{before}-> {short(event.to_status)}"
        rows.append(
            {
                "time": local_time(event.time),
                "kind": event.kind,
                "node": event.node_id or "-",
                "actor": event.actor or "-",
                "change": change or "-",
                "reason": event.reason or "-",
            }
        )
    print_table(rows, EVENT_COLUMNS, empty="no events", wide=wide)
