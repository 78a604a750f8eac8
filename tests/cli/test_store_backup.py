"""`navarch store backup` copies a live store and checks the copy; the copy runs a control
plane."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from support.control_plane_process import control_plane_process
from support.fleet import ADMIN_TOKEN, JOIN_TOKEN, Fleet, free_port
from support.navarch_process import run_navarch

from navarch.store import schema


def _store(path: Path) -> Path:
    """A store at the newest schema, as a control plane leaves it."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        schema.migrate(conn, str(path))
    return path


@pytest.mark.slow
def test_a_backup_taken_while_the_control_plane_runs_starts_a_control_plane(tmp_path):
    fleet = Fleet(tmp_path, auth=True)
    backup = tmp_path / "backups" / "navarch.db"
    backup.parent.mkdir()
    try:
        fleet.start_control_plane()
        fleet.start_daemon("gpu-1")
        fleet.start_daemon("gpu-2")
        fleet.wait_status("gpu-1", "ACTIVE")
        fleet.wait_status("gpu-2", "ACTIVE")
        store = fleet.data_dir / "navarch.db"

        result = run_navarch("store", "backup", str(backup), "--store", str(store))

        assert result.returncode == 0, result.stderr
        assert re.fullmatch(
            rf"backed up {re.escape(str(store))} to {re.escape(str(backup))}: schema version "
            rf"{schema.latest_version()}, 2 nodes, \d+ bytes\n",
            result.stdout,
        )
        # One self-contained file, and the control plane never noticed.
        assert sorted(p.name for p in backup.parent.iterdir()) == ["navarch.db"]
        assert fleet.cli("list").returncode == 0
    finally:
        fleet.stop()

    env = {
        "NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN,
        "NAVARCH_JOIN_TOKEN": JOIN_TOKEN,
        "NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    listen = f"127.0.0.1:{free_port()}"
    args = ("--listen", listen, "--data-dir", str(backup.parent))
    with control_plane_process(*args, env=env) as (_, url, _):
        listed = run_navarch("list", "--all", "-o", "json", env={**env, "NAVARCH_SERVER": url})
    assert listed.returncode == 0, listed.stderr
    assert sorted(node["nodeId"] for node in json.loads(listed.stdout)) == ["gpu-1", "gpu-2"]


def test_the_store_of_a_configuration_file(run, tmp_path):
    store = _store(tmp_path / "cp.db")
    config = tmp_path / "navarch.toml"
    config.write_text(f"[store]\npath = {json.dumps(str(store))}\n")
    dest = tmp_path / "copy.db"

    code, out, err = run("store", "backup", str(dest), "-c", str(config))

    assert (code, err) == (0, "")
    assert out.startswith(f"backed up {store} to {dest}: schema version ")
    with closing(sqlite3.connect(dest)) as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_a_good_backup_replaces_an_older_one(run, tmp_path):
    store = _store(tmp_path / "navarch.db")
    dest = tmp_path / "copy.db"
    dest.write_text("yesterday's backup")

    code, _, err = run("store", "backup", str(dest), "--store", str(store))

    assert (code, err) == (0, "")
    with closing(sqlite3.connect(dest)) as copy:
        assert copy.execute("SELECT MAX(version) FROM schema_version").fetchone() == (
            schema.latest_version(),
        )


def test_what_is_not_a_store_is_refused_and_an_older_backup_is_kept(run, tmp_path):
    dest = tmp_path / "copy.db"
    dest.write_text("yesterday's backup")
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")

    missing = run("store", "backup", str(dest), "--store", str(tmp_path / "none.db"))
    assert missing == (1, "", f"navarch: {tmp_path / 'none.db'}: no store there\n")

    foreign = run("store", "backup", str(dest), "--store", str(other))
    assert foreign == (
        1,
        "",
        f"navarch: cannot back up {other} to {dest}: it holds no navarch schema; is it a navarch "
        "store?\n",
    )

    itself = run("store", "backup", str(other), "--store", str(other))
    assert itself == (
        1,
        "",
        f"navarch: {other}: is the store itself; back it up to another file\n",
    )
    assert dest.read_text() == "yesterday's backup"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db", "other.db"]
