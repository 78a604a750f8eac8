"""`navarch version`: navarch's version, the telemetry code in use, the driver, the plugins."""

from __future__ import annotations

import platform
from typing import Any

import click

from navarch import __version__
from navarch.cli.output import output_option, print_json, wants_json
from navarch.telemetry.versions import TelemetryVersions, telemetry_versions

NOT_FOUND = "not found"


@click.command()
@output_option
def version(output: str, as_json: bool) -> None:
    """Show navarch's version, the telemetry backend, the NVIDIA driver and the plugins.

    The telemetry backend is the compiled extension navarch._telemetry, or the pure-Python
    fallback where the extension was not built. The driver and NVML versions come from
    libnvidia-ml.so.1, or the file named by NAVARCH_NVML_LIBRARY.
    """
    from navarch.plugins.manager import installed_plugins

    facts = telemetry_versions()
    plugins = [
        {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "builtin": info.builtin,
            "error": info.error or None,
        }
        for info in installed_plugins()
    ]
    if wants_json(output, as_json):
        print_json(
            {
                "version": __version__,
                "python": platform.python_version(),
                **telemetry_json(facts),
                "plugins": plugins,
            }
        )
        return
    rows = [
        ("navarch", __version__),
        ("python", platform.python_version()),
        *telemetry_rows(facts),
        ("plugins", ", ".join(_plugin_text(p) for p in plugins) or "none"),
    ]
    echo_rows(rows)


def echo_rows(rows: list[tuple[str, str]]) -> None:
    """`name  value` lines, the values in one column."""
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name.ljust(width)}  {value}")


def telemetry_json(facts: TelemetryVersions) -> dict[str, Any]:
    return {
        "telemetryBackend": facts.backend,
        "telemetryFallbackReason": facts.fallback_reason,
        "nvmlLibrary": facts.library,
        "nvmlDriverVersion": facts.driver_version,
        "nvmlVersion": facts.nvml_version,
        "nvmlUnavailable": facts.unavailable,
    }


def telemetry_rows(facts: TelemetryVersions) -> list[tuple[str, str]]:
    """The telemetry facts as (name, words) rows, shared with `navarch gpus`."""
    if facts.unavailable is not None:
        missing = f"{NOT_FOUND} ({facts.unavailable})"
        driver, nvml = missing, NOT_FOUND
    else:
        driver = facts.driver_version or f"{NOT_FOUND} (libnvidia-ml does not report it)"
        nvml = facts.nvml_version or f"{NOT_FOUND} (libnvidia-ml does not report it)"
    return [
        ("telemetry", facts.backend_text),
        ("NVIDIA driver", driver),
        ("NVML", nvml),
    ]


def _plugin_text(plugin: dict[str, Any]) -> str:
    text = f"{plugin['name']} {plugin['version']}".rstrip()
    if plugin["builtin"]:
        text += " (built-in)"
    if plugin["error"]:
        text += f" (failed: {plugin['error']})"
    return text
