from __future__ import annotations

import pytest

from navarch.cli import main


@pytest.fixture
def run(capsys, monkeypatch):
    """Runs `navarch ARGS` in process; returns (exit status, stdout, stderr)."""
    monkeypatch.delenv("NAVARCH_TOKEN", raising=False)
    monkeypatch.delenv("NAVARCH_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("NAVARCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run
