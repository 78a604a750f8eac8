"""A control plane keeps its state in PostgreSQL when `[store] url` or `--store` names a database,
and shows the URL without its credentials."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest
from support.control_plane_process import control_plane_process
from support.navarch_process import run_navarch
from support.postgres import fresh_database

from navarch.store import StoreError
from navarch.store.open import is_postgres, sqlite_path

NO_TOKENS = {"NAVARCH_ADMIN_TOKEN": "", "NAVARCH_JOIN_TOKEN": ""}
SERVICE = "/navarch.v1.ControlPlaneService/"


def _with_password(url: str) -> str:
    # Trust authentication: the server never asks for it, so only its display is at stake.
    return url.replace("postgres@", "postgres:not-for-logs@")


@pytest.mark.slow
def test_a_control_plane_on_a_postgresql_url_keeps_its_fleet_there(tmp_path: Path) -> None:
    with fresh_database() as url:
        config = tmp_path / "navarch.toml"
        config.write_text(f'[store]\nurl = "{_with_password(url)}"\n')
        shown = url.replace("postgres@", "<redacted>@")
        with control_plane_process(
            "--listen", "127.0.0.1:0", "--config", str(config), env=NO_TOKENS
        ) as (
            _,
            api,
            store,
        ):
            assert store == shown
            reply = httpx.post(f"{api}{SERVICE}RegisterNode", json={"nodeId": "gpu-1"}, timeout=10)
            assert reply.status_code == 200, reply.text
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT node_id FROM nodes").fetchall() == [("gpu-1",)]

        # --store names the same database; the fleet is there.
        args = ("--listen", "127.0.0.1:0", "--store", _with_password(url))
        with control_plane_process(*args, env=NO_TOKENS) as (_, api, store):
            assert store == shown
            listed = httpx.post(f"{api}{SERVICE}ListNodes", json={}, timeout=10).json()
            assert [n["nodeId"] for n in listed["nodes"]] == ["gpu-1"]


def test_a_store_url_of_another_kind_is_one_line_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "navarch.toml"
    config.write_text('[store]\nurl = "mysql://root:hunter2@db/navarch"\n')
    checked = run_navarch("config", "check", str(config))
    assert checked.returncode == 2
    assert 'store.url: expected a postgresql:// URL, got "mysql://<redacted>@db/navarch"' in (
        checked.stdout + checked.stderr
    )
    assert "hunter2" not in checked.stdout + checked.stderr
    started = run_navarch("control-plane", "--store", "mysql://root:hunter2@db/navarch")
    assert started.returncode == 1
    assert started.stderr.strip().splitlines() == [
        "navarch: mysql://<redacted>@db/navarch: unknown store URL scheme 'mysql'; use "
        "postgresql://... for PostgreSQL, or a path (or sqlite:PATH) for SQLite"
    ]


def test_store_backup_refuses_a_postgresql_store_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "navarch.toml"
    config.write_text('[store]\nurl = "postgresql://navarch@db.internal/navarch"\n')
    for args in (("-c", str(config)), ("--store", "postgresql://navarch@db.internal/navarch")):
        refused = run_navarch("store", "backup", str(tmp_path / "copy.db"), *args)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            "navarch: the store is a PostgreSQL database; back it up with PostgreSQL's tools "
            "(pg_dump)"
        ]
        assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/var/lib/navarch/navarch.db", "/var/lib/navarch/navarch.db"),
        ("navarch.db", "navarch.db"),
        ("sqlite:navarch.db", "navarch.db"),
        ("sqlite:///var/lib/navarch/navarch.db", "/var/lib/navarch/navarch.db"),
        ("postgresql://navarch@db/navarch", None),
        ("POSTGRES://navarch@db/navarch", None),
    ],
)
def test_a_store_target_is_a_sqlite_path_or_a_postgresql_url(target: str, path: str | None) -> None:
    assert sqlite_path(target) == path
    assert is_postgres(target) is (path is None)


def test_a_sqlite_url_without_a_path_is_refused() -> None:
    with pytest.raises(StoreError, match=r"^sqlite:: a sqlite store needs a path \(sqlite:PATH\)$"):
        sqlite_path("sqlite:")
