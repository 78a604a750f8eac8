"""The chaos engine: random failures, cascades, correlated failures, outages and recoveries.

Every choice comes from one `random.Random` seeded by the run, and trio's scheduler is seeded
too, so a seed replays the same failures at the same simulated times on the same nodes.

- Random failures are a Poisson process: `failure_rate` per 1,000 running nodes per minute, each
  on a node chosen uniformly, of a type chosen by `failure_types` weights (an XID by `xids`).
- After a failure, a cascade spreads it with `cascade.probability` to other nodes of the same
  node, rack or zone, after a delay, up to `max_depth` steps.
- A correlated rule answers a failure of one type with a failure of another type.
- An outage fails every node of a zone, region or provider at its start and recovers them at its
  end; a provider outage also refuses to provision while it lasts.
- A recoverable failure recovers with `recovery.probability` after about `recovery.mean`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import trio

from navarch.sim.fleet import Failure, SimNode
from navarch.sim.scenario import NODE_FAILURES, Chaos, Correlated, Outage
from navarch.telemetry.xid_catalog import lookup

# Without `xids`, chaos picks evenly from these codes: the ones fleets see most.
DEFAULT_XIDS = (13, 31, 32, 43, 45, 48, 63, 64, 74, 79, 92, 94, 95)
# XIDs whose immediate action ends at the GPU or the application: they can recover in place.
_RECOVERABLE_ACTIONS = {"IGNORE", "RESTART_APP", "RESET_GPU", "CHECK_APP/CUDA", "UPDATE_SWFW"}
_RECOVERABLE_TYPES = {
    "thermal",
    "nvlink_down",
    "network_partition",
    "heartbeat_stop",
    "boot_failure",
}
# How often the random-failure process looks at the fleet's size again.
_RESCAN = 10.0


class Injector(Protocol):
    def running(self) -> list[SimNode]: ...

    def inject(
        self,
        node: SimNode,
        kind: str,
        *,
        source: str,
        xid: int | None = None,
        gpu: int | None = None,
        cause: int | None = None,
    ) -> Failure | None: ...

    def recover(self, node: SimNode, failures: Sequence[Failure]) -> None: ...

    def set_provider_down(self, provider: str, reason: str) -> None: ...

    def outage(self, record: dict[str, Any]) -> None: ...


def recoverable(failure: Failure) -> bool:
    if failure.type == "xid":
        entry = lookup(failure.xid or 0)
        return entry is not None and entry.immediate in _RECOVERABLE_ACTIONS
    return failure.type in _RECOVERABLE_TYPES


def _pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    names = sorted(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


class ChaosEngine:
    def __init__(self, chaos: Chaos, rng: random.Random, injector: Injector, start: float) -> None:
        self.chaos = chaos
        self.rng = rng
        self.injector = injector
        # trio time the run started at; chaos times are relative to it.
        self.start = start
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for outage in self.chaos.outages:
                nursery.start_soon(self._outage, outage)
            if self.chaos.failure_rate > 0:
                nursery.start_soon(self._random_failures)

    async def _random_failures(self) -> None:
        chaos = self.chaos
        await trio.sleep_until(self.start + chaos.start.total_seconds())
        stop = math.inf if chaos.stop is None else self.start + chaos.stop.total_seconds()
        per_node_per_second = chaos.failure_rate / 1000 / 60
        while trio.current_time() < stop:
            nodes = self.injector.running()
            if not nodes:
                await trio.sleep(_RESCAN)
                continue
            wait = self.rng.expovariate(per_node_per_second * len(nodes))
            if wait > _RESCAN:
                # The fleet may have grown or shrunk; the process is memoryless, so draw again.
                await trio.sleep(_RESCAN)
                continue
            await trio.sleep(wait)
            if trio.current_time() >= stop:
                return
            nodes = self.injector.running()
            if not nodes:
                continue
            node = nodes[self.rng.randrange(len(nodes))]
            kind = _pick(self.rng, chaos.failure_types)
            self._fail(node, kind, source="chaos", depth=0)

    def _xid(self) -> int:
        if self.chaos.xids:
            return int(_pick(self.rng, self.chaos.xids))
        return DEFAULT_XIDS[self.rng.randrange(len(DEFAULT_XIDS))]

    def _fail(
        self,
        node: SimNode,
        kind: str,
        *,
        source: str,
        depth: int,
        xid: int | None = None,
        cause: int | None = None,
    ) -> Failure | None:
        if kind == "xid" and xid is None:
            xid = self._xid()
        gpu = self.rng.randrange(node.spec.gpu_count) if kind not in NODE_FAILURES else None
        failure = self.injector.inject(node, kind, source=source, xid=xid, gpu=gpu, cause=cause)
        if failure is None:
            return None
        self._maybe_recover(node, failure)
        if source != "outage":
            self._maybe_cascade(node, failure, depth)
            for rule in self.chaos.correlated:
                self._maybe_correlate(node, failure, rule)
        return failure

    def _maybe_recover(self, node: SimNode, failure: Failure) -> None:
        recovery = self.chaos.recovery
        if failure.source == "outage" or not recoverable(failure):
            return
        if recovery.probability <= 0 or self.rng.random() >= recovery.probability:
            return
        mean = recovery.mean.total_seconds()
        stddev = recovery.stddev.total_seconds() if recovery.stddev is not None else mean / 4
        delay = max(recovery.minimum.total_seconds(), self.rng.gauss(mean, stddev))
        self._later(delay, self._recover, node, failure)

    def _recover(self, node: SimNode, failure: Failure) -> None:
        if failure in node.failures:
            self.injector.recover(node, [failure])

    def _neighbours(self, node: SimNode, scope: str) -> list[SimNode]:
        if scope == "node":
            return [node]
        key = {"rack": "rack", "zone": "zone"}.get(scope)
        if key is not None and not getattr(node.spec, key):
            return []  # a machine with no rack listed shares it with no one
        return [
            n
            for n in self.injector.running()
            if n is not node and (key is None or getattr(n.spec, key) == getattr(node.spec, key))
        ]

    def _maybe_cascade(self, node: SimNode, failure: Failure, depth: int) -> None:
        cascade = self.chaos.cascade
        if cascade.probability <= 0 or depth >= cascade.max_depth:
            return
        if self.rng.random() >= cascade.probability:
            return
        candidates = self._neighbours(node, cascade.scope)
        if not candidates:
            return
        most = max(1, math.floor(len(candidates) * cascade.max_affected_percent / 100))
        chosen = self.rng.sample(candidates, self.rng.randint(1, min(most, len(candidates))))
        low = cascade.min_delay.total_seconds()
        high = max(low, cascade.max_delay.total_seconds())
        for target in chosen:
            delay = self.rng.uniform(low, high)
            self._later(
                delay,
                self._fail,
                target,
                failure.type,
                source="cascade",
                depth=depth + 1,
                xid=failure.xid,
                cause=failure.id,
            )

    def _maybe_correlate(self, node: SimNode, failure: Failure, rule: Correlated) -> None:
        if failure.type != rule.trigger:
            return
        if rule.trigger == "xid" and rule.trigger_xids and failure.xid not in rule.trigger_xids:
            return
        if self.rng.random() >= rule.probability:
            return
        candidates = self._neighbours(node, rule.scope)
        if not candidates:
            return
        target = candidates[self.rng.randrange(len(candidates))]
        xid = rule.response_xid if rule.response == "xid" else None
        self._later(
            rule.delay.total_seconds(),
            self._fail,
            target,
            rule.response,
            source="correlated",
            depth=self.chaos.cascade.max_depth,  # a correlated failure does not cascade
            xid=xid,
            cause=failure.id,
        )

    def _later(self, delay: float, fn: Any, *args: Any, **kwargs: Any) -> None:
        assert self._nursery is not None

        async def after() -> None:
            await trio.sleep(delay)
            fn(*args, **kwargs)

        self._nursery.start_soon(after)

    async def _outage(self, outage: Outage) -> None:
        await trio.sleep_until(self.start + outage.start.total_seconds())
        attribute = {"zone": "zone", "region": "region", "provider": "provider"}[outage.scope]
        hit = [n for n in self.injector.running() if getattr(n.spec, attribute) == outage.target]
        if outage.scope == "provider" and outage.provisioning:
            self.injector.set_provider_down(outage.target, f"outage {outage.name} (simulated)")
        failures = []
        for node in hit:
            xid = outage.xid if outage.failure == "xid" else None
            failure = self.injector.inject(node, outage.failure, source="outage", xid=xid)
            if failure is not None:
                failures.append((node, failure))
        self.injector.outage(
            {
                "name": outage.name,
                "scope": outage.scope,
                "target": outage.target,
                "start_s": outage.start.total_seconds(),
                "duration_s": outage.duration.total_seconds(),
                "nodes": len(hit),
            }
        )
        await trio.sleep(outage.duration.total_seconds())
        if outage.scope == "provider" and outage.provisioning:
            self.injector.set_provider_down(outage.target, "")
        for node, failure in failures:
            if failure in node.failures:
                self.injector.recover(node, [failure])
