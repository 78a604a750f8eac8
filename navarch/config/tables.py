"""The tables of navarch.toml as frozen attrs classes, with their defaults and the checks of one
value."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import attrs
from attrs import field, frozen

from navarch.errors import ConfigValueError
from navarch.hints import show_toml
from navarch.plugins import validators
from navarch.plugins.settings import PluginTable, converter
from navarch.redaction import redact_url

if sys.version_info >= (3, 15):
    pass
else:
    pass

T = TypeVar("T")


@frozen(kw_only=True)
class ServerConfig:
    listen: str = "127.0.0.1:50051"
    # The URL nodes use to reach this control plane; empty means derived from `listen`.
    external_url: str = ""
    heartbeat_interval: timedelta = field(
        default=timedelta(seconds=30), validator=validators.positive
    )
    # Empty means three heartbeat intervals.
    heartbeat_timeout: timedelta | None = field(default=None, validator=validators.positive)
    health_check_interval: timedelta = field(
        default=timedelta(seconds=60), validator=validators.positive
    )
    command_poll_wait: timedelta = field(
        default=timedelta(seconds=20), validator=validators.positive
    )
    max_body_bytes: int = field(default=1_048_576, validator=validators.at_least(1024))
    # A client must send a request's headers within this long of its first byte (of opening the
    # connection, for the first request), and its body within this long of the headers.
    header_timeout: timedelta = field(default=timedelta(seconds=10), validator=validators.positive)
    body_timeout: timedelta = field(default=timedelta(seconds=30), validator=validators.positive)
    # Connections served at once; more wait in the listen backlog until one closes.
    max_connections: int = field(default=30_000, validator=validators.at_least(1))
    # Admission control (navarch.api.admission): past these, a call is refused at once with
    # `unavailable` and a Retry-After. Calls in flight other than long polls; long polls
    # (GetNodeCommands) in flight; registrations in flight (within max_in_flight); and how long a
    # call may wait to run before new ones are refused.
    max_in_flight: int = field(default=4000, validator=validators.at_least(1))
    max_long_polls: int = field(default=20_000, validator=validators.at_least(1))
    max_registrations: int = field(default=50, validator=validators.at_least(1))
    max_queue_delay: timedelta = field(
        default=timedelta(milliseconds=250), validator=validators.positive
    )
    # How long a terminated node is kept after it was last heard from; then it is pruned from the
    # store, and its events once they are as old.
    terminated_retention: timedelta = field(
        default=timedelta(days=7), validator=validators.positive
    )
    # A PEM certificate chain and its private key: with both the API serves https, with neither
    # plain http. Relative paths are relative to the configuration file.
    tls_cert_file: str = ""
    tls_key_file: str = field(default="")

    @tls_key_file.validator
    def _check_tls_pair(self, _attribute: attrs.Attribute[str], value: str) -> None:
        if self.tls_cert_file and not value:
            raise ConfigValueError("tls_key_file: required with tls_cert_file, got none")
        if value and not self.tls_cert_file:
            raise ConfigValueError("tls_cert_file: required with tls_key_file, got none")

    @property
    def effective_heartbeat_timeout(self) -> timedelta:
        return self.heartbeat_timeout or 3 * self.heartbeat_interval


def _postgres_url(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    scheme, sep, _ = value.partition("://")
    if value and (scheme.lower() not in ("postgresql", "postgres") or not sep):
        raise ConfigValueError(
            f"{attribute.name}: expected a postgresql:// URL, got {show_toml(redact_url(value))}"
        )


@frozen(kw_only=True)
class StoreConfig:
    # SQLite file; empty means `navarch.db` in the user's data directory.
    path: str = ""
    # A PostgreSQL database (libpq's URL form), which several control planes may share.
    url: str = field(default="", validator=_postgres_url, repr=False)
    # "sqlite" or "postgresql"; it follows from `url` when not given.
    backend: str = field(
        default=attrs.Factory(lambda self: "postgresql" if self.url else "sqlite", takes_self=True),
        validator=validators.one_of("sqlite", "postgresql"),
    )

    @backend.validator
    def _check_backend(self, _attribute: attrs.Attribute[str], value: str) -> None:
        if self.path and self.url:
            raise ConfigValueError("url: a PostgreSQL url and a SQLite path exclude each other")
        if value == "postgresql" and not self.url:
            raise ConfigValueError('url: required with backend = "postgresql", got none')
        if value == "sqlite" and self.url:
            raise ConfigValueError('backend: "sqlite" takes a path, not a url; remove backend')

    @property
    def target(self) -> str:
        """What to open: the url, else the path; empty for the default SQLite file."""
        return self.url or self.path


@frozen(kw_only=True)
class AuthConfig:
    # Tokens are read from these environment variables, never from the file itself.
    admin_token_env: str = "NAVARCH_ADMIN_TOKEN"
    join_token_env: str = "NAVARCH_JOIN_TOKEN"
    # A viewer token calls the API's read-only methods and signs in to the dashboard to look.
    viewer_token_env: str = "NAVARCH_VIEWER_TOKEN"


@frozen(kw_only=True)
class PoolProviderEntry:
    # The name of a `[providers.NAME]` table.
    provider: str
    priority: int = 0
    weight: int = field(default=1, validator=validators.at_least(1))
    regions: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    # Overrides the provider's mapping of the pool's abstract instance type.
    instance_type: str = ""
    # Spot (preemptible) machines; the provider's plugin must offer them.
    spot: bool = False
    # After this many spot capacity errors in a row, the entry asks for on-demand machines until
    # a capacity block would have ended, then tries spot again; 0 never falls back.
    spot_fallback_after: int = field(default=3, validator=validators.at_least(0))


@frozen(kw_only=True)
class PoolHealthConfig:
    # Replace nodes the health policy judges for replacement.
    auto_replace: bool = True
    drain_timeout: timedelta = field(default=timedelta(minutes=10), validator=validators.positive)
    # What a remediation does when the drain outlasts drain_timeout: "proceed" terminates the
    # node anyway, "hold" leaves it cordoned for an operator.
    on_drain_timeout: str = field(default="proceed", validator=validators.one_of("proceed", "hold"))
    # The circuit breaker: when more than this percent of the pool enters remediation within
    # breaker_window, no new episode starts until an operator resets it.
    breaker_percent: float = field(default=50.0, validator=validators.percent)
    breaker_window: timedelta = field(default=timedelta(minutes=5), validator=validators.positive)
    # Carry out the policy's reset_gpu and reboot actions as remediation episodes; with false,
    # such a node is drained and held for an operator.
    auto_recover: bool = True
    # The reset_limit-th reset that one GPU needs within reset_window is answered with
    # replacement instead.
    reset_window: timedelta = field(default=timedelta(hours=24), validator=validators.positive)
    reset_limit: int = field(default=2, validator=validators.at_least(1))
    # How long a GPU reset may take, from the command to the daemon's acknowledgement.
    reset_timeout: timedelta = field(default=timedelta(minutes=10), validator=validators.positive)
    # How long a rebooted node may take to register again and report a health verdict.
    reboot_timeout: timedelta = field(default=timedelta(minutes=15), validator=validators.positive)


@frozen(kw_only=True)
class ScalingPolicy:
    """One rate limit of a direction, as an HPA scaling policy: `value` nodes, or `value` percent
    of the pool's size at the start of the period, per `period`."""

    type: str = field(validator=validators.one_of("nodes", "percent"))
    value: float = field()
    period: timedelta = field(default=timedelta(minutes=1), validator=validators.positive)

    @value.validator
    def _check_value(self, _attribute: attrs.Attribute[float], value: float) -> None:
        if value <= 0:
            raise ConfigValueError(f"value: expected a number above 0, got {value:g}")
        if self.type == "nodes" and not float(value).is_integer():
            raise ConfigValueError(f"value: expected a whole number of nodes, got {value:g}")


