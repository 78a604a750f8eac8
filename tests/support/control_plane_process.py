"""`navarch control-plane` as a real subprocess, started the way an operator starts it."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"^navarch control plane listening on (http://\S+) \(store: (.+)\)$")


@contextmanager
def control_plane_process(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 30,
    cwd: Path = REPO,
    program: Sequence[str] = (sys.executable, "-m", "navarch"),
) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """Starts the control plane (`program control-plane ARGS` in `cwd`), waits for its ready
    line; yields (process, url, store path).

    The process is stopped with SIGTERM at the end if it still runs.
    """
    process = subprocess.Popen(
        [*program, "control-plane", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    try:
        line = _first_line(process, timeout)
        match = READY.match(line)
        if match is None:
            process.kill()
            _, err = process.communicate()
            raise AssertionError(f"no ready line; got {line!r}; stderr:\n{err}")
        yield process, match.group(1), match.group(2)
    finally:
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=timeout)


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                return process.stdout.readline().rstrip("\n")
    raise AssertionError(f"the control plane printed nothing in {timeout}s")
