"""`navarch config check|show`."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from navarch.cli.output import print_json
from navarch.redaction import redact_url

if TYPE_CHECKING:
    from navarch.config import Config


@click.group()
def config() -> None:
    """Check configuration files and show the effective configuration."""


def _read(path: str) -> tuple[Config, list[str]]:
    from navarch.config import read_config
    from navarch.plugins.manager import installed_plugins

    plugins = installed_plugins()
    for info in plugins.broken():
        print(
            f"navarch: warning: plugin {info.name!r} ({info.distribution}) is not loaded: "
            f"{info.error}",
            file=sys.stderr,
        )
    return read_config(path, plugins)


def _load(path: str) -> Config:
    from navarch.errors import ConfigError

    cfg, problems = _read(path)
    if problems:
        raise ConfigError(path, problems)
    return cfg


@config.command()
@click.argument("file", type=click.Path(dir_okay=False))
def check(file: str) -> None:
    """Check FILE and print a short summary; print every problem and exit 2 if it is wrong."""
    from navarch.errors import ConfigError

    cfg, problems = _read(file)
    problems += _provider_problems(cfg, problems)
    if problems:
        raise ConfigError(file, problems)
    pools = ", ".join(
        f"{name} ({p.min_nodes}-{p.max_nodes} nodes)" for name, p in cfg.pools.items()
    )
    providers = ", ".join(f"{name} ({t.type})" for name, t in cfg.providers.items())
    click.echo(f"{file}: ok")
    click.echo(
        f"  server: {cfg.server.listen}, heartbeat every {_d(cfg.server.heartbeat_interval)}"
    )
    shown = redact_url(cfg.store.target) or "(user data directory)"
    click.echo(f"  store: {cfg.store.backend} {shown}")
    click.echo(f"  providers: {providers or 'none'}")
    click.echo(f"  pools: {pools or 'none'}")
    if cfg.notifiers:
        click.echo(f"  notifiers: {', '.join(cfg.notifiers)}")


def _provider_problems(cfg: Config, problems: list[str]) -> list[str]:
    """Builds each provider whose table is sound and asks it what keeps it from working (a
    missing credential)."""
    from navarch.errors import NavarchError
    from navarch.plugins import Provider
    from navarch.pools.providers import provider_problems

    found: list[str] = []
    for name, table in cfg.providers.items():
        path = f"providers.{name}"
        if table.registration is None or any(
            p.startswith((f"{path}.", f"{path}:")) for p in problems
        ):
            continue
        try:
            provider = table.create(Provider)
        except NavarchError as exc:
            found.append(str(exc))
            continue
        found += provider_problems({name: provider})
    return found


@config.command()
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
def show(file: str | None, as_json: bool) -> None:
    """Print the effective configuration of FILE (or the defaults), secrets redacted."""
    from navarch.config import default_config, effective_dict

    cfg = _load(file) if file else default_config()
    data = effective_dict(cfg)
    if as_json:
        print_json(data)
    else:
        click.echo(_to_toml(data), nl=False)


def _d(value: timedelta) -> str:
    from navarch.durations import format_duration

    return format_duration(value)


def _to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for the effective configuration (tables, scalars, arrays)."""
    scalars, tables, table_arrays = [], [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            table_arrays.append((key, value))
        else:
            scalars.append(f"{_key(key)} = {_value(value)}")
    out = ""
    if scalars:
        out += "\n".join(scalars) + "\n"
    for key, value in tables:
        name = f"{prefix}{_key(key)}"
        if any(not isinstance(v, dict) for v in value.values()) or not value:
            out += f"\n[{name}]\n"
        out += _to_toml(value, f"{name}.")
    for key, items in table_arrays:
        for item in items:
            out += f"\n[[{prefix}{_key(key)}]]\n" + _to_toml(item, f"{prefix}{_key(key)}.")
    return out


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else f'"{key}"'


def _value(value: object) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(str(value))
