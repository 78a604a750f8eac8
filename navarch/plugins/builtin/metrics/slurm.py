"""The `slurm` metrics source: pending Slurm jobs that ask for the pool's kind of GPU.

Each round runs `squeue --json` (the `command` setting) and counts the jobs that are pending, in
`partition` when one is set, and that request the generic resource `gres` (`gpu`, or `gpu:h100`
for one type) per node, per job, per socket or per task. A pending job array counts each of its
pending tasks. The JSON is the one Slurm's data_parser plugins write (squeue 23.02 and later;
older releases' plain strings are read too).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import attrs
from attrs import frozen

from navarch.plugins import NavarchError, validators

# The job fields that hold GPU requests, as in "gres/gpu:h100:8" or "gres/gpu=2".
_REQUESTS = ("tres_per_node", "tres_per_job", "tres_per_socket", "tres_per_task")


@frozen(kw_only=True)
class SlurmSettings:
    # The command and its arguments; its output must be squeue's JSON.
    command: tuple[str, ...] = attrs.field(
        default=("squeue", "--json", "--states=PENDING"),
        validator=validators.not_empty("argument"),
    )
    # Count only jobs that may run in this partition; empty counts every partition.
    partition: str = ""
    # The generic resource a job must request: a name ("gpu") or a name and a type ("gpu:h100").
    # A job that asks for any GPU ("gpu:8") matches only the bare name.
    gres: str = "gpu"
    timeout: timedelta = attrs.field(default=timedelta(seconds=5), validator=validators.positive)


class SlurmSource:
    Settings = SlurmSettings

    def __init__(self, settings: SlurmSettings) -> None:
        self.settings = settings

    async def queue_depth(self, pool: str) -> int | None:
        import trio  # here, so that loading the plugin keeps every navarch command fast

        s = self.settings
        shown = " ".join(s.command)
        try:
            with trio.fail_after(s.timeout.total_seconds()):
                done = await trio.run_process(
                    list(s.command), capture_stdout=True, capture_stderr=True, check=False
                )
        except trio.TooSlowError:
            raise NavarchError(
                f"slurm: {shown}: no answer within {s.timeout.total_seconds():g}s"
            ) from None
        except OSError as exc:
            raise NavarchError(f"slurm: {shown}: {exc}") from exc
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()[-300:]
            raise NavarchError(f"slurm: {shown} exited with {done.returncode}: {stderr}")
        try:
            document = json.loads(done.stdout)
        except ValueError:
            raise NavarchError(f"slurm: {shown} did not print JSON; is it squeue --json?") from None
        return pending_jobs(document, s.partition, s.gres, shown)


def pending_jobs(document: Any, partition: str, gres: str, shown: str) -> int:
    """The pending jobs (array tasks each counted) of squeue's JSON that match."""
    if not isinstance(document, dict) or not isinstance(document.get("jobs"), list):
        raise NavarchError(f"slurm: {shown} printed no list of jobs; is it squeue --json?")
    errors = document.get("errors") or []
    if errors:
        first = errors[0]
        text = first.get("description") or first.get("error") if isinstance(first, dict) else first
        raise NavarchError(f"slurm: {shown}: {text}")
    want = _gres(gres)
    count = 0
    for job in document["jobs"]:
        if not isinstance(job, dict) or "PENDING" not in _states(job.get("job_state")):
            continue
        if partition and partition not in str(job.get("partition", "")).split(","):
            continue
        if not any(_matches(request, want) for request in _requests(job)):
            continue
        count += _tasks(str(job.get("array_task_string") or ""))
    return count


def _states(value: object) -> list[str]:
    # A list of flags since 23.02 (["PENDING", "REQUEUED"]); one string before.
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _requests(job: dict[str, Any]) -> list[tuple[str, ...]]:
    """Each generic resource the job asks for, as (name, type) or (name,), without the count."""
    found = []
    for key in _REQUESTS:
        for item in str(job.get(key) or "").split(","):
            item = item.strip().removeprefix("gres/").removeprefix("gres:")
            if item:
                found.append(_gres(item.partition("=")[0]))
    return found


def _gres(text: str) -> tuple[str, ...]:
    parts = text.split(":")
    if len(parts) > 1 and parts[-1].isdigit():
        parts.pop()
    return tuple(parts[:2])


def _matches(request: tuple[str, ...], want: tuple[str, ...]) -> bool:
    return request[: len(want)] == want


def _tasks(text: str) -> int:
    """The number of tasks of a pending array's task string ("1-9:2,12%4"); 1 for a plain job."""
    text = text.partition("%")[0]
    if not text:
        return 1
    count = 0
    for part in text.split(","):
        span, _, step = part.partition(":")
        first, _, last = span.partition("-")
        try:
            count += len(range(int(first), int(last or first) + 1, int(step or 1)))
        except ValueError:
            raise NavarchError(f"slurm: unreadable job array tasks {text!r}") from None
    return count
