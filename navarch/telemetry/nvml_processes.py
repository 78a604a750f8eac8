"""The processes that hold a GPU, as NVML lists them: what must end before the GPU is reset.

NVML fills a caller's array and answers INSUFFICIENT_SIZE, with the count, when the processes do
not fit; since processes start between two calls, `list_processes` asks again with room for the
count and a few more, a bounded number of times.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from navarch.telemetry.nvml_codes import NVMLError, Return

# Room for the processes of a busy GPU on the first call, so one call is the usual cost.
FIRST_CAPACITY = 16
# Room added to the count NVML reported, for processes that start before the next call.
SLACK = 8
ATTEMPTS = 5
# NVML_VALUE_NOT_AVAILABLE: the driver cannot tell the process's memory (no permission, MIG).
_NOT_AVAILABLE = 0xFFFFFFFFFFFFFFFF
_NO_INSTANCE = 0xFFFFFFFF
COMPUTE, GRAPHICS = 0, 1


@attrs.frozen
class GpuProcess:
    """A process that holds a GPU."""

    pid: int
    # None where NVML cannot tell (another user's process without the right to see it, MIG).
    used_memory_bytes: int | None
    # "compute" (CUDA) or "graphics"; a process that is both is listed once for each.
    kind: str
    gpu_instance_id: int | None = None  # MIG instance ids; None outside MIG
    compute_instance_id: int | None = None


class ProcessSource(Protocol):
    """navarch_nvml_processes, as either backend's session offers it."""

    def processes(
        self, index: int, kind: int, capacity: int
    ) -> tuple[int, list[tuple[int, int, int, int]], int]: ...


def list_processes(source: ProcessSource, index: int) -> tuple[GpuProcess, ...]:
    """The compute processes, then the graphics processes, on GPU `index`.

    Raises NVMLError when the compute processes cannot be listed. A driver without the graphics
    query, or a GPU that does not support it, has no graphics processes.
    """
    compute = _one_kind(source, index, COMPUTE)
    try:
        graphics = _one_kind(source, index, GRAPHICS)
    except NVMLError as exc:
        if exc.code not in (Return.FUNCTION_NOT_FOUND, Return.NOT_SUPPORTED):
            raise
        graphics = ()
    return compute + graphics


def _one_kind(source: ProcessSource, index: int, kind: int) -> tuple[GpuProcess, ...]:
    capacity = FIRST_CAPACITY
    count = 0
    for _ in range(ATTEMPTS):
        rc, found, count = source.processes(index, kind, capacity)
        if rc == Return.SUCCESS:
            name = "graphics" if kind == GRAPHICS else "compute"
            return tuple(_process(record, name) for record in found)
        if rc != Return.INSUFFICIENT_SIZE:
            raise NVMLError(rc)
        capacity = count + SLACK
    raise NVMLError(
        Return.INSUFFICIENT_SIZE,
        f"GPU {index} had more processes at each of {ATTEMPTS} tries (last count {count})",
    )


def _process(record: tuple[int, int, int, int], kind: str) -> GpuProcess:
    pid, memory, gpu_instance, compute_instance = record
    return GpuProcess(
        pid=pid,
        used_memory_bytes=None if memory == _NOT_AVAILABLE else memory,
        kind=kind,
        gpu_instance_id=None if gpu_instance == _NO_INSTANCE else gpu_instance,
        compute_instance_id=None if compute_instance == _NO_INSTANCE else compute_instance,
    )
