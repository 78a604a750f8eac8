"""`navarch daemon`: the node agent of one GPU machine."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import logging

    from navarch.api.client import HttpClient
    from navarch.daemon.agent import Daemon
    from navarch.daemon.config import DaemonConfig
    from navarch.daemon.gpu import NvmlGpus, SimulatedGpus

from navarch.cli.labels import parse_label
from navarch.errors import UsageError

# The prefix of the one-time tokens a pool's bootstrap gives a new machine (navarch.pools).
BOOTSTRAP_TOKEN_PREFIX = "nvb_"


@click.command()
@click.option(
    "--control-plane",
    "control_plane",
    default=None,
    metavar="URL",
    help="URL of the control plane, or several separated by commas (control planes sharing a "
    "store) [default: from --config, else http://127.0.0.1:50051].",
)
@click.option(
    "--join-token",
    envvar="NAVARCH_JOIN_TOKEN",
    default="",
    show_envvar=True,
    help="Token that admits this node; prefer the environment variable, which ps cannot show.",
)
@click.option("--node-id", default=None, help="Node id [default: the host name].")
@click.option("--pool", default=None, help="Pool this node belongs to.")
@click.option(
    "--label",
    "labels",
    multiple=True,
    callback=parse_label,
    metavar="KEY=VALUE",
    help="A label of this node; repeatable. Adds to the labels of --config.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML file whose [daemon] table configures the daemon.",
)
@click.option(
    "--simulated-gpus",
    type=click.IntRange(0, 64),
    default=None,
    metavar="N",
    help="Run with N simulated GPUs instead of the machine's own.",
)
@click.option("--provider", default=None, help="Provider that runs this machine.")
@click.option("--region", default=None, help="Region of this machine.")
@click.option("--zone", default=None, help="Zone of this machine.")
@click.option("--instance-type", default=None, help="Instance type of this machine.")
@click.option(
    "--take-over",
    is_flag=True,
    help="Take the node id over from another daemon that still holds it.",
)
def daemon(
    control_plane: str | None,
    join_token: str,
    node_id: str | None,
    pool: str | None,
    labels: dict[str, str],
    config_file: str | None,
    simulated_gpus: int | None,
    provider: str | None,
    region: str | None,
    zone: str | None,
    instance_type: str | None,
    take_over: bool,
) -> None:
    """Run the node agent of this machine.

    The daemon registers the machine with the control plane, sends heartbeats with metrics,
    reports health events and runs the commands it receives. It keeps running while the
    control plane is away, and stops on SIGTERM or SIGINT, or when the node is terminated.
    """
    import socket

    import attrs

    from navarch.daemon.config import DaemonConfig, load_daemon_config

    config = load_daemon_config(config_file) if config_file else DaemonConfig()
    overrides: dict[str, Any] = {
        "control_plane": control_plane,
        "node_id": node_id,
        "pool": pool,
        "provider": provider,
        "region": region,
        "zone": zone,
        "instance_type": instance_type,
    }
    changes = {k: v for k, v in overrides.items() if v is not None}
    if labels:
        changes["labels"] = {**config.labels, **labels}
    hostname = socket.gethostname()
    # A machine a pool bootstrapped learns its node id (its instance id) from the control plane.
    bootstrapped = join_token.startswith(BOOTSTRAP_TOKEN_PREFIX)
    if not (changes.get("node_id") or config.node_id) and not bootstrapped:
        changes["node_id"] = hostname
    try:
        config = attrs.evolve(config, **changes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _run(config, config_file or "navarch.toml", join_token, hostname, simulated_gpus, take_over)


def _run(
    config: DaemonConfig,
    source: str,
    join_token: str,
    hostname: str,
    simulated_gpus: int | None,
    take_over: bool,
) -> None:
    import logging

    import trio

    from navarch.api.client import HttpClient
    from navarch.daemon.agent import Daemon
    from navarch.daemon.checks import load_health_checks
    from navarch.daemon.host import ProcHostStats
    from navarch.daemon.state import DaemonState
    from navarch.plugins.manager import installed_plugins
    from navarch.telemetry.versions import fallback_reason

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # One line per request would bury the lines that matter.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log = logging.getLogger("navarch.daemon")
    plugins = installed_plugins()
    # Health checks alone, so that the built-in plugins of other kinds are never imported: the
    # daemon runs for months, and they would only hold memory.
    for info in plugins.broken("health_check"):
        log.warning("plugin %s (%s) is not loaded: %s", info.name, info.distribution, info.error)
    checks = load_health_checks(plugins, config, source)
    backend = _backend(simulated_gpus, config.node_id or hostname)
    reason = fallback_reason()
    if reason is not None:
        log.warning("telemetry: the pure-Python fallback is in use (%s)", reason)

    async def main() -> None:
        async with HttpClient(config.control_plane) as client:
            identified = config
            if not config.node_id:
                identified = await identify(client, config, join_token, log)
            agent = Daemon(
                client,
                backend,
                identified,
                join_token=join_token,
                hostname=hostname,
                host_stats=ProcHostStats(),
                health_checks=checks,
                state=DaemonState(config.state_dir or None),
                take_over=take_over,
            )
            log.info(
                "node %s: starting; control plane %s, %d GPUs%s, %d health checks",
                identified.node_id,
                config.control_plane,
                len(backend.inventory()),
                " (simulated)" if simulated_gpus is not None else "",
                len(checks),
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_stop_on_signal, agent, log)
                nursery.start_soon(_release_startup_memory, agent)
                await agent.run()
                nursery.cancel_scope.cancel()

    try:
        # A refusal (DaemonError) leaves the nurseries wrapped in exception groups, which
        # `navarch.cli.main` prints as one line.
        trio.run(main)
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()


# How long a bootstrapped machine asks the control plane who it is before it gives up (the
# instance may still be being provisioned), and how long it waits between questions.
IDENTIFY_FOR = 600.0
IDENTIFY_EVERY = 5.0


async def identify(
    client: HttpClient, config: DaemonConfig, join_token: str, log: logging.Logger
) -> DaemonConfig:
    """The configuration of a machine a pool bootstrapped, with its node id and inventory.

    A daemon that registered before kept its node id in its state directory; otherwise the
    machine asks the control plane with its one-time token which instance it is.
    """
    import attrs
    import trio

    from navarch.api import wire as m
    from navarch.api.client import Overloaded, Unreachable
    from navarch.api.codec import ApiError
    from navarch.daemon.backoff import Backoff
    from navarch.daemon.state import DaemonState

    state = DaemonState(config.state_dir or None)
    state.load()
    if state.node_id:
        return attrs.evolve(config, node_id=state.node_id)
    client.set_token(join_token)
    backoff = Backoff()
    with trio.move_on_after(IDENTIFY_FOR):
        while True:
            wait = IDENTIFY_EVERY
            try:
                found = await client.get_bootstrap_identity(m.GetBootstrapIdentityRequest())
            except Overloaded as exc:
                log.info("the control plane sheds load: %s", exc.message)
                wait = backoff.honour(exc.retry_after)
            except ApiError as exc:
                if exc.code != "failed_precondition":
                    raise UsageError(
                        f"the control plane refused this machine's bootstrap token: "
                        f"{exc.message} ({exc.code})"
                    ) from None
                log.info("waiting for the control plane to know this machine: %s", exc.message)
            except Unreachable as exc:
                log.warning("%s; asking again", exc)
            else:
                log.info("this machine is instance %s of pool %s", found.node_id, found.pool)
                known = {
                    "pool": found.pool,
                    "provider": found.provider,
                    "region": found.region,
                    "zone": found.zone,
                    "instance_type": found.instance_type,
                }
                filled: dict[str, Any] = {
                    k: v for k, v in known.items() if v and not getattr(config, k)
                }
                return attrs.evolve(config, node_id=found.node_id, **filled)
            await trio.sleep(wait)
    raise UsageError(
        f"the control plane did not say which instance this machine is within "
        f"{IDENTIFY_FOR:g}s; check that its bootstrap token is current"
    )


async def _stop_on_signal(agent: Daemon, log: logging.Logger) -> None:
    import signal

    import trio

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("node %s: stopping on %s", agent.node_id, signal.Signals(signum).name)
            agent.stop()
            return


async def _release_startup_memory(agent: Daemon) -> None:
    """Once registered, hands back to the system the heap that starting up used and freed.

    The daemon then runs for months at rest, so what its start freed (imports, plugins) is worth
    returning. glibc keeps freed heap pages until asked (`malloc_trim`); elsewhere this does
    nothing.
    """
    import ctypes
    import gc

    await agent.registered.wait()
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def _backend(simulated_gpus: int | None, node_id: str) -> NvmlGpus | SimulatedGpus:
    """Simulated GPUs when asked for, else this machine's own through NVML."""
    from navarch.daemon.gpu import NvmlGpus, SimulatedGpus
    from navarch.telemetry import LibraryNotFound, open_nvml

    if simulated_gpus is not None:
        return SimulatedGpus(simulated_gpus, seed=node_id)
    try:
        nvml = open_nvml()
    except LibraryNotFound as exc:
        raise UsageError(
            f"cannot read this machine's GPUs ({exc}); pass --simulated-gpus N to run with "
            "simulated GPUs"
        ) from None
    return NvmlGpus(nvml)
