"""Conditions: what wait_for waits for and what assert and [[assertions]] check."""

from __future__ import annotations

from attrs import field, frozen

from navarch.sim.scenario import validators

STATUSES = ("active", "cordoned", "draining", "drained", "unhealthy", "terminated")
HEALTHS = ("healthy", "degraded", "unhealthy", "unknown")
REMEDIATION_OUTCOMES = ("completed", "held", "cancelled", "open")
# What a remediation episode sets out to do (navarch.model.RemediationAction's values).
REMEDIATION_ACTIONS = ("replace", "reset_gpu", "reboot")
_COUNT_KEYS = ("equals", "min", "max")
# check -> (required keys, optional keys)
CHECKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "node_status": (("node", "status"), ()),
    "node_health": (("node", "health"), ()),
    "count": ((), ("status", "health", "pool", "provider", *_COUNT_KEYS)),
    "pool_size": (("pool",), _COUNT_KEYS),
    "event": (("kind",), ("node", *_COUNT_KEYS)),
    "remediation": (("outcome",), ("node", "pool", "remedy", *_COUNT_KEYS)),
    "no_lost_instances": ((), ()),
}


@frozen(kw_only=True)
class Condition:
    check: str = field(validator=validators.one_of(tuple(CHECKS)))
    node: str = ""
    status: str | None = field(default=None, validator=validators.one_of(STATUSES))
    health: str | None = field(default=None, validator=validators.one_of(HEALTHS))
    pool: str = ""
    provider: str = ""
    kind: str = ""
    outcome: str | None = field(default=None, validator=validators.one_of(REMEDIATION_OUTCOMES))
    # What the episodes set out to do ("replace", "reset_gpu" or "reboot"); any when unset.
    remedy: str | None = field(default=None, validator=validators.one_of(REMEDIATION_ACTIONS))
    equals: int | None = field(default=None, validator=validators.at_least(0))
    min: int | None = field(default=None, validator=validators.at_least(0))
    max: int | None = field(default=None, validator=validators.at_least(0))

    def describe(self) -> str:
        bounds = self._bounds()
        where = f" in pool {self.pool}" if self.pool else ""
        if self.provider:
            where += f" from provider {self.provider}"
        match self.check:
            case "node_status":
                return f"node {self.node} is {self.status}"
            case "node_health":
                return f"node {self.node} health is {self.health}"
            case "count":
                what = self.status or self.health or "all"
                return f"nodes {what}{where}: {bounds}"
            case "pool_size":
                return f"pool {self.pool} size: {bounds}"
            case "event":
                of = f" for node {self.node}" if self.node else ""
                return f"events {self.kind}{of}: {bounds}"
            case "remediation":
                of = f" of node {self.node}" if self.node else where
                remedy = f" {self.remedy}" if self.remedy else ""
                return f"remediations{remedy} {self.outcome}{of}: {bounds}"
            case _:
                return "no instance was lost"

    def _bounds(self) -> str:
        parts = []
        if self.equals is not None:
            parts.append(f"= {self.equals}")
        if self.min is not None:
            parts.append(f">= {self.min}")
        if self.max is not None:
            parts.append(f"<= {self.max}")
        return ", ".join(parts) or ">= 1"

    def holds(self, value: int) -> bool:
        if self.equals is None and self.min is None and self.max is None:
            return value >= 1
        return (
            (self.equals is None or value == self.equals)
            and (self.min is None or value >= self.min)
            and (self.max is None or value <= self.max)
        )
