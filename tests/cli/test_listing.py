"""What `navarch list` shows: terminated nodes hidden, tables that fit the terminal."""

from __future__ import annotations

import json

import pytest
from support.live_control_plane import LiveControlPlane
from support.navarch_process import run_navarch
from support.waiting import wait_for

from navarch.cli.output import Column, layout

HEADINGS = ["NODE", "STATUS", "HEALTH", "POOL", "PROVIDER", "REGION", "INSTANCE TYPE", "GPUS"]


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.replace("┃", "│").split("│")]


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    with LiveControlPlane(tmp_path / "navarch.db") as live:
        monkeypatch.setenv("NAVARCH_SERVER", live.url)
        for node in ("gpu-1", "gpu-2", "gpu-3"):
            live.start_daemon(node, pool="training-pool-a")
        yield live


def terminate(fleet, run, *nodes: str) -> None:
    for node in nodes:
        assert run("terminate", node)[0] == 0
        wait_for(f"{node} to stop", lambda n=node: fleet.daemons[n].terminated, timeout=10)


def node_ids(out: str) -> list[str]:
    return [cells(line)[0] for line in out.splitlines() if line.startswith(" gpu-")]


def test_list_hides_terminated_nodes_and_says_how_many(fleet, run):
    terminate(fleet, run, "gpu-1", "gpu-3")

    code, out, _ = run("list")
    assert code == 0
    assert node_ids(out) == ["gpu-2"]
    assert out.splitlines()[-1] == "2 terminated nodes hidden; --all shows them"

    code, out, _ = run("list", "--all")
    assert node_ids(out) == ["gpu-1", "gpu-2", "gpu-3"]
    assert "hidden" not in out

    code, out, _ = run("list", "--status", "terminated")
    assert node_ids(out) == ["gpu-1", "gpu-3"]
    assert "hidden" not in out

    code, out, _ = run("list", "-o", "json")
    assert [n["nodeId"] for n in json.loads(out)] == ["gpu-2"]
    code, out, _ = run("list", "-o", "json", "--all")
    assert [n["nodeId"] for n in json.loads(out)] == ["gpu-1", "gpu-2", "gpu-3"]


def test_list_with_only_terminated_nodes_says_so(fleet, run):
    terminate(fleet, run, "gpu-1", "gpu-2", "gpu-3")
    code, out, _ = run("list", "--pool", "training-pool-a")
    assert (code, out) == (0, "no nodes\n3 terminated nodes hidden; --all shows them\n")


@pytest.mark.parametrize("columns", [80, 200])
def test_list_fits_the_terminal_in_a_real_process(fleet, columns):
    env = {"COLUMNS": str(columns), "NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = run_navarch("list", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= columns for line in lines)
    header = cells(lines[0])
    assert not any("…" in heading for heading in header)
    if columns == 200:
        assert header == [*HEADINGS, "HEARTBEAT"]
    else:
        # The instance type goes first; the last heading may be abbreviated.
        assert header[:7] == ["NODE", "STATUS", "HEALTH", "POOL", "PROVIDER", "REGION", "GPUS"]
        assert header[7] in ("HEARTBEAT", "SEEN")
    assert node_ids(result.stdout) == ["gpu-1", "gpu-2", "gpu-3"]

    wide = run_navarch("list", "--wide", env=env)
    assert cells(wide.stdout.splitlines()[0]) == [*HEADINGS, "HEARTBEAT"]


COLUMNS = [
    Column("node", "NODE"),
    Column("status", "STATUS"),
    Column("provider", "PROVIDER", priority=3),
    Column("instance_type", "INSTANCE TYPE", priority=4, short="TYPE"),
    Column("reason", "REASON", priority=1, squeeze_to=10),
]
ROW = ["gpu-node-0001", "unhealthy", "aws", "p5.48xlarge", "x" * 60]


def shown(width: int | None) -> list[tuple[str, int]]:
    return [(x.heading, x.width) for x in layout(COLUMNS, [ROW], width)]


def total(laid: list[tuple[str, int]]) -> int:
    return sum(w for _, w in laid) + 3 * len(laid) - 1


def test_a_wide_terminal_shows_every_column_in_full():
    assert (
        shown(200)
        == shown(None)
        == [
            ("NODE", 13),
            ("STATUS", 9),
            ("PROVIDER", 8),
            ("INSTANCE TYPE", 13),
            ("REASON", 60),
        ]
    )


def test_a_narrower_terminal_abbreviates_then_squeezes_then_leaves_columns_out():
    # Short headings first, then long cells cut, all columns kept while they fit.
    assert shown(80) == [
        ("NODE", 13),
        ("STATUS", 9),
        ("PROVIDER", 8),
        ("TYPE", 11),
        ("REASON", 25),
    ]
    # Then the least important column goes, before any heading is cut.
    assert shown(60) == [("NODE", 13), ("STATUS", 9), ("PROVIDER", 8), ("REASON", 19)]
    assert shown(40) == [("NODE", 13), ("STATUS", 9), ("REASON", 10)]


@pytest.mark.parametrize("width", range(20, 130, 7))
def test_headings_are_never_cut_and_the_table_fits(width):
    laid = shown(width)
    assert all(w >= len(heading) for heading, w in laid)
    assert total(laid) <= width or [h for h, _ in laid] == ["NODE", "STATUS"]
    assert [h for h, _ in laid][:2] == ["NODE", "STATUS"]
