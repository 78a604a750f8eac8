"""EC2's instance descriptions as navarch's `Instance`s."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from navarch.plugins import POOL_LABEL, Instance, InstanceState

# The tag that carries a request's id: the instance of a retried request is found by it.
REQUEST_ID_TAG = "navarch.io/request-id"

# Tags navarch sets for itself, which are not the request's labels.
_OWN_TAGS = frozenset({"Name", REQUEST_ID_TAG})

_WANTED = {"pending": InstanceState.PROVISIONING, "running": InstanceState.RUNNING}
_ENDING = frozenset({"shutting-down", "terminated"})
_STOPPED = frozenset({"stopping", "stopped"})


def taken_back(description: Mapping[str, Any]) -> bool:
    """Whether EC2 stopped or ended the instance on its own: a spot interruption, or another
    `Server.` reason (a failed host, a scheduled stop), rather than a person or the OS."""
    code = str((description.get("StateReason") or {}).get("Code") or "")
    return code.startswith("Server.")


def state_of(description: Mapping[str, Any]) -> InstanceState | None:
    """navarch's state of an instance, or None for one that is ending as navarch asked."""
    name = str((description.get("State") or {}).get("Name") or "")
    if name in _WANTED:
        return _WANTED[name]
    if taken_back(description):
        return InstanceState.PREEMPTED
    if name in _ENDING:
        return None
    if name in _STOPPED:
        # Stopped by a person or by its own OS: it still exists and costs its volumes, but runs
        # no node, so the pool replaces it and terminates it.
        return InstanceState.FAILED
    return None


def tags_of(description: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(tag.get("Key")): str(tag.get("Value") or "")
        for tag in description.get("Tags") or []
        if tag.get("Key")
    }


def instance_of(description: Mapping[str, Any], region: str, state: InstanceState) -> Instance:
    tags = tags_of(description)
    launched = description.get("LaunchTime")
    return Instance(
        instance_id=str(description.get("InstanceId") or ""),
        provider="aws",
        instance_type=str(description.get("InstanceType") or ""),
        state=state,
        region=region,
        zone=str((description.get("Placement") or {}).get("AvailabilityZone") or ""),
        pool=tags.get(POOL_LABEL, ""),
        labels={key: value for key, value in tags.items() if key not in _OWN_TAGS},
        created_at=launched if isinstance(launched, datetime) else None,
        spot=description.get("InstanceLifecycle") == "spot",
        # The public IP, else the private one. RunInstances' reply often lacks the public IP:
        # EC2 assigns it while the instance is pending, and DescribeInstances reports it then.
        address=str(
            description.get("PublicIpAddress") or description.get("PrivateIpAddress") or ""
        ),
    )
