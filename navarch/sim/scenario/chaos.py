"""Chaos: random failures, cascades, correlated failures, outages and recovery, as configured."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import attrs
from attrs import field, frozen

from navarch.errors import ConfigValueError
from navarch.sim.scenario import validators
from navarch.sim.scenario.events import FAILURES

SCOPES = ("node", "rack", "zone", "region", "provider", "fleet")
OUTAGE_SCOPES = ("zone", "region", "provider")


@frozen(kw_only=True)
class Cascade:
    probability: float = field(default=0.0, validator=validators.fraction)
    max_depth: int = field(default=2, validator=validators.at_least(1))
    min_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(seconds=60)
    scope: str = field(default="rack", validator=validators.one_of(("node", "rack", "zone")))
    # At most this share of the scope's other nodes fail in one step of a cascade.
    max_affected_percent: float = field(default=10.0, validator=validators.at_least(0))


@frozen(kw_only=True)
class Correlated:
    """When a failure of type `trigger` happens, `response` follows with `probability`."""

    trigger: str = field(validator=validators.one_of(FAILURES))
    response: str = field(validator=validators.one_of(FAILURES))
    probability: float = field(default=1.0, validator=validators.fraction)
    delay: timedelta = timedelta(seconds=10)
    scope: str = field(
        default="node", validator=validators.one_of(("node", "rack", "zone", "fleet"))
    )
    # For xid triggers: only these codes trigger (empty: any); the response's XID code.
    trigger_xids: tuple[int, ...] = ()
    response_xid: int = 79


@frozen(kw_only=True)
class Outage:
    """Every node in a zone, region or provider fails at `start` and recovers `duration` later."""

    name: str
    start: timedelta
    duration: timedelta
    scope: str = field(validator=validators.one_of(OUTAGE_SCOPES))
    target: str
    failure: str = field(default="network_partition", validator=validators.one_of(FAILURES))
    xid: int = 79
    # A provider outage also refuses to provision while it lasts.
    provisioning: bool = True


@frozen(kw_only=True)
class Recovery:
    """Failures that can recover do so with `probability`, after about `mean`."""

    probability: float = field(default=0.0, validator=validators.fraction)
    mean: timedelta = timedelta(minutes=5)
    stddev: timedelta | None = None
    minimum: timedelta = timedelta(seconds=10)


@frozen(kw_only=True)
class Chaos:
    # Failures per 1,000 nodes per minute (a Poisson process over the running nodes).
    failure_rate: float = field(default=0.0, validator=validators.at_least(0))
    start: timedelta = timedelta(0)
    stop: timedelta | None = None
    failure_types: dict[str, float] = field(
        factory=lambda: {"xid": 1.0}, validator=validators.weights
    )
    # XID code (as a string key, as TOML requires) -> weight.
    xids: dict[str, float] = field(factory=dict, validator=validators.weights)
    cascade: Cascade = Cascade()
    correlated: tuple[Correlated, ...] = ()
    outages: tuple[Outage, ...] = ()
    recovery: Recovery = Recovery()

    @failure_types.validator
    def _types(self, _attribute: attrs.Attribute[Any], value: Mapping[str, float]) -> None:
        for name in value:
            if name not in FAILURES:
                raise ConfigValueError(
                    f"failure_types.{name}: unknown failure type (expected one of "
                    f"{', '.join(FAILURES)})"
                )

    @xids.validator
    def _codes(self, _attribute: attrs.Attribute[Any], value: Mapping[str, float]) -> None:
        for code in value:
            if not code.isdigit() or not 0 < int(code) < 1000:
                raise ConfigValueError(f"xids.{code}: expected an XID code from 1 to 999")
