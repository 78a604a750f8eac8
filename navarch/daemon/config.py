"""The `[daemon]` table of a node's configuration file.

The daemon reads only its own table, so one navarch.toml can configure a control plane and the
daemon beside it. Flags on the command line override the file.

    [daemon]
    control_plane = "http://10.0.0.2:50051"   # or several: ["http://cp-1:50051", "http://cp-2:50051"]
    pool = "training"
    drain_command = "/usr/local/bin/drain-jobs --wait"
    drain_timeout = "10m"
    reset_command = "nvidia-smi --gpu-reset -i {gpu}"
    reboot_command = "systemctl reboot"
    state_dir = "/var/lib/navarch"

    [daemon.labels]
    rack = "r12"

    [daemon.health_checks.thermal]   # settings of one health-check plugin
    margin_c = 5
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Any

import attrs
from attrs import field, frozen

from navarch.errors import ConfigError, ConfigValueError, read_config_file
from navarch.plugins import validators
from navarch.plugins.settings import structure

if sys.version_info >= (3, 15):
    import tomllib
else:
    import tomli as tomllib

DEFAULT_CONTROL_PLANE = "http://127.0.0.1:50051"


def _label_keys(
    _inst: object, attribute: attrs.Attribute[dict[str, str]], value: dict[str, str]
) -> None:
    for key in value:
        if not key or "=" in key:
            raise ConfigValueError(f"{attribute.name}: label keys must be non-empty, without '='")


def _urls(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    """One http(s) URL, or several separated by commas (control planes that share a store)."""
    for url in value.split(","):
        validators.url(_inst, attribute, url.strip())


def _tables(
    _inst: object, attribute: attrs.Attribute[dict[str, Any]], value: dict[str, Any]
) -> None:
    for name, table in value.items():
        if not isinstance(table, dict):
            raise ConfigValueError(f"{attribute.name}: {name}: expected a table, got {table!r}")


@frozen(kw_only=True)
class DaemonConfig:
    # The control plane's URL; with several control planes sharing a store, their URLs separated
    # by commas (a list in the file), and the daemon follows the leader among them.
    control_plane: str = field(default=DEFAULT_CONTROL_PLANE, validator=_urls)
    # Empty means the machine's host name.
    node_id: str = ""
    pool: str = ""
    provider: str = ""
    region: str = ""
    zone: str = ""
    instance_type: str = ""
    labels: dict[str, str] = field(factory=dict, validator=_label_keys)
    # Run through /bin/sh -c when the control plane asks the node to drain; it succeeds when the
    # command exits 0. Empty means there is nothing to drain on this machine.
    drain_command: str = ""
    drain_timeout: timedelta = field(default=timedelta(minutes=5), validator=validators.positive)
    # Run through /bin/sh -c to reset one GPU of a drained node, `{gpu}` replaced by its index; it
    # succeeds when it exits 0. Empty means GPUs are not reset on this machine.
    reset_command: str = "nvidia-smi --gpu-reset -i {gpu}"
    # The reset command is killed, and the reset failed, when it runs longer.
    reset_timeout: timedelta = field(default=timedelta(minutes=2), validator=validators.positive)
    # How long NVML may take to see a reset GPU again before the reset counts as failed.
    gpu_return_timeout: timedelta = field(
        default=timedelta(seconds=60), validator=validators.positive
    )
    # Run through /bin/sh -c for a reboot command, after the daemon acknowledged it. Empty means
    # the daemon does not reboot this machine.
    reboot_command: str = "systemctl reboot"
    # Where the daemon keeps its node token and the results of finished commands across restarts;
    # empty keeps them in memory only.
    state_dir: str = ""
    # Settings of health-check plugins by name, as TOML tables; each is checked by its plugin.
    health_checks: dict[str, Any] = field(factory=dict, validator=_tables)
    # The cloud metadata service to watch for a preemption notice: "aws", "gcp" or "none".
    metadata: str = field(default="none", validator=validators.one_of("none", "aws", "gcp"))
    # The metadata service's address; empty means the cloud's own.
    metadata_url: str = field(default="", validator=validators.optional_url)
    metadata_poll: timedelta = field(default=timedelta(seconds=5), validator=validators.positive)


def load_daemon_config(path: str | os.PathLike[str]) -> DaemonConfig:
    """Reads the `[daemon]` table of a TOML file; a file without one gives the defaults."""
    source = str(path)
    text = read_config_file(path)
    return parse_daemon_config(text, source)


def parse_daemon_config(text: str, source: str = "navarch.toml") -> DaemonConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"TOML syntax error: {exc}"]) from None
    problems: list[str] = []
    table = data.get("daemon", {})
    listed = table.get("control_plane") if isinstance(table, dict) else None
    if isinstance(listed, list) and all(isinstance(url, str) for url in listed):
        table = {**table, "control_plane": ",".join(listed)}
    config = structure(table, DaemonConfig, problems, "daemon")
    if config is None:
        raise ConfigError(source, problems)
    return config
