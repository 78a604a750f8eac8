"""Provisioning with failover: try candidates in the selector's order, block what fails.

A failure blocks a part of a provider for a while, by the kind of error:

- `CapacityError`: that provider, region, zone and instance type, in that market (spot or
  on-demand), briefly; the next candidate is tried at once.
- `QuotaError`: the provider's region, for longer (quotas are per account and region); the whole
  provider when the quota spans every region (`all_regions`).
- `AuthError`: the whole provider, longest (every call with those credentials fails).
- `TransientError`: the same candidate is tried again with exponential backoff; when every try
  fails, that candidate is blocked briefly and the next one is tried.
- Any other error: that candidate, briefly.

Blocks expire by the caller's clock, so a pool whose every provider failed provisions again once
its blocks run out. Time comes from `trio.current_time()` unless the caller passes a clock.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta

import attrs
from attrs import frozen

from navarch.errors import NavarchError
from navarch.plugins import (
    AuthError,
    Candidate,
    CapacityError,
    Instance,
    Provider,
    ProvisionRequest,
    QuotaError,
    Selector,
    TransientError,
)
from navarch.pools.counters import PoolCounters
from navarch.pools.zone_balance import Spread

# A region, zone, instance type and market (True for spot); None stands for all of them.
_Place = tuple[str | None, str | None, str | None, bool | None]


class BlockKind(enum.Enum):
    CAPACITY = "capacity"
    QUOTA = "quota"
    AUTH = "auth"
    ERROR = "error"


@frozen(kw_only=True)
class FailoverPolicy:
    """How long each kind of failure blocks, and how transient errors are retried (seconds)."""

    capacity_block: float = 300.0
    quota_block: float = 1800.0
    auth_block: float = 3600.0
    # Transient errors that outlast their retries, and errors of no known kind.
    error_block: float = 60.0
    transient_retries: int = 2
    first_backoff: float = 1.0
    max_backoff: float = 30.0


@frozen(kw_only=True)
class Block:
    """A part of a provider that is not tried until `until` (the caller's clock)."""

    provider: str
    # None means every region (or zone, or instance type) of the provider.
    region: str | None
    zone: str | None
    instance_type: str | None
    kind: BlockKind
    reason: str
    since: float
    until: float
    # True blocks only spot machines, False only on-demand ones, None both.
    spot: bool | None = None

    def covers(self, candidate: Candidate) -> bool:
        return (
            self.provider == candidate.provider
            and self.region in (None, candidate.region)
            and self.zone in (None, candidate.zone)
            and self.instance_type in (None, candidate.instance_type)
            and self.spot in (None, candidate.spot)
        )

    def describe(self) -> str:
        market = "spot" if self.spot else ""
        parts = [p for p in (self.region, self.zone, self.instance_type, market) if p]
        scope = f"{self.provider} ({', '.join(parts)})" if parts else self.provider
        return f"{scope}: {self.kind.value}: {self.reason}"

    def until_wall(self, now: float, wall_now: datetime) -> datetime:
        """When the block ends in wall-clock time, for people (GetPool)."""
        return wall_now + timedelta(seconds=max(self.until - now, 0.0))


class BlockList:
    """The blocked parts of providers.

    One list may serve every pool of a control plane, since an account's quota and credentials
    are shared by its pools.
    """

    def __init__(self, policy: FailoverPolicy | None = None) -> None:
        self.policy = policy or FailoverPolicy()
        self._blocks: dict[tuple[str, *_Place], Block] = {}  # by provider and place

    def block(self, candidate: Candidate, error: BaseException, now: float) -> Block:
        """Blocks the part of the candidate's provider that `error` says is unusable."""
        c = candidate
        place: _Place = (c.region, c.zone, c.instance_type, None)
        if isinstance(error, CapacityError):
            kind, seconds = BlockKind.CAPACITY, self.policy.capacity_block
            place = (c.region, c.zone, c.instance_type, c.spot)
        elif isinstance(error, QuotaError):
            kind, seconds = BlockKind.QUOTA, self.policy.quota_block
            place = (None, None, None, None) if error.all_regions else (c.region, None, None, None)
        elif isinstance(error, AuthError):
            kind, seconds, place = BlockKind.AUTH, self.policy.auth_block, (None, None, None, None)
        else:
            kind, seconds = BlockKind.ERROR, self.policy.error_block
        region, zone, instance_type, spot = place
        block = Block(
            provider=c.provider,
            region=region,
            zone=zone,
            instance_type=instance_type,
            kind=kind,
            reason=str(error) or type(error).__name__,
            since=now,
            until=now + seconds,
            spot=spot,
        )
        self._blocks[(c.provider, *place)] = block
        return block

    def blocking(self, candidate: Candidate, now: float) -> Block | None:
        """The block that keeps `candidate` from being tried now, if any."""
        for block in self.active(now):
            if block.covers(candidate):
                return block
        return None

    def active(self, now: float) -> list[Block]:
        """The blocks in force at `now`, soonest to end first; expired ones are forgotten."""
        for key in [k for k, b in self._blocks.items() if b.until <= now]:
            del self._blocks[key]
        return sorted(self._blocks.values(), key=lambda b: (b.until, b.provider))

    def unblock(self, provider: str) -> int:
        """Lifts every block of a provider (its credentials or quota were fixed)."""
        keys = [k for k, b in self._blocks.items() if b.provider == provider]
        for key in keys:
            del self._blocks[key]
        return len(keys)


@frozen(kw_only=True)
class Attempt:
    candidate: Candidate
    # Empty when the attempt provisioned the instance.
    error: str = ""
    block: Block | None = None


@frozen(kw_only=True)
class Provisioned:
    instance: Instance
    candidate: Candidate
    # Every provider call made for this instance, in order, the successful one last.
    attempts: tuple[Attempt, ...]


class ProvisioningFailed(NavarchError):
    def __init__(self, message: str, attempts: Sequence[Attempt], blocks: Sequence[Block]):
        super().__init__(message)
        self.attempts = tuple(attempts)
        self.blocks = tuple(blocks)


async def provision_with_failover(
    candidates: Sequence[Candidate],
    selector: Selector,
    providers: Mapping[str, Provider],
    request: ProvisionRequest,
    blocks: BlockList,
    *,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[object]] | None = None,
    spread: Spread | None = None,
    counters: PoolCounters | None = None,
) -> Provisioned:
    """Provisions one instance, trying unblocked candidates in the selector's order.

    `providers` maps each `[providers.NAME]` table to its provider object. The request's
    instance type, region and zone are set from the candidate that is tried, and each candidate
    gets a request id of its own that its transient retries repeat. With `spread`, the selector
    gets the candidates least-populated place first, and the place being tried stays claimed
    when the call returns (the caller releases it once the instance is recorded). With
    `counters`, every provider call is counted by its outcome. Raises
    ProvisioningFailed, with every attempt and the blocks in force, when no candidate works.
    """
    if clock is None or sleep is None:
        import trio  # here, so that importing navarch.pools does not import trio

        clock = clock or trio.current_time
        sleep = sleep or trio.sleep
    policy = blocks.policy
    usable = [c for c in candidates if blocks.blocking(c, clock()) is None]
    if not usable:
        active = blocks.active(clock())
        listed = "; ".join(b.describe() for b in active) or "the pool has no provider entries"
        raise ProvisioningFailed(f"every provider entry is blocked: {listed}", [], active)
    attempts: list[Attempt] = []
    if spread is not None:
        usable = spread.order(usable)
    for candidate in selector.order(usable, request):
        # An earlier failure in this loop (an auth error) may have blocked this one too.
        if blocks.blocking(candidate, clock()) is not None:
            continue
        provider = providers.get(candidate.provider)
        if provider is None:
            attempts.append(
                Attempt(candidate=candidate, error=f"provider {candidate.provider} is not loaded")
            )
            continue
        attempt_request = attrs.evolve(
            request,
            instance_type=candidate.instance_type,
            region=candidate.region,
            zone=candidate.zone,
            request_id=str(uuid.uuid4()),
            spot=candidate.spot,
        )
        if spread is not None:
            spread.trying(candidate)
        backoff = policy.first_backoff
        for retry in range(policy.transient_retries + 1):
            try:
                instance = await provider.provision(attempt_request)
            except TransientError as exc:
                if counters is not None:
                    counters.provider_failed(candidate.provider, exc)
                if retry < policy.transient_retries:
                    attempts.append(Attempt(candidate=candidate, error=_describe(exc)))
                    await sleep(backoff)
                    backoff = min(backoff * 2, policy.max_backoff)
                    continue
                block = blocks.block(candidate, exc, clock())
                attempts.append(Attempt(candidate=candidate, error=_describe(exc), block=block))
            except Exception as exc:
                if counters is not None:
                    counters.provider_failed(candidate.provider, exc)
                block = blocks.block(candidate, exc, clock())
                attempts.append(Attempt(candidate=candidate, error=_describe(exc), block=block))
            else:
                if counters is not None:
                    counters.provisioned(candidate.provider)
                attempts.append(Attempt(candidate=candidate))
                return Provisioned(instance=instance, candidate=candidate, attempts=tuple(attempts))
            break
    if spread is not None:
        spread.release()
    if not attempts:
        raise ProvisioningFailed("the selector left no candidate to try", [], [])
    last = attempts[-1]
    raise ProvisioningFailed(
        f"all providers failed; last: {last.candidate.describe()}: {last.error}",
        attempts,
        blocks.active(clock()),
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
