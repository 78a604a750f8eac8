"""`navarch version`, run as a user runs it: which navarch, which telemetry, which driver."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from navarch import __version__
from navarch.telemetry import _native

ENV = {"NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1", "COLUMNS": "200"}
NO_DRIVER = {**ENV, "NAVARCH_NVML_LIBRARY": "/nonexistent/libnvidia-ml.so.1"}
BUILTINS = {"autoscalers", "fake_provider", "health_checks", "metrics_sources", "selectors"}

# A libnvidia-ml that knows its versions and nothing else: enough for `navarch version`.
DRIVER_C = r"""
#include <string.h>
int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
int nvmlSystemGetDriverVersion(char *v, unsigned int n) { strncpy(v, "570.124.06", n); return 0; }
int nvmlSystemGetNVMLVersion(char *v, unsigned int n) { strncpy(v, "12.570.124.06", n); return 0; }
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    directory = tmp_path_factory.mktemp("driver")
    source = directory / "driver.c"
    source.write_text(DRIVER_C)
    library = directory / "libnvidia-ml.so.1"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", library, source], check=True)
    return library


def lines(text: str) -> dict[str, str]:
    """`name  value` lines as a mapping; names may hold one space ("NVIDIA driver")."""
    rows = {}
    for line in text.splitlines():
        name, _, value = line.partition("  ")
        rows[name] = value.strip()
    return rows


def test_version_names_the_backend_and_says_the_driver_is_not_found(navarch) -> None:
    result = navarch("version", env=NO_DRIVER)
    assert result.returncode == 0, result.stderr
    shown = lines(result.stdout)
    assert shown["navarch"] == __version__
    if _native.BACKEND == "cffi":
        assert shown["telemetry"] == "compiled extension (navarch._telemetry)"
    else:
        assert shown["telemetry"].startswith("pure-Python fallback: ")
    assert shown["NVIDIA driver"].startswith("not found (/nonexistent/libnvidia-ml.so.1: ")
    assert shown["NVML"] == "not found"
    assert all(f"{name} {__version__} (built-in)" in shown["plugins"] for name in BUILTINS)


def test_version_says_when_the_fallback_runs(navarch) -> None:
    result = navarch("version", env={**NO_DRIVER, "NAVARCH_DISABLE_NATIVE": "1"})
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)["telemetry"] == (
        "pure-Python fallback: disabled by NAVARCH_DISABLE_NATIVE=1"
    )


def test_version_json_in_lower_camel_case(navarch) -> None:
    result = navarch("version", "-o", "json", env={**NO_DRIVER, "NAVARCH_DISABLE_NATIVE": "1"})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    plugins = shown.pop("plugins")
    assert shown.pop("nvmlUnavailable").startswith("/nonexistent/libnvidia-ml.so.1: ")
    assert shown.pop("python")
    assert shown == {
        "version": __version__,
        "telemetryBackend": "python",
        "telemetryFallbackReason": "disabled by NAVARCH_DISABLE_NATIVE=1",
        "nvmlLibrary": "/nonexistent/libnvidia-ml.so.1",
        "nvmlDriverVersion": None,
        "nvmlVersion": None,
    }
    assert {p["name"] for p in plugins if p["builtin"]} >= BUILTINS
    assert set(plugins[0]) == {"name", "distribution", "version", "builtin", "error"}


def test_version_reads_the_driver_and_nvml_versions(navarch, driver: Path) -> None:
    result = navarch("version", env={**ENV, "NAVARCH_NVML_LIBRARY": str(driver)})
    assert result.returncode == 0, result.stderr
    shown = lines(result.stdout)
    assert (shown["NVIDIA driver"], shown["NVML"]) == ("570.124.06", "12.570.124.06")

    as_json = navarch("version", "--json", env={**ENV, "NAVARCH_NVML_LIBRARY": str(driver)})
    facts = json.loads(as_json.stdout)
    assert (facts["nvmlDriverVersion"], facts["nvmlVersion"], facts["nvmlUnavailable"]) == (
        "570.124.06",
        "12.570.124.06",
        None,
    )


def test_gpus_shows_the_same_telemetry_facts(navarch) -> None:
    result = navarch("gpus", env={**NO_DRIVER, "NAVARCH_DISABLE_NATIVE": "1"})
    assert result.returncode == 0, result.stderr
    shown = lines(result.stdout)
    assert shown["telemetry"] == "pure-Python fallback: disabled by NAVARCH_DISABLE_NATIVE=1"
    assert shown["NVML"] == "not found"


def test_version_is_listed_in_help(navarch) -> None:
    result = navarch("--help", env=ENV)
    assert "Show the versions of navarch, its telemetry" in result.stdout
