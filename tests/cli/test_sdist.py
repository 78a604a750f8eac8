"""The sdist carries what the README's and the guide's commands need, and says when it falls back.

The README starts a local fleet with `navarch control-plane --config examples/local-fleet.toml`;
from an unpacked sdist that command works as it does from a clone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support.control_plane_process import control_plane_process
from support.fleet import free_port
from support.navarch_process import REPO

pytestmark = pytest.mark.slow

NAVARCH = Path(sys.executable).with_name("navarch")


def _build(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "build", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**_without_required_extensions(), **(env or {})},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _without_required_extensions() -> dict[str, str]:
    """This process's environment less NAVARCH_REQUIRE_EXTENSIONS, which CI sets so that its own
    install fails without the extension; these builds are a user's, who may have no compiler."""
    return {k: v for k, v in os.environ.items() if k != "NAVARCH_REQUIRE_EXTENSIONS"}


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sdist")
    _build("--sdist", "--outdir", str(out), str(REPO), cwd=out)
    (archive,) = out.glob("navarch-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    (tree,) = (p for p in out.iterdir() if p.is_dir())
    return tree


def test_the_sdist_carries_examples_scenarios_and_docs(unpacked: Path) -> None:
    for name in (
        "README.md",
        "build.py",
        "csrc/telemetry_nvml.c",
        "examples/local-fleet.toml",
        "scenarios/basic-fleet.toml",
        "docs/getting-started.md",
        "docs/cli.md",
    ):
        assert (unpacked / name).is_file(), name
    assert {p.name for p in (unpacked / "examples").iterdir()} == {
        p.name for p in (REPO / "examples").iterdir()
    }
    assert {p.name for p in (unpacked / "scenarios").iterdir()} == {
        p.name for p in (REPO / "scenarios").iterdir()
    }


@pytest.mark.skipif(not NAVARCH.exists(), reason="the navarch script is not installed")
def test_the_readme_local_fleet_starts_from_the_unpacked_sdist(
    unpacked: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "NAVARCH_ADMIN_TOKEN": "",
        "NAVARCH_JOIN_TOKEN": "",
        "NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1",
        "XDG_DATA_HOME": str(tmp_path),
    }
    listen = f"127.0.0.1:{free_port()}"
    args = ("--config", "examples/local-fleet.toml", "--listen", listen)
    with control_plane_process(*args, env=env, cwd=unpacked, program=(str(NAVARCH),)) as (
        process,
        url,
        _,
    ):
        assert url == f"http://{listen}"
    assert process.returncode == 0


def test_a_build_without_a_compiler_warns_that_the_fallback_is_in_use(unpacked: Path) -> None:
    output = _build("--wheel", "--outdir", "dist", cwd=unpacked, env={"CC": "false"})
    assert "WARNING: navarch's compiled telemetry extension (navarch._telemetry) could not be" in (
        output
    )
    assert "uses the pure-Python telemetry fallback" in output
    (wheel,) = (unpacked / "dist").glob("navarch-*.whl")
    assert wheel.stat().st_size > 0
