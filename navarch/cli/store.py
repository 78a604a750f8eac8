"""`navarch store backup`: a checked copy of the control plane's store, taken while it runs;
`navarch store migrate`: the store moved from SQLite to PostgreSQL."""

from __future__ import annotations

import click


@click.group()
def store() -> None:
    """Back up the control plane's SQLite store, or move it to PostgreSQL."""


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
    from navarch.errors import UsageError
    from navarch.store.backup import backup as back_up
    from navarch.store.open import sqlite_path

    if store_path is None:
        configured = load_config(config_path).store.target if config_path else ""
        store_path = configured or str(default_store_path())
    path = sqlite_path(store_path)
    if path is None:
        raise UsageError(
            "the store is a PostgreSQL database; back it up with PostgreSQL's tools (pg_dump)"
        )
    store_path = path
    copy = back_up(store_path, dest)
    click.echo(
        f"backed up {store_path} to {copy.path}: schema version {copy.schema_version}, "
        f"{copy.nodes} nodes, {copy.size_bytes} bytes"
    )


@store.command()
@click.option(
    "--from",
    "source",
    required=True,
    metavar="sqlite:PATH",
    help="The SQLite store to move (sqlite:PATH, or a path). No control plane may run on it.",
)
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL",
    help="The PostgreSQL database to move it to: postgresql://USER@HOST:PORT/DB.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Replace what the database already holds; without it, a database with state is refused.",
)
def migrate(source: str, target: str, replace: bool) -> None:
    """Copy every row of a SQLite store into a PostgreSQL database, in one transaction.

    Stop the control plane first. The SQLite store is left as it was; point the control plane at
    the database afterwards ([store] url or --store).
    """
    import trio

    from navarch.errors import UsageError
    from navarch.redaction import redact_url
    from navarch.store.open import is_postgres, sqlite_path

    path = sqlite_path(source)
    if path is None:
        raise UsageError(
            f"--from: expected a SQLite store (sqlite:PATH or a path), got {redact_url(source)}"
        )
    if not is_postgres(target):
        raise UsageError("--to: expected a postgresql:// URL")
    from navarch.store.postgres_import import import_sqlite

    moved = trio.run(lambda: import_sqlite(path, target, replace=replace))
    click.echo(f"moved {path} to {moved.location} in one transaction:")
    for table, count in moved.rows.items():
        click.echo(f"  {table}: {count} rows")
