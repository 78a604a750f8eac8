"""One handler per API method: the wire request in, the domain call, the wire reply out.

Each handler checks what the wire may carry but the domain never sees (ids, page sizes, duration
strings), names a bad field by its wire name (`nodeId`), and maps the domain's answer back. The
caller is already authorized for the method, and every field is within its limits
(`navarch.api.methods.call`, `navarch.api.limits`).
"""

from __future__ import annotations

import string
from datetime import timedelta

import trio

from navarch.api import wire as w
from navarch.api.mapping import (
    BOOTSTRAP_STATE_IN,
    COMMAND_RESULT_IN,
    COMMAND_TYPE_IN,
    HEALTH_STATUS,
    HEALTH_STATUS_IN,
    NODE_STATUS,
    NODE_STATUS_IN,
    command_to_wire,
    commands_to_wire,
    controls_to_wire,
    event_to_wire,
    fleet_summary_to_wire,
    gpu_info_from_wire,
    health_events_from_wire,
    metrics_from_wire,
    node_to_wire,
    pool_detail_to_wire,
    pool_to_wire,
    remediation_to_wire,
)
from navarch.controlplane import Caller, ControlPlane
from navarch.controlplane.node_pages import NodeOrder
from navarch.controlplane.nodes import NodeFilter
from navarch.controlplane.preemption import NOTICE_KINDS
from navarch.controlplane.service import MAX_PAGE
from navarch.durations import format_duration, parse_duration
from navarch.errors import InvalidArgument, PermissionDenied
from navarch.model import Inventory
from navarch.pools.bootstrap import Bootstraps

_MAX_ID_LENGTH = 253
_MAX_DURATION = timedelta(days=1)
# The most commands one ListCommands page holds.
MAX_COMMANDS_PAGE = 500
_ID_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.:")


def check_id(field: str, value: str) -> None:
    """Ids are 1 to 253 letters, digits and `-_.:`, so they are safe in paths, logs and labels."""
    if not value:
        raise InvalidArgument(f"{field}: must not be empty")
    if len(value) > _MAX_ID_LENGTH or not _ID_CHARACTERS.issuperset(value):
        raise InvalidArgument(
            f"{field}: expected at most {_MAX_ID_LENGTH} letters, digits and '-_.:', "
            f"got {value[:40]!r}"
        )


def _duration(field: str, text: str) -> timedelta:
    """A duration from the wire, at most a day: the control plane cuts a long poll far sooner."""
    value: timedelta | None
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise InvalidArgument(f"{field}: {exc}") from None
    except OverflowError:
        value = None
    if value is None or value > _MAX_DURATION:
        raise InvalidArgument(f"{field}: expected at most 1d, got {text!r}")
    return value


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"limit: expected 1 to {MAX_PAGE}, got {limit}")


def node_actor(caller: Caller, node_id: str) -> str:
    """How events name the caller of a node method: the node itself, unless an admin acts."""
    return caller.actor if caller.role == "admin" else f"node:{node_id}"


async def register_node(
    cp: ControlPlane, request: w.RegisterNodeRequest, caller: Caller
) -> w.RegisterNodeResponse:
    check_id("nodeId", request.node_id)
    inventory = Inventory(
        provider=request.provider,
        region=request.region,
        zone=request.zone,
        instance_type=request.instance_type,
        pool=request.pool,
        hostname=request.hostname,
        labels=request.labels,
        gpus=tuple(gpu_info_from_wire(g) for g in request.gpus),
    )
    bootstraps = cp.pools.bootstraps if cp.pools is not None else None
    if caller.role == "bootstrap" and bootstraps is not None:
        bootstraps.claim(request.node_id)
    try:
        node, token = await cp.nodes.register(
            request.node_id,
            inventory,
            actor=node_actor(caller, request.node_id),
            agent_version=request.agent_version,
            token=cp.auth.enabled and caller.role in ("join", "admin", "bootstrap"),
            take_over=request.take_over,
        )
    except BaseException:
        if bootstraps is not None:
            bootstraps.unclaim(request.node_id)
        raise
    if bootstraps is not None:
        await bootstraps.registered(request.node_id)
    server = cp.server
    config = w.NodeConfig(
        heartbeat_interval=format_duration(server.heartbeat_interval),
        health_check_interval=format_duration(server.health_check_interval),
        command_poll_wait=format_duration(server.command_poll_wait),
    )
    return w.RegisterNodeResponse(node=node_to_wire(node), config=config, node_token=token)


def _bootstraps(cp: ControlPlane, caller: Caller, method: str) -> Bootstraps:
    if caller.role != "bootstrap" or cp.pools is None:
        raise PermissionDenied(f"{method} needs the machine's bootstrap token")
    return cp.pools.bootstraps


