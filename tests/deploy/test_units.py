"""The systemd units of deploy/systemd pass `systemd-analyze verify`, and their navarch command
lines are ones navarch accepts."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.navarch_process import run_navarch

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNITS = sorted(SYSTEMD.glob("navarch-*.*"))
INSTALLED = "/usr/local/bin/navarch"
# The navarch of this environment; verify checks that each command exists and is executable.
NAVARCH = Path(sys.executable).with_name("navarch")

# CI installs systemd-analyze and sets NAVARCH_REQUIRE_SYSTEMD_ANALYZE=1, so there these run.
needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None
    and os.environ.get("NAVARCH_REQUIRE_SYSTEMD_ANALYZE") != "1",
    reason="systemd-analyze is not installed",
)


def _verify(units: list[Path], directory: Path) -> list[str]:
    """What `systemd-analyze verify` says about copies of `units` that run this navarch."""
    copies = []
    for unit in units:
        copy = directory / unit.name
        copy.write_text(unit.read_text().replace(INSTALLED, str(NAVARCH)))
        copies.append(str(copy))
    result = subprocess.run(
        ["systemd-analyze", "verify", *copies],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Warnings leave the exit status 0, so every line about one of these units is a failure;
    # lines about the host's own units are not this test's business.
    said = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if any(unit.name in line for unit in units)
    ]
    if result.returncode != 0 and not said:
        said = [f"exit status {result.returncode}: {result.stderr.strip()}"]
    return said


def test_the_units_are_there():
    assert [unit.name for unit in UNITS] == [
        "navarch-backup.service",
        "navarch-backup.timer",
        "navarch-controlplane.service",
        "navarch-daemon.service",
    ]


@needs_systemd_analyze
def test_every_unit_verifies(tmp_path):
    assert _verify(UNITS, tmp_path) == []


@needs_systemd_analyze
def test_a_broken_unit_fails_the_check(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    unit = broken / "navarch-controlplane.service"
    text = (SYSTEMD / unit.name).read_text()
    unit.write_text(text.replace("ProtectSystem=strict", "ProtectSytem=strict"))
    said = _verify([unit], tmp_path)
    assert len(said) == 1 and "Unknown key 'ProtectSytem'" in said[0], said

    unit.write_text(text.replace(INSTALLED, "/nonexistent/navarch"))
    said = _verify([unit], tmp_path)
    assert said and "/nonexistent/navarch" in said[0], said


def _navarch_command_lines(unit: Path) -> list[list[str]]:
    """The arguments of every navarch command that `unit` runs, directly or through sh -c."""
    lines = []
    for key, value in re.findall(r"^(ExecStart\w*)=(.*)$", unit.read_text(), flags=re.M):
        words = shlex.split(value)
        if words[:2] == ["/bin/sh", "-c"]:
            words = shlex.split(words[2].removeprefix("exec "))
        if words[0] == INSTALLED:
            lines.append(words[1:])
        else:
            assert key != "ExecStart" or unit.name.endswith(".timer"), f"{unit.name}: {value}"
    return lines


@pytest.mark.parametrize("unit", [u for u in UNITS if u.suffix == ".service"], ids=lambda u: u.name)
def test_the_navarch_command_line_parses(unit):
    lines = _navarch_command_lines(unit)
    assert lines, f"{unit.name} runs no navarch command"
    for args in lines:
        # --help after the arguments: click refuses an unknown command or option before it helps.
        result = run_navarch(*args, "--help", env={"NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout.startswith("Usage: navarch "), result.stdout
