"""Lambda's `Instance` objects as navarch's `Instance`, and navarch's labels as Lambda's tags."""

from __future__ import annotations

import hashlib

from navarch.plugins import POOL_LABEL, Instance, InstanceState, ProviderError, ProvisionRequest
from navarch_lambda.reply import Reply

# The tag that carries a launch's request id, so that people and tools can match a machine to
# the provisioning that made it.
REQUEST_LABEL = "navarch.io/request-id"

STATES = {
    "booting": InstanceState.PROVISIONING,
    "active": InstanceState.RUNNING,
    # Lambda's own health view; navarch judges the machine by what its daemon reports.
    "unhealthy": InstanceState.RUNNING,
    "preempted": InstanceState.PREEMPTED,
    "terminating": InstanceState.TERMINATING,
    "terminated": InstanceState.TERMINATED,
}

# Lambda refuses instance names longer than this.
_NAME_LIMIT = 64


def instance_name(request: ProvisionRequest) -> str:
    """The Lambda name of the machine that `request` asks for: the pool's name and the request
    id, so that a retry finds the machine of an earlier try by its name."""
    prefix = request.name or "navarch"
    if not request.request_id:
        return prefix[:_NAME_LIMIT]
    suffix = request.request_id
    if len(suffix) > 40:
        suffix = hashlib.sha256(suffix.encode()).hexdigest()[:32]
    return f"{prefix[: _NAME_LIMIT - len(suffix) - 1]}-{suffix}"


def tags(request: ProvisionRequest) -> list[dict[str, str]]:
    labels = dict(request.labels)
    if request.request_id:
        labels[REQUEST_LABEL] = request.request_id
    return [{"key": key, "value": value} for key, value in labels.items()]


def labels(instance: Reply) -> dict[str, str]:
    """An instance's tags as labels; Lambda leaves `tags` out of instances that have none."""
    found = instance.optional("tags")
    if found is None:
        return {}
    return {tag["key"].text(): tag["value"].text() for tag in found}


def status(instance: Reply) -> str:
    found = instance["status"]
    text = found.text()
    if text not in STATES:
        raise ProviderError(
            f"lambda: {found.call}: {found.path}: unknown status {text[:40]!r}, expected one of "
            + ", ".join(STATES)
        )
    return text


def instance(found: Reply, provider: str) -> Instance:
    """The navarch instance of one Lambda `Instance` object."""
    tagged = labels(found)
    return Instance(
        instance_id=found["id"].text(),
        provider=provider,
        instance_type=found["instance_type"]["name"].text(),
        state=STATES[status(found)],
        region=found["region"]["name"].text(),
        pool=tagged.get(POOL_LABEL, ""),
        labels=tagged,
        address=address(found),
    )


def address(found: Reply) -> str:
    """Where navarch reaches an instance: its public IP, else its private one; empty while
    Lambda reports neither (both are optional fields of an instance)."""
    for key in ("ip", "private_ip"):
        ip = found.optional(key)
        if ip is not None and ip.text():
            return ip.text()
    return ""


def name(found: Reply) -> str:
    """An instance's name; Lambda gives null for an instance launched without one."""
    named = found.optional("name")
    return "" if named is None else named.text()


def gone(instance: Reply) -> bool:
    """Whether the instance is terminated or terminating, which `list()` leaves out."""
    return status(instance) in ("terminating", "terminated")
