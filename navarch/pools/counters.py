"""What the pools count for `/metrics`: scaling decisions by reason, and provider calls by outcome.

The pool manager owns one `PoolCounters`; the scaling loop, the provisioner and failover count
into it where things happen, and the metrics renderer (`navarch.api.metrics`) reads it. Every
label value comes from a closed set, so a scrape has a bounded number of series: a decision's
reason is the rule of `behavior` (or `scale_to_zero`) that set the target, and a provider error's
kind is the provider error class it is (`other` for any other exception).
"""

from __future__ import annotations

import collections

from navarch.plugins import AuthError, CapacityError, QuotaError, TransientError
from navarch.pools.behavior import Decision

# The rules that can set a round's target, as the reasons of `Decision` word them: a fragment of
# the reason text, and the label it counts under. The last reason that matches is the binding one.
_RULES = (
    ("no autoscaler", "no_autoscaler"),
    ("manual target", "manual_target"),
    ("clamped to max_nodes", "max_nodes"),
    ("raised to min_nodes", "min_nodes"),
    ("by the scale-down window", "scale_down_window"),
    ("by the scale-up window", "scale_up_window"),
    ("after a scale-up", "scale_down_delay"),
    ("by the scale-up rate", "scale_up_rate"),
    ("by the scale-down rate", "scale_down_rate"),
    ("healthy nodes (", "min_healthy"),
    (": the last node ", "idle_timeout"),
)
# Every reason label: the rules, the autoscaler's own answer, and any wording not known here.
DECISION_REASONS = ("autoscaler", *(label for _, label in _RULES), "other")
DIRECTIONS = ("up", "down", "hold")
ERROR_KINDS = ("capacity", "quota", "auth", "transient", "other")


def decision_reason(decision: Decision) -> str:
    """The rule that set the decision's target; `autoscaler` when its answer stood."""
    reason = "autoscaler" if decision.recommended is not None else "other"
    for text in decision.reasons:
        for fragment, label in _RULES:
            if fragment in text:
                reason = label
    return reason


def error_kind(error: BaseException) -> str:
    if isinstance(error, CapacityError):
        return "capacity"
    if isinstance(error, QuotaError):
        return "quota"
    if isinstance(error, AuthError):
        return "auth"
    if isinstance(error, TransientError):
        return "transient"
    return "other"


class PoolCounters:
    """Counts since the control plane started; plain dict updates, nothing per heartbeat."""

    def __init__(self) -> None:
        # (pool, direction, reason) -> scaling rounds
        self.decisions: collections.Counter[tuple[str, str, str]] = collections.Counter()
        # (provider, kind) -> failed provision calls, every retry included
        self.provider_errors: collections.Counter[tuple[str, str]] = collections.Counter()
        # provider -> provision calls that gave an instance
        self.provisions: collections.Counter[str] = collections.Counter()
        # pool -> instances the pool asked for and got from no provider
        self.provision_failures: collections.Counter[str] = collections.Counter()

    def decided(self, decision: Decision) -> None:
        change = decision.change
        direction = "up" if change > 0 else "down" if change < 0 else "hold"
        self.decisions[decision.pool, direction, decision_reason(decision)] += 1

    def provider_failed(self, provider: str, error: BaseException) -> None:
        self.provider_errors[provider, error_kind(error)] += 1

    def provisioned(self, provider: str) -> None:
        self.provisions[provider] += 1

    def pool_failed(self, pool: str) -> None:
        self.provision_failures[pool] += 1
