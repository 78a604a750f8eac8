"""A new cloud machine, played by the test: a directory for its root, a fake systemd, a fake GPU
driver, and the bootstrap script run as cloud-init would run it.

The script writes every file under `$NAVARCH_BOOTSTRAP_ROOT` (the machine's `/`). Its systemd
is `fake-bin/systemctl` (`$NAVARCH_BOOTSTRAP_SYSTEMCTL`), which starts a unit's `ExecStart` with
the unit's `EnvironmentFile` as a background process, the way systemd would, and keeps its pid
so the test can stop it. The machine's GPUs are the fake libnvidia-ml of navarch.testing.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

_SYSTEMCTL = """#!{python}
import os, shlex, subprocess, sys

root = os.environ["NAVARCH_BOOTSTRAP_ROOT"]
args = sys.argv[1:]
if args == ["daemon-reload"]:
    sys.exit(0)
if args[:2] != ["enable", "--now"] or len(args) != 3:
    sys.exit("fake systemctl: only daemon-reload and enable --now UNIT: " + " ".join(args))
unit = args[2]
exec_start = env_file = ""
for line in open(os.path.join(root, "etc/systemd/system", unit)):
    key, _, value = line.strip().partition("=")
    if key == "ExecStart":
        exec_start = value
    elif key == "EnvironmentFile":
        env_file = value
env = dict(os.environ)
for line in open(env_file):
    key, _, value = line.strip().partition("=")
    if key:
        env[key] = value
log = open(os.path.join(root, "var/log", unit + ".log"), "ab")
process = subprocess.Popen(
    shlex.split(exec_start), env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    start_new_session=True,
)
with open(os.path.join(root, unit + ".pid"), "w") as f:
    f.write(str(process.pid))
"""


class Machine:
    def __init__(self, root: Path, fake_nvml: Path | None) -> None:
        self.root = root
        bin_dir = root / "fake-bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        systemctl = bin_dir / "systemctl"
        systemctl.write_text(_SYSTEMCTL.format(python=sys.executable))
        systemctl.chmod(0o755)
        self.env = {
            **os.environ,
            "NAVARCH_BOOTSTRAP_ROOT": str(root),
            "NAVARCH_BOOTSTRAP_SYSTEMCTL": str(systemctl),
            "FAKE_NVML_DEVICES": "2",
        }
        # The test's own settings do not belong to the machine.
        for name in ("NAVARCH_ADMIN_TOKEN", "NAVARCH_JOIN_TOKEN", "VIRTUAL_ENV"):
            self.env.pop(name, None)
        if fake_nvml is not None:
            self.env["NAVARCH_NVML_LIBRARY"] = str(fake_nvml)

    async def run(self, script: str) -> tuple[int, str]:
        """Runs the script as cloud-init does; returns its exit status and what it printed."""
        path = self.root / "user-data"
        path.write_text(script)
        done = await trio.run_process(
            ["/bin/sh", str(path)],
            env=self.env,
            capture_stdout=True,
            stderr=-2,  # subprocess.STDOUT
            check=False,
        )
        return done.returncode, done.stdout.decode(errors="replace")

    def service_log(self, unit: str = "navarch-daemon.service") -> str:
        path = self.root / "var/log" / f"{unit}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stops every service the fake systemd started."""
        for pid_file in self.root.glob("*.service.pid"):
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextmanager
def new_machine(root: Path, fake_nvml: Path | None = None) -> Iterator[Machine]:
    machine = Machine(root, fake_nvml)
    try:
        yield machine
    finally:
        machine.stop()
