"""`navarch gpus`: what this machine's NVIDIA GPUs report through NVML."""

from __future__ import annotations

from typing import Any

import click

from navarch.cli.output import camel_case, emit, output_option, print_json, wants_json
from navarch.cli.version import echo_rows, telemetry_rows
from navarch.telemetry.nvml import GpuSample, RecoveryAction, inventory
from navarch.telemetry.versions import telemetry_versions

COLUMNS = [
    ("index", "GPU"),
    ("name", "NAME"),
    ("uuid", "UUID"),
    ("pci_bus_id", "BUS ID"),
    ("memory", "MEMORY MiB"),
    ("utilization", "UTIL %"),
    ("temperature", "TEMP C"),
    ("power", "POWER W"),
    ("health", "HEALTH"),
]


@click.command()
@output_option
def gpus(output: str, as_json: bool) -> None:
    """Show this machine's NVIDIA GPUs as NVML reports them.

    The library is libnvidia-ml.so.1, or the file named by NAVARCH_NVML_LIBRARY. Below the
    table come the telemetry backend and the driver and NVML versions, as `navarch version`
    shows them.
    """
    found = inventory()
    as_json = wants_json(output, as_json)
    if found.unavailable is not None:
        message = f"no NVIDIA GPUs found (libnvidia-ml not loaded: {found.unavailable})"
        if as_json:
            print_json([])
            click.echo(message, err=True)
        else:
            click.echo(message)
            _echo_telemetry()
        return
    rows = (
        [camel_case(g.to_json()) for g in found.gpus] if as_json else [_row(g) for g in found.gpus]
    )
    emit(
        rows,
        COLUMNS,
        output=output,
        as_json=as_json,
        empty="no NVIDIA GPUs found (NVML reports 0 devices)",
    )
    if not as_json:
        _echo_telemetry()


def _echo_telemetry() -> None:
    click.echo()
    echo_rows(telemetry_rows(telemetry_versions()))


def _row(g: GpuSample) -> dict[str, Any]:
    return {
        "index": g.index,
        "name": g.name,
        "uuid": g.uuid,
        "pci_bus_id": g.pci_bus_id,
        "memory": _pair(_mib(g.memory_used_bytes), _mib(g.memory_total_bytes)),
        "utilization": g.utilization_gpu_pct,
        "temperature": _pair(g.temperature_c, g.temperature_slowdown_c),
        "power": _pair(_watts(g.power_usage_mw), _watts(g.power_limit_mw)),
        "health": _health(g),
    }


def _health(g: GpuSample) -> str:
    """The signals a person checks first, in words; the JSON output has every number."""
    problems = []
    if g.status:
        problems.append(g.status.name.lower().replace("_", " "))
    if g.ecc_uncorrected_volatile:
        problems.append(f"{g.ecc_uncorrected_volatile} uncorrected ECC errors")
    if g.remapped_rows_failure:
        problems.append("row remapping failed")
    if g.remapped_rows_pending or g.retired_pages_pending:
        problems.append("reset pending")
    down = sum(1 for up in g.nvlink_active if up is False)
    if down:
        problems.append(f"{down} NVLinks down")
    if g.recovery_action:
        try:
            action = RecoveryAction(g.recovery_action).name.lower().replace("_", " ")
        except ValueError:
            action = f"recovery action {g.recovery_action}"
        problems.append(action)
    return ", ".join(problems) or "ok"


def _pair(value: object, limit: object) -> str | None:
    if value is None:
        return None
    return f"{value} / {limit}" if limit is not None else str(value)


def _mib(value: int | None) -> int | None:
    return None if value is None else value // (1024 * 1024)


def _watts(milliwatts: int | None) -> str | None:
    return None if milliwatts is None else f"{milliwatts / 1000:.0f}"
