"""The built-in `slurm` metrics source, against a fake `squeue` that prints recorded output.

data/squeue_pending.json is `squeue --json` output in the schema of Slurm 24.05's data_parser
v0.0.41. It holds a running job too, as the squeue of releases that ignore filters with --json
prints it.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from support.pool_config import pool_config

from navarch.config import parse_config
from navarch.errors import ConfigError, NavarchError
from navarch.plugins import MetricsSource
from navarch.plugins.builtin.metrics.slurm import pending_jobs

RECORDED = Path(__file__).parent / "data" / "squeue_pending.json"


def fake_squeue(tmp_path: Path, body: str) -> Path:
    """An executable that logs its arguments to `args` and runs the shell `body`."""
    script = tmp_path / "squeue"
    script.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "args"}\n{body}\n')
    script.chmod(0o755)
    return script


def source(plugins, command: Path, extra: str = ""):
    table = f'[pools.p.metrics]\ntype = "slurm"\ncommand = ["{command}", "--json"]\n{extra}'
    return pool_config(plugins, table).metrics.create(MetricsSource)


@pytest.mark.parametrize(
    ("partition", "gres", "expected"),
    [
        # 1001, the four pending tasks of array 1004, 1007 (per task) and 1008 (requeued).
        ("", "gpu:h100", 7),
        ("gpu", "gpu:h100", 6),
        # Every pending job with a GPU: 1006 asks for 16 of any type, per job.
        ("", "gpu", 9),
        ("gpu-spot", "gpu", 1),
        ("gpu", "gpu:a100", 1),
        ("gpu", "gpu:l4", 0),
    ],
)
async def test_pending_jobs_that_ask_for_the_gres(plugins, tmp_path, partition, gres, expected):
    squeue = fake_squeue(tmp_path, f"cat {shlex.quote(str(RECORDED))}")
    extra = f'partition = "{partition}"\ngres = "{gres}"\n'
    assert await source(plugins, squeue, extra).queue_depth("p") == expected
    assert (tmp_path / "args").read_text() == "--json\n"


def test_older_releases_strings_and_array_task_strings() -> None:
    jobs = [
        {"job_state": "PENDING", "partition": "gpu", "tres_per_node": "gpu:h100:2"},
        {"job_state": "PENDING", "partition": "gpu", "tres_per_node": "gres:gpu:h100"},
        {"job_state": "PENDING", "tres_per_node": "gres/gpu:h100=1", "array_task_string": "1-9:2"},
        {
            "job_state": "PENDING",
            "tres_per_node": "gres/gpu:h100:8",
            "array_task_string": "0,3,10-11%2",
        },
        {"job_state": "RUNNING", "tres_per_node": "gres/gpu:h100:8"},
    ]
    assert pending_jobs({"jobs": jobs}, "", "gpu:h100", "squeue") == 1 + 1 + 5 + 4


async def test_a_failing_squeue_is_a_clear_error(plugins, tmp_path: Path) -> None:
    stderr = "squeue: error: slurm_load_jobs error: Unable to contact slurm controller"
    squeue = fake_squeue(tmp_path, f"echo '{stderr}' >&2\nexit 1")
    with pytest.raises(NavarchError) as caught:
        await source(plugins, squeue).queue_depth("p")
    assert str(caught.value) == f"slurm: {squeue} --json exited with 1: {stderr}"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("JOBID PARTITION NAME", " did not print JSON; is it squeue --json?"),
        ('{"sinfo": []}', " printed no list of jobs; is it squeue --json?"),
        (
            json.dumps({"jobs": [], "errors": [{"description": "Invalid user", "error": "x"}]}),
            ": Invalid user",
        ),
    ],
)
async def test_output_that_is_not_a_job_list_is_a_clear_error(plugins, tmp_path, output, message):
    squeue = fake_squeue(tmp_path, f"echo {shlex.quote(output)}")
    with pytest.raises(NavarchError) as caught:
        await source(plugins, squeue).queue_depth("p")
    assert str(caught.value) == f"slurm: {squeue} --json{message}"


async def test_a_missing_or_slow_command(plugins, tmp_path: Path) -> None:
    with pytest.raises(NavarchError, match="No such file or directory"):
        await source(plugins, tmp_path / "nowhere").queue_depth("p")
    squeue = fake_squeue(tmp_path, "sleep 10")
    with pytest.raises(NavarchError, match=r"--json: no answer within 0\.2s"):
        await source(plugins, squeue, 'timeout = "200ms"\n').queue_depth("p")


def test_its_table_is_checked(plugins) -> None:
    text = (
        '[providers.fake]\n[pools.p]\ninstance_type = "h100-8x"\n'
        '[[pools.p.providers]]\nprovider = "fake"\n'
        '[pools.p.metrics]\ntype = "slurm"\ncommand = []\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=plugins)
    assert caught.value.problems == [
        "pools.p.metrics.command: expected at least one argument, got none"
    ]
