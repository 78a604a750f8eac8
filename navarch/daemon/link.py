"""The daemon's link to the control plane: registration, and what every failed call leads to.

The control plane may forget a node or stop accepting its token (a new control plane, a rotated
secret), or stop answering for a while. Every loop of the daemon hands its failed calls to the one
`Link`, so the node registers again once, whichever loop noticed first, and otherwise backs off.
A control plane that sheds load (`Overloaded`) has not forgotten the node: the node waits as long
as it asks, plus jitter, and calls again without registering; a registration it refused is retried
the same way, so a fleet that registers again after a restart arrives spread out.
The link also keeps what the control plane last said: the settings it handed out at registration
and the node's status and health.

The link registers with the node token it holds, and with the join token only when it holds none
or the control plane no longer accepts it. The control plane refuses the join token for a node
that another daemon keeps in touch with; the daemon that was refused stops (`DaemonError`), unless
it was started to take the node id over, which only its first registration asks for.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import trio

from navarch import __version__
from navarch.api import wire as m
from navarch.api.client import ControlPlaneClient, Overloaded, Unreachable
from navarch.api.codec import ApiError
from navarch.api.mapping import gpu_info_to_wire
from navarch.daemon.backoff import Backoff
from navarch.daemon.config import DaemonConfig
from navarch.daemon.nodelog import NodeLog
from navarch.daemon.state import DaemonState
from navarch.durations import parse_duration
from navarch.errors import NavarchError
from navarch.model import GpuInfo

# Codes after which the node must register again: the control plane forgot the node, or no
# longer accepts its token (a new control plane, a rotated secret).
_REREGISTER = frozenset({"not_found", "unauthenticated", "permission_denied"})
# Codes that say the node token is no longer good; the join token may still register the node.
_TOKEN_REFUSED = frozenset({"unauthenticated", "permission_denied"})
# Codes that registration cannot get past by retrying.
_FATAL_AT_REGISTRATION = frozenset(
    {"unauthenticated", "permission_denied", "invalid_argument", "failed_precondition"}
)


# What a refusal asks of the operator, where the control plane's message does not say it.
_WHAT_TO_DO = {
    "unauthenticated": "; pass the control plane's join token with --join-token or "
    "NAVARCH_JOIN_TOKEN",
    "permission_denied": "; pass the control plane's join token with --join-token or "
    "NAVARCH_JOIN_TOKEN",
}


class DaemonError(NavarchError):
    """The daemon cannot go on: the control plane refuses it for good."""


class Link:
    """One node's registration with the control plane, and whether the control plane answers."""

    def __init__(
        self,
        client: ControlPlaneClient,
        config: DaemonConfig,
        state: DaemonState,
        log: NodeLog,
        *,
        join_token: str,
        hostname: str,
        rng: random.Random,
        backoff_cap: float,
        take_over: bool = False,
    ) -> None:
        self.node_id = config.node_id
        self._client = client
        self._config = config
        self._state = state
        self._log = log
        self._join_token = join_token
        self._hostname = hostname
        self._rng = rng
        self._backoff_cap = backoff_cap
        # Asked of the first registration only: a daemon that loses the node later stops.
        self._take_over = take_over

        self.status: m.NodeStatus | None = None
        self.health = m.HealthStatus.HEALTH_STATUS_UNKNOWN
        self.registered = trio.Event()
        self.heartbeat_interval = 30.0
        self.health_check_interval = 60.0
        self.command_poll_wait = "20s"
        self.generation = 0  # counts registrations, so concurrent loops re-register only once

        self._inventory: tuple[GpuInfo, ...] = ()
        self._register_lock = trio.Lock()
        self._answering = "up"

    async def register(self, inventory: Sequence[GpuInfo]) -> None:
        """Registers the node with these GPUs, retrying while the control plane is away.

        Raises `DaemonError` when the control plane refuses the node for good (a bad join token).
        """
        self._inventory = tuple(inventory)
        await self._register()

    async def recover(
        self,
        exc: Unreachable | ApiError,
        generation: int,
        backoff: Backoff,
        cap: float | None = None,
    ) -> float:
        """Handles a failed call: registers again when the node was forgotten, else backs off.

        `generation` is the one read before the call. Returns how long to wait before the next
        attempt (0 after registering again): after a refusal with a retry hint, the hint plus
        jitter, whatever `cap` says; otherwise the next backoff, at most `cap`.
        """
        if isinstance(exc, ApiError) and exc.code in _REREGISTER:
            async with self._register_lock:
                if generation == self.generation:
                    self._log.warning(
                        "the control plane does not accept this node (%s); registering again",
                        exc.message,
                    )
                    await self._register()
            backoff.reset()
            return 0.0
        self.failed(exc)
        if isinstance(exc, Overloaded):
            return backoff.honour(exc.retry_after)
        return backoff.next_delay(cap)

    def new_backoff(self) -> Backoff:
        return Backoff(cap=self._backoff_cap, rng=self._rng)

    def heard(self, status: m.NodeStatus, health: m.HealthStatus | None = None) -> None:
        """Keeps what the control plane last said of the node."""
        self.status = status
        if health is not None:
            self.health = health

    def ok(self) -> None:
        """A call went through; logs that the control plane answers again, once."""
        if self._answering != "up":
            self._log.info("the control plane answers again")
            self._answering = "up"

    def failed(self, exc: Unreachable | ApiError) -> None:
        """A call failed; logs each change in how it fails, not each retry."""
        if isinstance(exc, Unreachable):
            answering = "unreachable"
        else:
            answering = "shedding" if isinstance(exc, Overloaded) else "failing"
        if answering == self._answering:
            return
        self._answering = answering
        if isinstance(exc, Unreachable):
            self._log.warning("%s; retrying with backoff", exc)
        elif isinstance(exc, Overloaded):
            self._log.warning(
                "the control plane sheds load: %s; retrying after the wait it asks for, "
                "with jitter",
                exc.message,
            )
        else:
            self._log.warning(
                "the control plane returned an error: %s (%s); retrying with backoff",
                exc.message,
                exc.code,
            )

    async def _register(self) -> None:
        config = self._config
        request = m.RegisterNodeRequest(
            node_id=self.node_id,
            provider=config.provider,
            region=config.region,
            zone=config.zone,
            instance_type=config.instance_type,
            pool=config.pool,
            hostname=self._hostname,
            labels=dict(config.labels),
            gpus=tuple(gpu_info_to_wire(g) for g in self._inventory),
            agent_version=__version__,
            take_over=self._take_over,
        )
        state = self._state
        with_node_token = state.node_id == self.node_id and bool(state.node_token)
        backoff = self.new_backoff()
        while True:
            if with_node_token:
                self._client.set_token(state.node_token)
            elif self._join_token:
                self._client.set_token(self._join_token)
            try:
                reply = await self._client.register_node(request)
            except Unreachable as exc:
                self.failed(exc)
                delay = backoff.next_delay()
            except Overloaded as exc:
                self.failed(exc)
                delay = backoff.honour(exc.retry_after)
            except ApiError as exc:
                if with_node_token and exc.code in _TOKEN_REFUSED and self._join_token:
                    with_node_token = False
                    continue
                if exc.code in _FATAL_AT_REGISTRATION:
                    raise DaemonError(
                        f"the control plane refused to register node {self.node_id}: "
                        f"{exc.message} ({exc.code}){_WHAT_TO_DO.get(exc.code, '')}"
                    ) from None
                self.failed(exc)
                delay = backoff.next_delay()
            else:
                break
            await trio.sleep(delay)
        self._take_over = False
        self.ok()
        if reply.node_token:
            self._client.set_token(reply.node_token)
            await self._state.set_token(self.node_id, reply.node_token)
        self._apply_config(reply.config)
        self.status = reply.node.status
        self.generation += 1
        first = not self.registered.is_set()
        self.registered.set()
        self._log.info(
            "%s with %d GPUs; heartbeat every %gs",
            "registered" if first else "registered again",
            len(self._inventory),
            self.heartbeat_interval,
        )

    def _apply_config(self, config: m.NodeConfig) -> None:
        def seconds(text: str, default: float) -> float:
            try:
                value = parse_duration(text).total_seconds()
            except ValueError:
                return default
            return value if value > 0 else default

        self.heartbeat_interval = seconds(config.heartbeat_interval, 30.0)
        self.health_check_interval = seconds(config.health_check_interval, 60.0)
        try:
            parse_duration(config.command_poll_wait)
            self.command_poll_wait = config.command_poll_wait
        except ValueError:
            self.command_poll_wait = "20s"
