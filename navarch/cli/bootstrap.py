"""`navarch bootstrap render`: the script a pool's new machines run, for inspection."""

from __future__ import annotations

import click


@click.group()
def bootstrap() -> None:
    """Show what a pool's new machines run to install navarch's daemon."""


@bootstrap.command()
@click.option("--pool", "pool_name", required=True, help="The pool whose script to show.")
@click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default="navarch.toml",
    show_default=True,
    help="The control plane's configuration file.",
)
def render(pool_name: str, config_file: str) -> None:
    """Print the bootstrap script of POOL's new machines.

    It is the user-data a cloud-init pool hands the cloud, and what an SSH pool runs after its
    setup_commands. Each machine's copy carries a one-time token of its own; this one shows a
    placeholder where the token goes.
    """
    from navarch.cli.config import _load
    from navarch.config import bootstrap_method
    from navarch.errors import UsageError
    from navarch.hints import did_you_mean
    from navarch.pools.bootstrap_script import TOKEN_PLACEHOLDER, render_script

    config = _load(config_file)
    pool = config.pools.get(pool_name)
    if pool is None:
        known = ", ".join(sorted(config.pools)) or "none"
        raise UsageError(
            f"{config_file}: no pool {pool_name!r}{did_you_mean(pool_name, config.pools)}; "
            f"pools: {known}"
        )
    if config.bootstrap is None or bootstrap_method(config, pool) == "none":
        raise UsageError(
            f"{config_file}: pool {pool_name} installs nothing on its machines; add a "
            "[bootstrap] table with control_plane_url to bootstrap them"
        )
    click.echo(render_script(config.bootstrap, pool_name, pool, TOKEN_PLACEHOLDER), nl=False)
