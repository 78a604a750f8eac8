from __future__ import annotations

import json
import subprocess
import sys

from navarch import __version__


def test_help_lists_commands(navarch):
    result = navarch("--help")
    assert result.returncode == 0
    assert "config" in result.stdout
    assert "plugins" in result.stdout


def test_version(navarch):
    result = navarch("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"navarch, version {__version__}"


def test_unknown_command_is_a_usage_error(navarch):
    result = navarch("frobnicate")
    assert result.returncode == 2
    assert "navarch: No such command 'frobnicate'." in result.stderr
    assert "Traceback" not in result.stderr


def test_json_alias_and_output_option_agree(navarch):
    a = navarch("plugins", "--json")
    b = navarch("plugins", "-o", "json")
    assert a.returncode == b.returncode == 0
    assert json.loads(a.stdout) == json.loads(b.stdout)


def test_bad_output_format_is_a_usage_error(navarch):
    result = navarch("plugins", "-o", "yaml")
    assert result.returncode == 2
    assert "'yaml' is not one of 'table', 'json'" in result.stderr


def test_help_does_not_import_the_runtime():
    code = (
        "import sys; from navarch.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('trio', 'httpx', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_every_command_has_a_summary_and_imports():
    import importlib

    from navarch.cli import COMMANDS, SUMMARIES

    assert set(SUMMARIES) == set(COMMANDS)
    for target in COMMANDS.values():
        module_name, attr = target.split(":")
        assert getattr(importlib.import_module(module_name), attr) is not None