async def get_bootstrap_identity(
    cp: ControlPlane, request: w.GetBootstrapIdentityRequest, caller: Caller
) -> w.GetBootstrapIdentityResponse:
    record = _bootstraps(cp, caller, "GetBootstrapIdentity").identity(caller.node_id)
    return w.GetBootstrapIdentityResponse(
        node_id=record.node_id,
        pool=record.pool,
        provider=record.provider,
        region=record.region,
        zone=record.zone,
        instance_type=record.instance_type,
    )


async def report_bootstrap(
    cp: ControlPlane, request: w.ReportBootstrapRequest, caller: Caller
) -> w.ReportBootstrapResponse:
    await _bootstraps(cp, caller, "ReportBootstrap").report(
        caller.node_id, BOOTSTRAP_STATE_IN[request.state], request.detail, request.log_tail
    )
    return w.ReportBootstrapResponse()


async def send_heartbeat(
    cp: ControlPlane, request: w.SendHeartbeatRequest, caller: Caller
) -> w.SendHeartbeatResponse:
    check_id("nodeId", request.node_id)
    metrics = None if request.metrics is None else metrics_from_wire(request.metrics)
    status, commands = await cp.nodes.heartbeat(request.node_id, metrics)
    return w.SendHeartbeatResponse(status=NODE_STATUS[status], commands=commands_to_wire(commands))


async def get_node_commands(
    cp: ControlPlane, request: w.GetNodeCommandsRequest, caller: Caller
) -> w.GetNodeCommandsResponse:
    check_id("nodeId", request.node_id)
    cp.book.require(request.node_id)
    wait = _duration("wait", request.wait)
    commands = await cp.commands.poll(request.node_id, wait)
    return w.GetNodeCommandsResponse(commands=commands_to_wire(commands))


async def ack_command(
    cp: ControlPlane, request: w.AckCommandRequest, caller: Caller
) -> w.AckCommandResponse:
    check_id("nodeId", request.node_id)
    cp.book.require(request.node_id)
    check_id("commandId", request.command_id)
    command = await cp.commands.ack(
        request.node_id,
        request.command_id,
        COMMAND_RESULT_IN[request.result],
        request.message,
        node_actor(caller, request.node_id),
    )
    return w.AckCommandResponse(command=command_to_wire(command))


async def report_health(
    cp: ControlPlane, request: w.ReportHealthRequest, caller: Caller
) -> w.ReportHealthResponse:
    check_id("nodeId", request.node_id)
    status, health = await cp.verdicts.report(
        request.node_id,
        health_events_from_wire(request.events),
        node_actor(caller, request.node_id),
    )
    return w.ReportHealthResponse(status=NODE_STATUS[status], health=HEALTH_STATUS[health])


async def report_preemption(
    cp: ControlPlane, request: w.ReportPreemptionRequest, caller: Caller
) -> w.ReportPreemptionResponse:
    check_id("nodeId", request.node_id)
    if request.kind not in NOTICE_KINDS:
        raise InvalidArgument(
            f"kind: expected one of {', '.join(NOTICE_KINDS)}, got {request.kind[:40]!r}"
        )
    episode_id = await cp.preemptions.notice(
        request.node_id,
        request.kind,
        request.at,
        request.detail,
        node_actor(caller, request.node_id),
    )
    return w.ReportPreemptionResponse(episode_id=episode_id)


async def list_nodes(
    cp: ControlPlane, request: w.ListNodesRequest, caller: Caller
) -> w.ListNodesResponse:
    which = NodeFilter(
        statuses=frozenset(NODE_STATUS_IN[s] for s in request.statuses),
        healths=frozenset(HEALTH_STATUS_IN[h] for h in request.healths),
        pool=request.pool,
        provider=request.provider,
        region=request.region,
        labels=request.labels,
    )
    order = NodeOrder.parse(request.order_by)
    page = await cp.node_page(which, request.query, order, request.page_size, request.page_token)
    return w.ListNodesResponse(
        nodes=tuple(node_to_wire(n) for n in page.nodes),
        next_page_token=page.next_token,
        total=page.total,
    )


async def list_commands(
    cp: ControlPlane, request: w.ListCommandsRequest, caller: Caller
) -> w.ListCommandsResponse:
    check_id("nodeId", request.node_id)
    if not 1 <= request.limit <= MAX_COMMANDS_PAGE:
        raise InvalidArgument(f"limit: expected 1 to {MAX_COMMANDS_PAGE}, got {request.limit}")
    if request.before:
        check_id("before", request.before)
    commands, next_before = await cp.list_commands(
        node_id=request.node_id, limit=request.limit, before=request.before
    )
    return w.ListCommandsResponse(commands=commands_to_wire(commands), next_before=next_before)


async def get_fleet_summary(
    cp: ControlPlane, request: w.GetFleetSummaryRequest, caller: Caller
) -> w.GetFleetSummaryResponse:
    return fleet_summary_to_wire(await cp.fleet_summary(request.history_after))


