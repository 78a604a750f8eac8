"""The package's import rules hold: one direction between layers, built-in plugins on the plugin
surface alone, no cycles among a package's modules (the contracts in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept() -> None:
    # In a process of its own: import-linter configures logging for the whole process.
    checked = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    report = checked.stdout + checked.stderr
    assert checked.returncode == 0, report[-4000:]
    assert "BROKEN" not in report
