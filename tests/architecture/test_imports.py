"""The package's import rules hold: one direction between layers, built-in plugins on the plugin
surface alone, no cycles among a package's modules (the contracts in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # import-linter reads pyproject.toml from the working directory
    status = lint_imports(no_cache=True)
    report = capsys.readouterr().out
    assert status == 0, report[-4000:]
    assert "BROKEN" not in report
