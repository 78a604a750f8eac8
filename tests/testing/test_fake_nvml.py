"""The fake libnvidia-ml ships in an installed navarch, and a plugin's tests build it from there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Builds the fake from the installed package, sets a GPU, and reads it back through navarch.
READ_BACK = """
import sys
import navarch.testing
from navarch.telemetry.nvml import open_nvml
from navarch.testing import FakeNvml, build_fake_nvml

fake = FakeNvml(build_fake_nvml(sys.argv[1]))
fake.reset(3)
fake.set(2, temperature=91)
gpus = open_nvml(str(fake.path)).sample()
print(navarch.testing.__file__, len(gpus), gpus[2].temperature_c)
"""


@pytest.mark.slow
def test_an_installed_navarch_builds_the_fake_libnvidia_ml(tmp_path):
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler to build the fake libnvidia-ml")
    # pip builds in the source tree; a copy of what a build reads keeps the repository clean.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "build.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / name, source)
    skip = shutil.ignore_patterns("__pycache__", "*.so", "_telemetry.c")
    for name in ("navarch", "csrc"):
        shutil.copytree(REPO / name, source / name, symlinks=True, ignore=skip)
    site = tmp_path / "site-packages"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site)]
    installed = subprocess.run(
        [*pip, "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr

    for name in ("fake_nvml.c", "nvml_abi.h"):
        shipped = site / "navarch" / "testing" / name
        assert shipped.is_file() and not shipped.is_symlink(), shipped
    read = subprocess.run(
        [sys.executable, "-c", READ_BACK, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        cwd=tmp_path,
        timeout=60,
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == [str(site / "navarch" / "testing" / "__init__.py"), "3", "91"]
