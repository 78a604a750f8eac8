"""Whether a scenario's conditions hold, and what was seen when one does not.

`wait_for`, `assert` and the final assertions all ask `evaluate`, which reads the control plane's
own state (its nodes, pools and episodes), the recorder's event counts, and for
`no_lost_instances` what every simulated provider lists.
"""

from __future__ import annotations

from navarch.controlplane import ControlPlane
from navarch.model import LIVE, HealthStatus, Node, NodeStatus, RemediationStep
from navarch.plugins import InstanceState
from navarch.sim.fleet import Fleet
from navarch.sim.report import Recorder
from navarch.sim.scenario import Condition

_OUTCOME = {
    "completed": (RemediationStep.DONE,),
    "held": (RemediationStep.HELD,),
    "cancelled": (RemediationStep.CANCELLED,),
    "open": (
        RemediationStep.PENDING,
        RemediationStep.CORDON,
        RemediationStep.DRAIN,
        RemediationStep.TERMINATE,
    ),
}


async def evaluate(
    condition: Condition, service: ControlPlane, fleet: Fleet, recorder: Recorder
) -> tuple[bool, str]:
    """Whether `condition` holds now, and what was seen (for messages)."""
    nodes = {n.node_id: n for n in service.all_nodes()}
    match condition.check:
        case "node_status" | "node_health":
            node = nodes.get(condition.node)
            if node is None:
                return False, f"node {condition.node} has not registered"
            if condition.check == "node_status":
                held = node.status is NodeStatus(condition.status)
                return held, f"node {node.node_id} is {node.status.value}"
            held = node.health is HealthStatus(condition.health)
            return held, f"node {node.node_id} health is {node.health.value}"
        case "count":
            # Without a status, terminated nodes are history, not fleet.
            found = [
                n
                for n in nodes.values()
                if (not condition.pool or n.pool == condition.pool)
                and (not condition.provider or n.provider == condition.provider)
                and (
                    n.status is NodeStatus(condition.status)
                    if condition.status
                    else n.status is not NodeStatus.TERMINATED
                )
                and (not condition.health or n.health is HealthStatus(condition.health))
            ]
            return condition.holds(len(found)), f"counted {len(found)}"
        case "pool_size":
            size = len(service.pool_manager().members(condition.pool))
            return condition.holds(size), f"pool {condition.pool} has {size} nodes"
        case "event":
            if condition.node:
                count = recorder.node_event_counts[(condition.kind, condition.node)]
            else:
                count = recorder.event_counts[condition.kind]
            return condition.holds(count), f"saw {count} {condition.kind} events"
        case "remediation":
            episodes = await service.list_remediations(
                pool=condition.pool, node_id=condition.node, limit=1_000_000
            )
            assert condition.outcome is not None
            steps = _OUTCOME[condition.outcome]
            if condition.remedy:
                episodes = [e for e in episodes if e.action.value == condition.remedy]
            count = sum(1 for e in episodes if e.step in steps)
            states = sorted({e.step.value for e in episodes})
            return condition.holds(count), (
                f"{count} {condition.outcome} of {len(episodes)} episodes"
                + (f" ({', '.join(states)})" if states else "")
            )
        case _:
            return await _no_lost_instances(service, fleet, nodes)


async def _no_lost_instances(
    service: ControlPlane, fleet: Fleet, nodes: dict[str, Node]
) -> tuple[bool, str]:
    """No instance record lost, and no machine running at a provider that navarch forgot."""
    problems = []
    records = list(service.pools.instances.records.values()) if service.pools else []
    for record in records:
        if record.reason.startswith("lost"):
            problems.append(f"instance {record.instance_id} was lost")
    known = {r.instance_id for r in records if r.status in LIVE}
    for name, provider in sorted(fleet.providers.items()):
        for instance in await provider.list():
            if instance.state is not InstanceState.RUNNING:
                # Still provisioning: the pool records it when the provider's call returns.
                continue
            node = nodes.get(instance.instance_id)
            alive = node is not None and node.status is not NodeStatus.TERMINATED
            if instance.instance_id not in known and not alive:
                problems.append(f"{name} instance {instance.instance_id} runs with no node")
    if problems:
        shown = "; ".join(problems[:5])
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        return False, shown + more
    return True, "every instance is accounted for"