def _shorthand(nodes: int, percent: float, period: timedelta) -> tuple[ScalingPolicy, ...]:
    # A zero allowance is no policy, so that 0 and 0 leave a direction without any.
    policies = []
    if nodes:
        policies.append(ScalingPolicy(type="nodes", value=nodes, period=period))
    if percent:
        policies.append(ScalingPolicy(type="percent", value=percent, period=period))
    return tuple(policies)


# How the policies of a direction combine: "max" the one that allows the largest change (HPA's
# Max), "min" the smallest (Min), "disabled" no change at all (Disabled).
_SELECT_POLICIES = ("max", "min", "disabled")


@frozen(kw_only=True)
class ScaleUpConfig:
    # Scale up only as far as the lowest recommendation of this window; 0 acts at once.
    window: timedelta = field(default=timedelta(0), validator=validators.not_negative)
    # The one-policy shorthand: at most this many nodes, or this percent of the pool, per period.
    nodes: int = field(default=4, validator=validators.at_least(0))
    percent: float = field(default=100.0, validator=validators.at_least(0))
    period: timedelta = field(default=timedelta(minutes=1), validator=validators.positive)
    # Policies each with its own period; set, they replace nodes, percent and period.
    policies: tuple[ScalingPolicy, ...] = ()
    select_policy: str = field(default="max", validator=validators.one_of(*_SELECT_POLICIES))

    @property
    def rates(self) -> tuple[ScalingPolicy, ...]:
        """The policies in force: `policies`, or the ones that nodes, percent and period stand
        for."""
        return self.policies or _shorthand(self.nodes, self.percent, self.period)


