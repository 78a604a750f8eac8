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
- the process is saturated: calls wait longer than `max_queue_delay` to run. Under trio a
  saturated process queues requests in its run queue before the app sees them, so the count in
  flight stays low while each call waits. `watch` measures the wait as the event loop's lag (how
  late a short sleep wakes, late on two ticks in a row, so that one slow step sheds nothing); a
  server that stamps when a request arrived (`scope["extensions"]["navarch.received"]`, in trio
  time) also has each request's own age checked. The share refused grows with the wait past the
  limit, from none at `max_queue_delay` to one call in two at 1.5 times it, and the refused calls
  are spread evenly among the admitted ones. Over HTTP a refusal still costs the server most of
  what a heartbeat costs (reading the request and writing the answer), so refusing more would
  lower what it serves without shortening the wait; the clients' back-off on `Retry-After` is
  what lowers the load.

A refusal is HTTP 503 with the Connect code `unavailable` and a `Retry-After` header. Its seconds
grow while the overload lasts: one more after each second in which calls were refused, up to
`MAX_RETRY_AFTER`, and one less after each second without a refusal. Over HTTP a refusal costs the
server most of what a call costs, so the excess must be turned away by few refusals, each keeping
its client away for long; the clients add a random part of the hint, so that a storm's clients
come back spread out. Times come from
`trio.current_time()`, so admission runs unchanged on `MockClock`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import trio
from attrs import frozen

from navarch.api.codec import ApiError
from navarch.config import ServerConfig

MAX_RETRY_AFTER = 30
# How often `watch` measures the event loop's lag, in seconds.
TICK = 0.05
# Seconds over which refusals are counted for `Retry-After`.
_WINDOW = 1.0
# The largest share of calls refused for the wait alone: at twice the saturation rate, the excess.
_MOST_SHED = 0.5

CALLS, LONG_POLLS, REGISTRATIONS = "calls", "long_polls", "registrations"
_KINDS = {"GetNodeCommands": LONG_POLLS, "RegisterNode": REGISTRATIONS}


@frozen
class Refusal:
    """The two ASGI messages of one refusal, built once and sent as they are."""

    start: Mapping[str, Any]
    body: Mapping[str, Any]


class Admission:
    """Counts the calls in flight and decides, per call, whether it starts or is refused.

    `refuse` is called when a call arrives and `leave` when a call it admitted ends. `refused`
    counts the refusals by method name, `in_flight` the calls by kind (`calls` includes the
    registrations).
    """

    def __init__(
        self,
        *,
        max_in_flight: int = 4000,
        max_long_polls: int = 20_000,
        max_registrations: int = 50,
        max_queue_delay: float = 0.5,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.max_long_polls = max_long_polls
        self.max_registrations = max_registrations
        self.max_queue_delay = max_queue_delay
        self.in_flight = {CALLS: 0, LONG_POLLS: 0, REGISTRATIONS: 0}
        # The event loop's lag as `watch` last measured it, in seconds.
        self.delay = 0.0
        self.refused: dict[str, int] = {}
        # Refusals owed for the wait past the limit: one is made each time this reaches 1.
        self._owed = 0.0
        self._window_end = -math.inf
        self._refused = 0
        self._replies: dict[tuple[str, int], Refusal] = {}
        # The Retry-After of refusals now, in seconds: see `_roll`.
        self._hint = 1

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
        the reply that refuses it."""
        now = trio.current_time()
        if now >= self._window_end:
            self._roll(now)
        kind = _KINDS.get(method, CALLS)
        received = None if extensions is None else extensions.get("navarch.received")
        delay = self.delay if received is None else max(self.delay, now - received)
        late = delay > self.max_queue_delay and self._late(delay)
        reason = "delay" if late else self._full(kind)
        if not reason:
            self.in_flight[kind] += 1
            if kind == REGISTRATIONS:
                self.in_flight[CALLS] += 1
            return None
        retry_after = self._hint
        self._refused += 1
        self.refused[method] = self.refused.get(method, 0) + 1
        reply = self._replies.get((reason, retry_after))
        if reply is None:
            reply = self._replies[reason, retry_after] = self._reply(reason, retry_after)
        return reply

    def _late(self, delay: float) -> bool:
        """Whether this call is one of the share refused at a wait of `delay`, past the limit."""
        self._owed += min(_MOST_SHED, delay / self.max_queue_delay - 1)
        if self._owed < 1:
            return False
        self._owed -= 1
        return True

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

    async def watch(self, tick: float = TICK) -> None:
        """Measures the event loop's lag every `tick` seconds, for as long as it runs."""
        previous = 0.0
        while True:
            asleep = trio.current_time()
            await trio.sleep(tick)
            late = trio.current_time() - asleep - tick
            self.delay = min(previous, late)
            previous = late

    def _roll(self, now: float) -> None:
        """Starts a new window of `_WINDOW` seconds. The Retry-After grows by a second after
        each window in which calls were refused, up to `MAX_RETRY_AFTER`, and falls by one after
        each in which none were: a refused client stays away longer while the overload lasts, so
        that few refusals keep the load down (each costs the server nearly what a call costs),
        and comes back sooner once it has passed. (Doubling and halving instead was measured to
        overshoot: clients stayed away while the server idled.)"""
        if now >= self._window_end + _WINDOW:
            self._hint = 1  # no call at all for a whole window: the overload is over
        elif self._refused:
            self._hint = min(MAX_RETRY_AFTER, self._hint + 1)
        else:
            self._hint = max(1, self._hint - 1)
        self._refused = 0
        self._window_end = now + _WINDOW

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
        return Refusal(
            start={
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry_after).encode()),
                ],
            },
            body={"type": "http.response.body", "body": body},
        )
