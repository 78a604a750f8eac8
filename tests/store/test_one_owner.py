"""One store, one owner: a second control plane on the same SQLite file stops with one line."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
import trio
from support.control_plane_process import control_plane_process
from support.navarch_process import run_navarch

from navarch.store import SQLiteStore
from navarch.store.lock import StoreInUse

NO_TOKENS = {"NAVARCH_ADMIN_TOKEN": "", "NAVARCH_JOIN_TOKEN": ""}


@pytest.mark.slow
def test_a_second_control_plane_on_the_same_store_stops_and_the_first_goes_on(tmp_path: Path):
    data = tmp_path / "data"
    args = ("--listen", "127.0.0.1:0", "--data-dir", str(data))
    with control_plane_process(*args, env=NO_TOKENS) as (first, url, store):
        second = run_navarch("control-plane", *args, env=NO_TOKENS, timeout=30)
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0].startswith(f"navarch: {store} is in use by another navarch process (pid ")
        assert f"pid {first.pid} on " in lines[0]
        assert lines[0].endswith(
            "stop it first, or give this one a store of its own (--data-dir or [store] path)"
        )
        # The first is unaffected.
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        assert first.poll() is None
    # Once the first has stopped, the store is free again.
    with control_plane_process(*args, env=NO_TOKENS) as (_, _, again):
        assert again == store


async def test_the_lock_goes_with_the_store_and_refuses_a_second_owner(tmp_path: Path):
    path = tmp_path / "navarch.db"
    async with SQLiteStore.open(path, threaded=False):
        with pytest.raises(StoreInUse) as refused:
            async with SQLiteStore.open(path, threaded=False):
                pass
        assert f"pid {os.getpid()} on " in str(refused.value)
        # A look at a store another owns takes no lock.
        async with SQLiteStore.open(path, threaded=False, exclusive=False) as reader:
            assert (await reader.load()).nodes == ()
    async with SQLiteStore.open(path, threaded=False):
        await trio.lowlevel.checkpoint()
