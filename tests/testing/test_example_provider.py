"""The example provider, installed with pip next to navarch as a third party's plugin would be."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx
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


SCENARIO = """
name = "example-cloud"
description = "A pool on the installed example provider reaches its two nodes."
duration = "8s"

[config.server]
heartbeat_interval = "1s"
health_check_interval = "2s"

[config.providers.moon]
type = "example"
url = "{url}"

[config.pools.train]
instance_type = "gpu-8x"
min_nodes = 2
max_nodes = 2
scale_interval = "1s"
[[config.pools.train.providers]]
provider = "moon"
regions = ["west"]

[[events]]
at = "0s"
action = "wait_for"
check = "count"
pool = "train"
provider = "moon"
status = "active"
equals = 2
timeout = "7s"

[[assertions]]
check = "no_lost_instances"
"""


class LoopbackCloud:
    """The example provider's fake cloud, served over HTTP on a loopback port."""

    def __init__(self) -> None:
        sys.path.insert(0, str(EXAMPLE / "tests"))
        try:
            from fake_cloud import FakeCloud
        finally:
            sys.path.pop(0)
        self.cloud = FakeCloud()
        cloud = self.cloud

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = httpx.Request(
                    self.command,
                    f"http://cloud{self.path}",
                    headers=dict(self.headers),
                    content=self.rfile.read(length),
                )
                response = cloud.handle(request)
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(response.content)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackCloud:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_the_installed_example_provider_runs_a_pool_in_the_simulator(tmp_path):
    source = shutil.copytree(EXAMPLE, tmp_path / "source")
    site = tmp_path / "site-packages"
    installed = run(
        *("-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check"),
        *("--target", str(site), str(source)),
        env={},
    )
    assert installed.returncode == 0, installed.stderr
    env = {"PYTHONPATH": f"{site}{os.pathsep}{REPO}", "EXAMPLE_API_TOKEN": "example-token"}
    with LoopbackCloud() as loopback:
        scenario = tmp_path / "example-cloud.toml"
        scenario.write_text(SCENARIO.format(url=loopback.url))
        # In real time: the provider waits on a real HTTP server, which virtual time would skip.
        ran = run(
            *("-m", "navarch", "sim", "run", str(scenario), "--real-time"),
            *("--report", str(tmp_path)),
            env=env,
        )
        made = sorted(loopback.cloud.made_for.values())
    assert ran.returncode == 0, ran.stdout + ran.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"]
    assert made == ["ex-1", "ex-2"]