@frozen(kw_only=True)
class ScaleDownConfig:
    # Scale down only as far as the highest recommendation of this window.
    window: timedelta = field(default=timedelta(minutes=5), validator=validators.not_negative)
    nodes: int = field(default=0, validator=validators.at_least(0))
    percent: float = field(default=100.0, validator=validators.percent)
    period: timedelta = field(default=timedelta(minutes=1), validator=validators.positive)
    policies: tuple[ScalingPolicy, ...] = ()
    select_policy: str = field(default="max", validator=validators.one_of(*_SELECT_POLICIES))
    # No scale-down until this long after the pool last grew.
    delay_after_scale_up: timedelta = field(
        default=timedelta(minutes=10), validator=validators.not_negative
    )
    # Drain a node before terminating it.
    drain: bool = True
    # The pool's last node leaves only once the queue has been empty and every GPU idle this
    # long (scale to zero); 0 lets it leave like any other.
    idle_timeout: timedelta = field(default=timedelta(0), validator=validators.not_negative)

    @property
    def rates(self) -> tuple[ScalingPolicy, ...]:
        """The policies in force: `policies`, or the ones that nodes, percent and period stand
        for."""
        return self.policies or _shorthand(self.nodes, self.percent, self.period)


# The scale-down keys each `[pools.NAME.scaling] profile` sets, as GKE's autoscaling profiles
# do; keys given in `[pools.NAME.scaling.scale_down]` win. "balanced" is ScaleDownConfig's
# defaults. "optimize-cost" gives nodes back sooner: a 1-minute window and a 2-minute delay
# after a scale-up, and every unneeded node at once (100 % per 15 s, the HPA's own default).
SCALING_PROFILES: dict[str, dict[str, object]] = {
    "balanced": {},
    "optimize-cost": {
        "window": "1m",
        "delay_after_scale_up": "2m",
        "nodes": 0,
        "percent": 100,
        "period": "15s",
    },
}


@frozen(kw_only=True)
class PoolScalingConfig:
    """How the core turns any autoscaler's recommendation into a target (navarch.pools)."""

    # Which scale-down defaults apply; see SCALING_PROFILES.
    profile: str = field(default="balanced", validator=validators.one_of(*SCALING_PROFILES))
    scale_up: ScaleUpConfig = ScaleUpConfig()
    scale_down: ScaleDownConfig = ScaleDownConfig()


_SHORTHAND = ("nodes", "percent", "period")


