"""The example provider, installed with pip next to navarch as a third party's plugin would be."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = Path(__file__).resolve().parent / "example_provider"

CONFIG = """
[providers.moon]
type = "example"
url = "https://moon.example.com/v1"
region = "west"

[pools.train]
instance_type = "gpu-8x"
max_nodes = 4

[[pools.train.providers]]
provider = "moon"
"""


def run(*args: str, env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_the_installed_example_provider_loads_keeps_the_contract_and_configures(tmp_path):
    # pip builds in the source tree; a copy keeps the repository clean.
    source = shutil.copytree(EXAMPLE, tmp_path / "source")
    site = tmp_path / "site-packages"
    installed = run(
        *("-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check"),
        *("--target", str(site), str(source)),
        env={},
    )
    assert installed.returncode == 0, installed.stderr
    env = {"PYTHONPATH": f"{site}{os.pathsep}{REPO}"}

    listed = run("-m", "navarch", "plugins", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["example"]["distribution"] == "navarch-example"
    assert rows["example"]["registered"] == ["provider:example"]
    assert rows["example"]["error"] is None

    tested = run(
        "-m", "pytest", "-p", "no:cacheprovider", "tests/testing/example_provider/tests", env=env
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "11 passed" in tested.stdout
    assert (
        str(site / "navarch_example")
        in run("-c", "import navarch_example; print(navarch_example.__file__)", env=env).stdout
    )

    config = tmp_path / "navarch.toml"
    config.write_text(CONFIG)
    checked = run("-m", "navarch", "config", "check", str(config), env=env)
    assert checked.returncode == 0, checked.stderr
    assert "providers: moon (example)" in checked.stdout
    config.write_text(CONFIG.replace("https://moon", "ftp://moon"))
    refused = run("-m", "navarch", "config", "check", str(config), env=env)
    assert refused.returncode == 2
    assert (
        f"{config}: providers.moon.url: expected an http:// or https:// URL, "
        f'got "ftp://moon.example.com/v1"' in refused.stderr
    )
