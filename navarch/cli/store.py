"""`navarch store backup`: a checked copy of the control plane's store, taken while it runs."""

from __future__ import annotations

import click


@click.group()
def store() -> None:
    """Back up the control plane's SQLite store."""


@store.command()
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False),
    help="The SQLite store to back up. Overrides the [store] path of --config.",
)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="The control plane's configuration file, whose [store] path names the store.",
)
def backup(dest: str, store_path: str | None, config_path: str | None) -> None:
    """Copy the store to DEST and check the copy; the control plane may keep running.

    Without --store or --config, the store is the control plane's default,
    $XDG_DATA_HOME/navarch/navarch.db. DEST is replaced only by a copy that passed its checks.
    """
    from navarch.api.server import default_store_path
    from navarch.config import load_config
    from navarch.store.backup import backup as back_up

    if store_path is None:
        configured = load_config(config_path).store.path if config_path else ""
        store_path = configured or str(default_store_path())
    copy = back_up(store_path, dest)
    click.echo(
        f"backed up {store_path} to {copy.path}: schema version {copy.schema_version}, "
        f"{copy.nodes} nodes, {copy.size_bytes} bytes"
    )