def _rules_hook(cls: type[T]) -> Callable[[Any, type], T]:
    """Structures a direction's table, refusing policies beside the one-policy shorthand."""
    from_dict: Callable[[Mapping[str, Any], type[T]], T] = converter.gen_structure_attrs_fromdict(
        cls
    )

    def hook(value: Any, _type: type) -> T:
        if not isinstance(value, Mapping):
            raise ConfigValueError(f"expected a table, got {show_toml(value)}")
        both = [key for key in _SHORTHAND if key in value]
        if value.get("policies") and both:
            raise ConfigValueError(
                "policies: set either policies or the one-policy shorthand (nodes, percent, "
                f"period), not both; got {' and '.join(both)} as well"
            )
        return from_dict(value, cls)

    return hook


def _unstructure_rules(rules: ScaleUpConfig | ScaleDownConfig) -> dict[str, Any]:
    """A direction as the file would say it: its policies, or the shorthand, not both."""
    table: dict[str, Any] = converter.unstructure_attrs_asdict(rules)
    drop = _SHORTHAND if rules.policies else ("policies",)
    return {key: value for key, value in table.items() if key not in drop}


converter.register_structure_hook(ScaleUpConfig, _rules_hook(ScaleUpConfig))
converter.register_structure_hook(ScaleDownConfig, _rules_hook(ScaleDownConfig))
converter.register_unstructure_hook(ScaleUpConfig, _unstructure_rules)
converter.register_unstructure_hook(ScaleDownConfig, _unstructure_rules)
# Generated after the hooks above, which it calls for scale_up and scale_down.
_structure_scaling_table = converter.gen_structure_attrs_fromdict(PoolScalingConfig)


def _structure_scaling(value: Any, _type: type) -> PoolScalingConfig:
    """Fills the scale-down keys that the table leaves out from its profile."""
    if not isinstance(value, Mapping):
        raise ConfigValueError(f"expected a table, got {show_toml(value)}")
    profile = value.get("profile", "balanced")
    preset = SCALING_PROFILES.get(profile) if isinstance(profile, str) else None
    down = value.get("scale_down", {})
    if preset and isinstance(down, Mapping):
        given = dict(down)
        if given.get("policies"):
            preset = {k: v for k, v in preset.items() if k not in _SHORTHAND}
        value = {**value, "scale_down": {**preset, **given}}
    return _structure_scaling_table(value, PoolScalingConfig)


converter.register_structure_hook(PoolScalingConfig, _structure_scaling)


@frozen(kw_only=True)
class PoolBootstrapConfig:
    """How a pool's new machines get navarch's daemon (`[pools.NAME.bootstrap]`)."""

    # "cloud-init" hands the rendered script to the cloud as user-data, "ssh" runs it over SSH
    # after the machine is up, "none" installs nothing (the image carries the daemon). Empty
    # means cloud-init when the `[bootstrap]` table is set, none otherwise.
    method: str = field(default="", validator=validators.one_of("", "cloud-init", "ssh", "none"))
    # Shell commands run over SSH, in order, before navarch is installed (method "ssh").
    setup_commands: tuple[str, ...] = ()
    ssh_user: str = "ubuntu"
    ssh_port: int = field(default=22, validator=validators.between(1, 65535))
    # The private key navarch logs in with; relative to the configuration file.
    ssh_key_file: str = ""
    connect_timeout: timedelta = field(default=timedelta(seconds=10), validator=validators.positive)
    # The longest one setup command (and the install script) may run.
    command_timeout: timedelta = field(default=timedelta(minutes=10), validator=validators.positive)


@frozen(kw_only=True)
class PoolPreflightConfig:
    """Diagnostics a pool's new node passes before it takes work (`[pools.NAME.preflight]`)."""

    enabled: bool = False
    # The run_diagnostic level: 1 quick (seconds), 2 medium (minutes), 3 long, 4 extended.
    level: int = field(default=1, validator=validators.between(1, 4))
    # A node whose diagnostics have not answered this long after they were asked for fails.
    timeout: timedelta = field(default=timedelta(minutes=30), validator=validators.positive)


@frozen(kw_only=True)
class BootstrapConfig:
    """What every pool's bootstrap installs, and where its daemon reports (`[bootstrap]`)."""

    # The control plane's address as the new machines reach it.
    control_plane_url: str = field(default="", validator=validators.optional_url)
    # The navarch release to install from the package index; empty means this control plane's.
    version: str = ""
    # A wheel to install instead of a release from the index (a URL or a path on the machine).
    wheel_url: str = ""
    # The package index to install from; empty means pip's default (PyPI).
    index_url: str = field(default="", validator=validators.optional_url)
    # The Python that makes navarch's virtual environment on the machine.
    python: str = "python3"


