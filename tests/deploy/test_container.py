"""What can be checked of deploy/container/Containerfile without a container engine: the files it
builds from reach the build context, its command line parses, and its health check passes
against a real control plane and fails without one."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

from support.control_plane_process import control_plane_process
from support.fleet import free_port
from support.navarch_process import run_navarch

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "deploy" / "container" / "Containerfile"
# What `pip wheel /src` reads from the build context.
BUILT_FROM = [
    "pyproject.toml",
    "setup.py",
    "build.py",
    "MANIFEST.in",
    "README.md",
    "csrc",
    "navarch",
]


def _instructions() -> dict[str, list[str]]:
    """Each instruction's arguments by instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text())
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, rest = line.strip().partition(" ")
            found.setdefault(name, []).append(rest.strip())
    return found


def _ignored(name: str) -> bool:
    patterns = [
        line.strip().lstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def test_the_wheel_is_built_from_files_that_reach_the_build_context():
    assert ". /src" in _instructions()["COPY"]
    for name in BUILT_FROM:
        assert (REPO / name).exists(), name
        assert not _ignored(name), f".dockerignore leaves out {name}"
    assert _ignored(".venv") and _ignored(".git")


def test_the_command_line_parses():
    entrypoint = json.loads(_instructions()["ENTRYPOINT"][-1])
    cmd = json.loads(_instructions()["CMD"][-1])
    assert entrypoint[:2] == ["navarch", "control-plane"]
    result = run_navarch(*entrypoint[1:], *cmd, "--help")
    assert result.returncode == 0, result.stderr


def _health_check(url: str) -> int:
    [check] = _instructions()["HEALTHCHECK"]
    command = json.loads(check.partition(" CMD ")[2])
    assert command[0] == "python"
    return subprocess.run(
        [sys.executable, *command[1:]],
        env={"NAVARCH_READYZ": url},
        capture_output=True,
        timeout=30,
        check=False,
    ).returncode


def test_the_health_check_asks_a_ready_control_plane(tmp_path):
    [default] = [e for e in _instructions()["ENV"] if e.startswith("NAVARCH_READYZ=")]
    assert default == "NAVARCH_READYZ=http://127.0.0.1:50051/readyz"
    listen = f"127.0.0.1:{free_port()}"
    with control_plane_process("--listen", listen, "--data-dir", str(tmp_path)) as (_, url, _):
        assert _health_check(f"{url}/readyz") == 0
    assert _health_check(f"{url}/readyz") != 0
