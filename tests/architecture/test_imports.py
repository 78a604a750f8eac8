"""The package's import rules hold: one direction between layers, built-in plugins on the plugin
surface alone, no cycles among a package's modules (the contracts in pyproject.toml)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def loggers_kept() -> Iterator[None]:
    """Enables again the loggers that import-linter's `dictConfig` disables, so the tests that
    run later still see navarch's log records."""
    enabled = [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.disabled
    ]
    yield
    for logger in enabled:
        logger.disabled = False


def test_the_import_contracts_are_kept(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, loggers_kept: None
) -> None:
    monkeypatch.chdir(REPO)  # import-linter reads pyproject.toml from the working directory
    status = lint_imports(no_cache=True)
    report = capsys.readouterr().out
    assert status == 0, report[-4000:]
    assert "BROKEN" not in report
