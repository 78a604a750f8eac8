"""Admission control: whether an API call may start now.

Past what its process can serve, a control plane does not slow down evenly, it collapses: calls in
flight outlive young garbage collections, which then cost hundreds of milliseconds each and free
almost nothing. `Admission` refuses the excess at once instead, before the body is read or
decoded, with a reply encoded in advance, so that a refusal costs a small part of a call.

A call is refused when:

- `max_in_flight` calls other than long polls are in flight already;
- it is a long poll (`GetNodeCommands`) and `max_long_polls` are in flight already; long polls
  wait most of their time, so they have a bound of their own and do not count in the first;
- it is a registration (`RegisterNode`) and `max_registrations` are in flight already, which paces
  a whole fleet registering again after a restart;
- the call waited longer than `max_queue_delay` to run. Under trio a saturated process queues
  requests in its run queue before the app sees them, so the count in flight stays low while each
  call waits. The wait is measured per call (`navarch.api.load.LoadMeter.waited`): the time since
  the scheduler pass that runs it began, when the network events that woke the pass's tasks were
  collected. The share refused grows with the wait, from none at `max_queue_delay` to all at
  twice it, spread evenly among the calls, so that a pass runs at most about twice the limit's
  worth of calls and what arrives meanwhile waits for the next pass. A server that stamps when a
  request arrived (`scope["extensions"]["navarch.received"]`, in trio time) also has that wait
  checked.

navarch's HTTP server asks `shed` before it parses a request that arrived whole, and writes the
refusal encoded in advance (`Refusal.raw`): a refusal then costs the server a small part of what a
heartbeat costs (measured in docs/performance.md), so the excess is turned away at once, not
served slowly. `refuse` then checks the bounds in flight of the calls let through.

A refusal is HTTP 503 with the Connect code `unavailable` and a `Retry-After` header. Its seconds
double after each `WINDOW` in which calls were refused, up to `MAX_RETRY_AFTER`, and halve after
each `_QUIET` seconds without a refusal: a long overload is turned away by few refusals, each
keeping its client away for a while; the clients add a random part of the hint, so that a storm's
clients come back spread out. A longer cap was measured to keep too many clients away after the
first seconds of an overload, while the server idled. Times come from `trio.current_time()`, so
admission runs unchanged on `MockClock`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import trio
from attrs import frozen

from navarch.api.codec import ApiError
from navarch.api.load import LoadMeter
from navarch.config import ServerConfig

MAX_RETRY_AFTER = 10
# Seconds over which refusals are counted for `Retry-After`.
WINDOW = 1.0
# Seconds without a refusal that halve the `Retry-After`.
_QUIET = 2.0

CALLS, LONG_POLLS, REGISTRATIONS = "calls", "long_polls", "registrations"
_KINDS = {"GetNodeCommands": LONG_POLLS, "RegisterNode": REGISTRATIONS}


@frozen
class Refusal:
    """One refusal, built once and sent as it is: its two ASGI messages, and the whole HTTP/1.1
    answer for a server that refuses before parsing the request (`shed`)."""

    start: Mapping[str, Any]
    body: Mapping[str, Any]
    raw: bytes


class Admission:
    """Counts the calls in flight and decides, per call, whether it starts or is refused.

    `refuse` is called when a call arrives and `leave` when a call it admitted ends; a server
    that refuses before parsing asks `shed` first. `refused` counts the refusals by method name,
    `in_flight` the calls by kind (`calls` includes the registrations).
    """

    def __init__(
        self,
        *,
        max_in_flight: int = 4000,
        max_long_polls: int = 20_000,
        max_registrations: int = 50,
        max_queue_delay: float = 0.25,
        meter: LoadMeter | None = None,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.max_long_polls = max_long_polls
        self.max_registrations = max_registrations
        self.max_queue_delay = max_queue_delay
        self.meter = meter or LoadMeter()
        self.in_flight = {CALLS: 0, LONG_POLLS: 0, REGISTRATIONS: 0}
        self.refused: dict[str, int] = {}
        self._window_end = -math.inf
        # Refusals owed for waits past the limit: one is made each time this reaches 1.
        self._owed = 0.0
        self._replies: dict[tuple[str, int], Refusal] = {}
        # The Retry-After of refusals now, in seconds: see `_roll`.
        self._hint = 1

    @property
    def delay(self) -> float:
        """The event loop's lag as last measured, in seconds."""
        return self.meter.delay

    @classmethod
    def from_config(cls, server: ServerConfig) -> Admission:
        return cls(
            max_in_flight=server.max_in_flight,
            max_long_polls=server.max_long_polls,
            max_registrations=server.max_registrations,
            max_queue_delay=server.max_queue_delay.total_seconds(),
        )

    def refuse(self, method: str, extensions: Mapping[str, Any] | None = None) -> Refusal | None:
        """None when `method` may start now (it is then counted in flight until `leave`), else
        the reply that refuses it. A call that `shed` let through (`navarch.shed` set in
        `extensions`) is not checked for its wait again."""
        kind = _KINDS.get(method, CALLS)
        reason = self._full(kind)
        if not reason and kind != LONG_POLLS:
            extensions = extensions or {}
            if not extensions.get("navarch.shed") and self._late(extensions):
                reason = "delay"
        if not reason:
            self.in_flight[kind] += 1
            if kind == REGISTRATIONS:
                self.in_flight[CALLS] += 1
            return None
        return self._refusal(method, reason)

    def shed(self, method: str) -> Refusal | None:
        """The refusal of a call to `method` that waited too long to run, or None: what a server
        asks before it parses the request. A call let through here then goes to `refuse` with
        `navarch.shed` set, which checks the bounds in flight."""
        if _KINDS.get(method) == LONG_POLLS or not self._late({}):
            return None
        return self._refusal(method, "delay")

    def _late(self, extensions: Mapping[str, Any]) -> bool:
        """Whether the call running now is one refused for its wait: it waited longer than
        `max_queue_delay` to run, since the scheduler pass it runs in began
        (`LoadMeter.waited`) or, for a server that stamps when a request arrived
        (`navarch.received`, in trio time), since then. The share refused grows with the wait,
        from none at `max_queue_delay` to all at twice it, spread evenly among the calls."""
        waited = self.meter.waited()
        received = extensions.get("navarch.received")
        if received is not None:
            waited = max(waited, trio.current_time() - received)
        if waited <= self.max_queue_delay:
            return False
        self._owed += min(1.0, waited / self.max_queue_delay - 1)
        if self._owed < 1:
            return False
        self._owed -= 1
        return True

    def _refusal(self, method: str, reason: str) -> Refusal:
        now = trio.current_time()
        if now >= self._window_end:
            self._roll(now)
        retry_after = self._hint
        self.refused[method] = self.refused.get(method, 0) + 1
        reply = self._replies.get((reason, retry_after))
        if reply is None:
            reply = self._replies[reason, retry_after] = self._reply(reason, retry_after)
        return reply

    def _full(self, kind: str) -> str:
        """The bound that `kind` has reached, or "" when it may start."""
        in_flight = self.in_flight
        if kind == LONG_POLLS:
            return LONG_POLLS if in_flight[LONG_POLLS] >= self.max_long_polls else ""
        if in_flight[CALLS] >= self.max_in_flight:
            return CALLS
        if kind == REGISTRATIONS and in_flight[REGISTRATIONS] >= self.max_registrations:
            return REGISTRATIONS
        return ""

    def leave(self, method: str) -> None:
        """A call that `refuse` admitted has ended."""
        kind = _KINDS.get(method, CALLS)
        self.in_flight[kind] -= 1
        if kind == REGISTRATIONS:
            self.in_flight[CALLS] -= 1

    async def watch(self) -> None:
        """Measures the event loop's load for as long as it runs (`LoadMeter.watch`)."""
        await self.meter.watch()

    def _roll(self, now: float) -> None:
        """Starts a new window of `WINDOW` seconds at the first refusal past the last window. The
        Retry-After doubles when the last window (which had refusals) ended just now, up to
        `MAX_RETRY_AFTER`, and halves for each `_QUIET` seconds since then without a refusal."""
        gap = now - self._window_end
        if gap < WINDOW:
            self._hint = min(MAX_RETRY_AFTER, self._hint * 2)
        else:
            self._hint = max(1, self._hint >> int(min(gap, 8 * _QUIET) / _QUIET))
        self._window_end = now + WINDOW

    def _reply(self, reason: str, retry_after: int) -> Refusal:
        why = {
            CALLS: f"{self.max_in_flight} calls are in flight, the limit (server.max_in_flight)",
            LONG_POLLS: (
                f"{self.max_long_polls} long polls are open, the limit (server.max_long_polls)"
            ),
            REGISTRATIONS: (
                f"{self.max_registrations} registrations are in flight, the limit "
                "(server.max_registrations)"
            ),
            "delay": f"calls wait over {self.max_queue_delay:g}s to run (server.max_queue_delay)",
        }[reason]
        message = f"the control plane is overloaded: {why}; retry in {retry_after} s"
        body = ApiError("unavailable", message).to_json()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"retry-after", b"%d" % retry_after),
        ]
        return Refusal(
            start={"type": "http.response.start", "status": 503, "headers": headers},
            body={"type": "http.response.body", "body": body},
            raw=b"HTTP/1.1 503 Service Unavailable\r\n"
            + b"".join(b"%s: %s\r\n" % header for header in headers)
            + b"\r\n"
            + body,
        )
