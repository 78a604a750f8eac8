"""One way to open a store, whichever database it is on: from a URL or a path.

- `postgresql://...` or `postgres://...` (libpq's URL forms) open a `PostgresStore`;
- `sqlite:PATH`, `sqlite:///ABSOLUTE/PATH` or a plain path open a `SQLiteStore` on that file.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from navarch.redaction import redact_url
from navarch.store.protocol import Store, StoreError
from navarch.store.sqlite import SQLiteStore

_POSTGRES_SCHEMES = ("postgresql", "postgres")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_postgres(target: str) -> bool:
    scheme = _SCHEME.match(target)
    return scheme is not None and scheme.group(1).lower() in _POSTGRES_SCHEMES


def sqlite_path(target: str) -> str | None:
    """The file of a `sqlite:` URL or plain path; None for a URL of another kind.

    A URL of a scheme navarch does not know is a StoreError that names it.
    """
    if target.startswith("sqlite:"):
        path = target.removeprefix("sqlite:")
        # sqlite:///var/lib/navarch.db, as a file URL writes a path, is /var/lib/navarch.db.
        path = path.removeprefix("//")
        if not path:
            raise StoreError(f"{target}: a sqlite store needs a path (sqlite:PATH)")
        return path
    if is_postgres(target):
        return None
    scheme = _SCHEME.match(target)
    if scheme is not None:
        raise StoreError(
            f"{redact_url(target)}: unknown store URL scheme {scheme.group(1)!r}; use "
            "postgresql://... for PostgreSQL, or a path (or sqlite:PATH) for SQLite"
        )
    return target


@asynccontextmanager
async def open_store(
    target: str | Path,
    *,
    threaded: bool = True,
    flush_interval: float = 1.0,
    exclusive: bool = True,
) -> AsyncIterator[Store]:
    """Opens the store at `target`, a PostgreSQL URL or a SQLite path (see the module).

    `exclusive` is the SQLite store's owner lock; several control planes may share a
    PostgreSQL database, and leadership decides which one acts.
    """
    target = str(target)
    path = sqlite_path(target)
    if path is None:
        from navarch.store.postgres import PostgresStore

        async with PostgresStore.open(
            target, threaded=threaded, flush_interval=flush_interval
        ) as pg:
            yield pg
        return
    async with SQLiteStore.open(
        path, threaded=threaded, flush_interval=flush_interval, exclusive=exclusive
    ) as lite:
        yield lite
