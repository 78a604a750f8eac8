"""Health policy: CEL rules that judge the daemons' health events, and the node verdict.

The control plane builds one judge from its configuration and asks it about every report:

    policy = load_policy(config.health.policy)     # "" means the built-in default policy
    judge = HealthJudge(policy, config.health.window)
    verdict = judge.evaluate(node_id, request.events, trio.current_time())
    verdict.health_status, verdict.action, verdict.rule, verdict.errors
"""

from navarch.health.judge import HISTORY_LIMIT, HealthJudge, Match, RuleError, Verdict
from navarch.health.policy import (
    Action,
    Policy,
    Result,
    Rule,
    default_policy,
    load_policy,
    parse_policy,
)

__all__ = [
    "HISTORY_LIMIT",
    "Action",
    "HealthJudge",
    "Match",
    "Policy",
    "Result",
    "Rule",
    "RuleError",
    "Verdict",
    "default_policy",
    "load_policy",
    "parse_policy",
]
