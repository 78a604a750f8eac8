"""A consistent copy of a SQLite store, taken while its control plane runs.

SQLite's online backup API copies the database as one read transaction sees it. In WAL mode
that transaction blocks no writer, so the control plane keeps writing while the copy is made;
the copy takes neither the store's owner lock (`navarch.store.lock`) nor a write lock. The copy
is written beside the destination, checked (`integrity_check`, a navarch schema version), and
only then renamed into place, so an earlier backup of the same name is replaced by a good one
or not at all.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from attrs import frozen

from navarch.store.protocol import StoreError


@frozen
class Backup:
    path: str
    schema_version: int
    nodes: int
    size_bytes: int


def backup(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Backup:
    """Copies the store at `source` to `dest` and checks the copy; StoreError says what failed."""
    source_path, dest_path = Path(source), Path(dest)
    if not source_path.is_file():
        raise StoreError(f"{source_path}: no store there")
    if dest_path.exists() and dest_path.resolve() == source_path.resolve():
        raise StoreError(f"{dest_path}: is the store itself; back it up to another file")
    partial = dest_path.with_name(f".{dest_path.name}.partial")
    try:
        _copy(source_path, partial)
        version, nodes = _check(partial)
        # The store holds who may call the API; its copy is as private as the store.
        partial.chmod(source_path.stat().st_mode & 0o777)
        os.replace(partial, dest_path)
    except (sqlite3.Error, StoreError) as exc:
        raise StoreError(f"cannot back up {source_path} to {dest_path}: {exc}") from None
    except OSError as exc:
        raise StoreError(
            f"cannot back up {source_path} to {dest_path}: {exc.strerror or exc}"
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return Backup(str(dest_path), version, nodes, dest_path.stat().st_size)


def _copy(source: Path, dest: Path) -> None:
    dest.unlink(missing_ok=True)
    # Read-only, so that a wrong path is not created as an empty database.
    with (
        closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)) as src,
        closing(sqlite3.connect(dest)) as dst,
    ):
        src.execute("PRAGMA busy_timeout = 5000")
        # All pages in one step: a step-by-step copy starts over whenever the store is written.
        src.backup(dst)
        # The copy is one self-contained file, without a write-ahead log beside it.
        dst.execute("PRAGMA journal_mode = DELETE")


def _check(path: Path) -> tuple[int, int]:
    """(schema version, nodes) of a copy that SQLite finds intact; StoreError otherwise."""
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
        problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise StoreError(f"the copy is damaged ({'; '.join(problems[:5])})")
        try:
            version = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            nodes = db.execute("SELECT COUNT(*) FROM nodes").fetchone()[0]
        except sqlite3.OperationalError:
            raise StoreError("it holds no navarch schema; is it a navarch store?") from None
    return int(version), int(nodes)
