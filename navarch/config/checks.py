"""Checks across tables: bootstrap, TLS files and the health policy file."""

from __future__ import annotations

import os
import ssl
import sys
from pathlib import Path

import attrs

from navarch.errors import ConfigError, ConfigValueError

if sys.version_info >= (3, 15):
    pass
else:
    pass

from navarch.config.tables import (
    Config,
    PoolConfig,
    ServerConfig,
)


def bootstrap_method(config: Config, pool: PoolConfig) -> str:
    """How the pool's new machines get the daemon: "cloud-init", "ssh" or "none"."""
    if pool.bootstrap.method:
        return pool.bootstrap.method
    return "none" if config.bootstrap is None else "cloud-init"


def _check_bootstrap(
    config: Config, base_dir: str | os.PathLike[str] | None, problems: list[str]
) -> Config:
    """Checks what a bootstrap needs; resolves each pool's `ssh_key_file` against the file's
    directory."""
    settings = config.bootstrap
    if settings is not None:
        if not settings.control_plane_url:
            problems.append(
                "bootstrap.control_plane_url: required: the address new machines reach the "
                "control plane at"
            )
        if settings.version and settings.wheel_url:
            problems.append("bootstrap: set version or wheel_url, not both")
    pools = dict(config.pools)
    for name, pool in config.pools.items():
        method = bootstrap_method(config, pool)
        where = f"pools.{name}.bootstrap"
        if settings is None and method != "none":
            problems.append(
                f"{where}.method: {method!r} needs the [bootstrap] table (control_plane_url)"
            )
        if pool.bootstrap.setup_commands and method != "ssh":
            problems.append(f'{where}.setup_commands: run only with method = "ssh"')
        if method != "ssh":
            continue
        if not pool.bootstrap.ssh_key_file:
            problems.append(f'{where}.ssh_key_file: required with method = "ssh"')
            continue
        key = Path(pool.bootstrap.ssh_key_file).expanduser()
        if not key.is_absolute() and base_dir is not None:
            key = Path(base_dir) / key
        if not key.is_file():
            problems.append(f"{where}.ssh_key_file: no such file: {key}")
        bootstrap = attrs.evolve(pool.bootstrap, ssh_key_file=str(key))
        pools[name] = attrs.evolve(pool, bootstrap=bootstrap)
    return attrs.evolve(config, pools=pools)


def _check_tls(
    config: Config, base_dir: str | os.PathLike[str] | None, problems: list[str]
) -> Config:
    """Resolves `[server] tls_cert_file` and `tls_key_file` against the file's directory and
    loads them, as the control plane will."""
    server = config.server
    if not server.tls_cert_file or not server.tls_key_file:
        return config
    cert, key = (
        Path(base_dir or ".", Path(name).expanduser())
        for name in (server.tls_cert_file, server.tls_key_file)
    )
    server = attrs.evolve(server, tls_cert_file=str(cert), tls_key_file=str(key))
    try:
        tls_server_context(server)
    except ConfigValueError as exc:
        problems.append(f"server.{exc}")
    return attrs.evolve(config, server=server)


def tls_server_context(server: ServerConfig) -> ssl.SSLContext:
    """The TLS settings of a control plane that serves https with `server`'s certificate and key;
    ConfigValueError names the key whose file is wrong."""
    for key, path in (
        ("tls_cert_file", server.tls_cert_file),
        ("tls_key_file", server.tls_key_file),
    ):
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise ConfigValueError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        # A key that asks for a password is refused rather than prompted for.
        context.load_cert_chain(server.tls_cert_file, server.tls_key_file, password=lambda: b"")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigValueError(
                f"tls_key_file: {server.tls_key_file} is not the private key of "
                f"{server.tls_cert_file}"
            ) from None
        raise ConfigValueError(
            f"tls_cert_file: expected a PEM certificate chain in {server.tls_cert_file} and its "
            f"unencrypted PEM private key in tls_key_file ({server.tls_key_file}), got "
            f"{exc.reason or exc}"
        ) from None
    return context


def _check_policy(
    config: Config, base_dir: str | os.PathLike[str] | None, problems: list[str]
) -> Config:
    """Resolves `[health] policy` against the file's directory and checks the policy in it."""
    if not config.health.policy:
        return config
    path = Path(config.health.policy).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    from navarch.health import load_policy  # imports the CEL engine only when a policy is named

    try:
        load_policy(path)
    except ConfigError as exc:
        problems.extend(f"health.policy: {exc.source}: {problem}" for problem in exc.problems)
    return attrs.evolve(config, health=attrs.evolve(config.health, policy=str(path)))


# Plugin-owned tables.