@frozen(kw_only=True)
class PoolConfig:
    instance_type: str
    providers: tuple[PoolProviderEntry, ...] = field(
        validator=validators.not_empty("provider entry")
    )
    min_nodes: int = field(default=0, validator=validators.at_least(0))
    max_nodes: int = field(default=1, validator=validators.at_least(1))
    scale_interval: timedelta = field(default=timedelta(seconds=30), validator=validators.positive)
    labels: dict[str, str] = field(factory=dict)
    autoscaler: PluginTable | None = None
    selector: PluginTable = field(factory=lambda: PluginTable(type="priority"))
    # A metrics-source plugin the manager asks for the pool's queue depth each round.
    metrics: PluginTable | None = None
    # A queue depth older than this, while the source fails or has no data, is dropped and the
    # pool holds its size rather than scale on it.
    metrics_max_age: timedelta = field(default=timedelta(minutes=5), validator=validators.positive)
    scaling: PoolScalingConfig = PoolScalingConfig()
    health: PoolHealthConfig = PoolHealthConfig()
    bootstrap: PoolBootstrapConfig = PoolBootstrapConfig()
    preflight: PoolPreflightConfig = PoolPreflightConfig()
    # An instance whose daemon has not registered this long after provisioning (its bootstrap
    # included) is terminated and replaced.
    registration_timeout: timedelta = field(
        default=timedelta(minutes=10), validator=validators.positive
    )

    @max_nodes.validator
    def _check_max(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if value < self.min_nodes:
            raise ConfigValueError(
                f"max_nodes: expected at least min_nodes ({self.min_nodes}), got {value}"
            )


@frozen(kw_only=True)
class HealthConfig:
    # A policy file of CEL rules; empty means the built-in default policy.
    policy: str = ""
    # A node's health is the worst result over this window.
    window: timedelta = field(default=timedelta(minutes=10), validator=validators.positive)


@frozen(kw_only=True)
class HAConfig:
    # Control planes on one PostgreSQL store elect a leader through a lease of this length; a
    # leader that cannot renew it stops acting before another may take over.
    lease_ttl: timedelta = field(default=timedelta(seconds=15), validator=validators.positive)
    # The URL followers name as the leader's when this control plane leads; empty means
    # `server.external_url`, else http(s)://`server.listen`.
    advertise_url: str = field(default="", validator=validators.optional_url)

    @lease_ttl.validator
    def _check_ttl(self, _attribute: attrs.Attribute[timedelta], value: timedelta) -> None:
        if value < timedelta(seconds=1):
            raise ConfigValueError(f"lease_ttl: expected at least 1s, got {value.total_seconds()}s")


@frozen(kw_only=True)
class MetricsConfig:
    # Series of each node (status, health, last heartbeat) and of each GPU (temperature, power,
    # utilization, memory) at `/metrics`; off, only the pools' and the fleet's are served.
    per_node: bool = False
    per_gpu: bool = False
    # The most nodes with series of their own: the least healthy first, so a large fleet shows
    # the nodes that need attention and every other node is counted in the pools' series.
    node_limit: int = field(default=100, validator=validators.between(1, 10_000))


@frozen(kw_only=True)
class Config:
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    ha: HAConfig = HAConfig()
    auth: AuthConfig = AuthConfig()
    providers: dict[str, PluginTable] = field(factory=dict)
    pools: dict[str, PoolConfig] = field(factory=dict)
    health: HealthConfig = HealthConfig()
    notifiers: dict[str, PluginTable] = field(factory=dict)
    metrics: MetricsConfig = MetricsConfig()
    # Set, it makes every pool install navarch's daemon on its new machines.
    bootstrap: BootstrapConfig | None = None
    # Where this configuration came from, for messages; not a key in the file.
    source: str = field(default="<defaults>", eq=False)


def default_config() -> Config:
    return Config()
