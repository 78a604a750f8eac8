"""Pools: groups of identical nodes that navarch sizes and heals.

The pure parts of a pool's scaling round live here: what an autoscaler sees (`scaling`), the
rules the core applies to every recommendation (`behavior`), which nodes leave on scale-down
(`victims`), where a new node can come from (`candidates`, `instance_types`) and how
provisioning fails over between providers (`failover`).
"""

from navarch.pools.behavior import Decision, ScalingBehavior, ask
from navarch.pools.candidates import Candidate, candidates_for, fetch_catalogs
from navarch.pools.failover import (
    Attempt,
    Block,
    BlockKind,
    BlockList,
    FailoverPolicy,
    Provisioned,
    ProvisioningFailed,
    provision_with_failover,
)
from navarch.pools.instance_types import INSTANCE_TYPES, resolve_instance_type
from navarch.pools.nodes import DO_NOT_DISTURB, scaling_state
from navarch.pools.scaling import Recommendation, ScalingState
from navarch.pools.victims import ScaleDown, choose_victims

__all__ = [
    "DO_NOT_DISTURB",
    "INSTANCE_TYPES",
    "Attempt",
    "Block",
    "BlockKind",
    "BlockList",
    "Candidate",
    "Decision",
    "FailoverPolicy",
    "Provisioned",
    "ProvisioningFailed",
    "Recommendation",
    "ScaleDown",
    "ScalingBehavior",
    "ScalingState",
    "ask",
    "candidates_for",
    "choose_victims",
    "fetch_catalogs",
    "provision_with_failover",
    "resolve_instance_type",
    "scaling_state",
]