async def get_node(
    cp: ControlPlane, request: w.GetNodeRequest, caller: Caller
) -> w.GetNodeResponse:
    check_id("nodeId", request.node_id)
    node, commands = await cp.nodes.get(request.node_id)
    return w.GetNodeResponse(node=node_to_wire(node), open_commands=commands_to_wire(commands))


async def issue_command(
    cp: ControlPlane, request: w.IssueCommandRequest, caller: Caller
) -> w.IssueCommandResponse:
    check_id("nodeId", request.node_id)
    command, node = await cp.commands.issue(
        request.node_id,
        COMMAND_TYPE_IN[request.type],
        request.reason,
        request.parameters,
        caller.actor,
    )
    return w.IssueCommandResponse(command=command_to_wire(command), node=node_to_wire(node))


async def get_command(
    cp: ControlPlane, request: w.GetCommandRequest, caller: Caller
) -> w.GetCommandResponse:
    check_id("commandId", request.command_id)
    return w.GetCommandResponse(command=command_to_wire(await cp.commands.get(request.command_id)))


async def list_events(
    cp: ControlPlane, request: w.ListEventsRequest, caller: Caller
) -> w.ListEventsResponse:
    _check_limit(request.limit)
    events, next_before = await cp.list_events(
        node_id=request.node_id, kinds=request.kinds, limit=request.limit, before=request.before
    )
    return w.ListEventsResponse(
        events=tuple(event_to_wire(e) for e in events), next_before=next_before
    )


async def list_pools(
    cp: ControlPlane, request: w.ListPoolsRequest, caller: Caller
) -> w.ListPoolsResponse:
    await trio.lowlevel.checkpoint()
    pools = () if cp.pools is None else tuple(pool_to_wire(p) for p in cp.pools.describe_all())
    return w.ListPoolsResponse(pools=pools)


async def get_pool(
    cp: ControlPlane, request: w.GetPoolRequest, caller: Caller
) -> w.GetPoolResponse:
    await trio.lowlevel.checkpoint()
    manager = cp.pool_manager()
    pool = manager.describe(request.name, detail=True)
    return w.GetPoolResponse(
        pool=pool_detail_to_wire(pool, cp.history.pool(pool.name), manager.decisions(pool.name))
    )


async def scale_pool(
    cp: ControlPlane, request: w.ScalePoolRequest, caller: Caller
) -> w.ScalePoolResponse:
    pool = await cp.pool_manager().scale(request.name, request.target, request.reason, caller.actor)
    return w.ScalePoolResponse(pool=pool_to_wire(pool))


async def report_queue_depth(
    cp: ControlPlane, request: w.ReportQueueDepthRequest, caller: Caller
) -> w.ReportQueueDepthResponse:
    await trio.lowlevel.checkpoint()
    pool = cp.pool_manager().report_queue_depth(request.pool, request.depth)
    return w.ReportQueueDepthResponse(pool=pool_to_wire(pool))


async def list_remediations(
    cp: ControlPlane, request: w.ListRemediationsRequest, caller: Caller
) -> w.ListRemediationsResponse:
    _check_limit(request.limit)
    episodes = await cp.list_remediations(
        pool=request.pool, node_id=request.node_id, limit=request.limit
    )
    return w.ListRemediationsResponse(
        remediations=tuple(remediation_to_wire(e) for e in episodes),
        controls=controls_to_wire(cp.remediation.switches.controls()),
    )


def _known_pool(cp: ControlPlane, pool: str) -> None:
    if pool:
        check_id("pool", pool)
        cp.remediation.check_pool(pool)


async def pause_remediation(
    cp: ControlPlane, request: w.PauseRemediationRequest, caller: Caller
) -> w.RemediationControlsResponse:
    _known_pool(cp, request.pool)
    controls = await cp.remediation.switches.pause(request.pool, request.reason, caller.actor)
    return w.RemediationControlsResponse(controls=controls_to_wire(controls))


async def resume_remediation(
    cp: ControlPlane, request: w.ResumeRemediationRequest, caller: Caller
) -> w.RemediationControlsResponse:
    _known_pool(cp, request.pool)
    controls = await cp.remediation.switches.resume(request.pool, caller.actor)
    return w.RemediationControlsResponse(controls=controls_to_wire(controls))


async def cancel_remediation(
    cp: ControlPlane, request: w.CancelRemediationRequest, caller: Caller
) -> w.CancelRemediationResponse:
    check_id("episodeId", request.episode_id)
    episode = await cp.remediation.cancel(request.episode_id, request.reason, caller.actor)
    return w.CancelRemediationResponse(remediation=remediation_to_wire(episode))


async def reset_breaker(
    cp: ControlPlane, request: w.ResetBreakerRequest, caller: Caller
) -> w.RemediationControlsResponse:
    check_id("pool", request.pool)
    controls = await cp.remediation.switches.reset_breaker(request.pool, caller.actor)
    return w.RemediationControlsResponse(controls=controls_to_wire(controls))
