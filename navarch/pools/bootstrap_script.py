"""The bootstrap script: what a new machine runs to install navarch's daemon and start it.

One POSIX shell script serves both ways a pool bootstraps a machine: the provider hands it to the
cloud as user-data (cloud-init runs a user-data document that starts with `#!` as a script), or
the control plane runs it over SSH after the pool's `setup_commands`. It

1. tells the control plane it started (`ReportBootstrap`, with the machine's one-time token),
2. makes a virtual environment in /opt/navarch and installs navarch from the configured source (a
   pinned release, from the configured index or PyPI, or a wheel),
3. writes the daemon's configuration (/etc/navarch/daemon.toml), its token
   (/etc/navarch/daemon.env, readable by root alone) and its systemd unit, and
4. enables and starts `navarch-daemon.service`.

Its output goes to /var/log/navarch-bootstrap.log. A step that fails ends the script, and the
last lines of the log go to the control plane with the step's name, so `navarch pool get` shows
why; the pool then replaces the machine. The daemon registers with the token, which the control
plane binds to this machine's instance id and accepts once.

Every path starts with `$NAVARCH_BOOTSTRAP_ROOT` (empty on a real machine), and systemd is
reached through `$NAVARCH_BOOTSTRAP_SYSTEMCTL` (`systemctl` on a real machine), so a test can
play the machine in a directory of its own.
"""

from __future__ import annotations

import json
import shlex
from importlib import resources

from navarch import __version__
from navarch.config import BootstrapConfig, PoolConfig

# What `navarch bootstrap render` shows where each machine's own token goes.
TOKEN_PLACEHOLDER = "<one-time token, made for each instance>"
UNIT_NAME = "navarch-daemon.service"
# Lines of the log that a failing bootstrap reports.
LOG_LINES = 40
# The API the script reports to, as any client outside navarch reaches it (a test holds these to
# navarch.api.wire).
REPORT_PATH = "/navarch.v1.ControlPlaneService/ReportBootstrap"
RUNNING, FAILED = "BOOTSTRAP_STATE_RUNNING", "BOOTSTRAP_STATE_FAILED"


def package_spec(settings: BootstrapConfig) -> str:
    """What pip installs: the wheel, or navarch at the configured (or this) version."""
    if settings.wheel_url:
        return settings.wheel_url
    return f"navarch=={settings.version or __version__}"


def _toml(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def _heredoc(text: str) -> str:
    """Text for an unquoted here-document: only `$root` expands in it."""
    escaped = text.replace("\\", "\\\\").replace("$", "\\$").replace("`", "\\`")
    return escaped.replace("@ROOT@", "${root}")


def daemon_config(pool_name: str, pool: PoolConfig, control_plane_url: str) -> str:
    """The daemon's configuration file; `@ROOT@` stands for the install root."""
    lines = [
        "# Written by navarch's bootstrap. The node id, provider, region and instance type come",
        "# from the control plane, which knows the instance this machine is.",
        "[daemon]",
        f"control_plane = {_toml(control_plane_url)}",
        f"pool = {_toml(pool_name)}",
        # The unit's StateDirectory.
        'state_dir = "@ROOT@/var/lib/navarch-daemon"',
    ]
    if pool.labels:
        lines += ["", "[daemon.labels]"]
        lines += [f"{_toml(key)} = {_toml(value)}" for key, value in sorted(pool.labels.items())]
    return "\n".join(lines) + "\n"


def daemon_unit() -> str:
    """The daemon's systemd unit (deploy/systemd/navarch-daemon.service, shipped in the package),
    run from /opt/navarch; `@ROOT@` stands for the install root."""
    text = resources.files("navarch.pools").joinpath(UNIT_NAME).read_text()
    for path in ("/etc/navarch/", "/var/lib/navarch"):
        text = text.replace(path, "@ROOT@" + path)
    return text.replace("/usr/local/bin/navarch", "@ROOT@/opt/navarch/bin/navarch")


_REPORT = """\
import json, os, urllib.request
with open(os.environ["NAVARCH_LOG"], "rb") as f:
    tail = f.read()[-4000:].decode("utf-8", "replace").splitlines()[-%(lines)d:]
body = {"state": os.environ["NAVARCH_STATE"], "detail": os.environ["NAVARCH_DETAIL"][:500],
        "logTail": "\\n".join(tail)}
request = urllib.request.Request(
    os.environ["NAVARCH_URL"].rstrip("/") + "%(path)s",
    data=json.dumps(body).encode(),
    headers={"Content-Type": "application/json",
             "Authorization": "Bearer " + os.environ["NAVARCH_TOKEN"]})
urllib.request.urlopen(request, timeout=10).read()
"""


def render_script(settings: BootstrapConfig, pool_name: str, pool: PoolConfig, token: str) -> str:
    """The bootstrap script for one machine of `pool_name`, carrying its one-time `token`."""
    q = shlex.quote
    index = f"--index-url {q(settings.index_url)} " if settings.index_url else ""
    report = _REPORT % {"lines": LOG_LINES, "path": REPORT_PATH}
    return f"""#!/bin/sh
# navarch bootstrap for pool {pool_name}, rendered by navarch {__version__}.
# Installs navarch, writes the daemon's configuration and starts {UNIT_NAME}.
# It carries a one-time join token for one machine: keep it private; it registers one node once.
set -eu
root="${{NAVARCH_BOOTSTRAP_ROOT:-}}"
systemctl="${{NAVARCH_BOOTSTRAP_SYSTEMCTL:-systemctl}}"
control_plane={q(settings.control_plane_url)}
token={q(token)}
python={q(settings.python)}
log="$root/var/log/navarch-bootstrap.log"
mkdir -p "$root/var/log"
exec 3>&1 >>"$log" 2>&1
step="starting"

report() {{
    NAVARCH_URL="$control_plane" NAVARCH_TOKEN="$token" NAVARCH_STATE="$1" \\
    NAVARCH_DETAIL="$2" NAVARCH_LOG="$log" "$python" - <<'PY' || echo "could not report: $1"
{report}PY
}}

finish() {{
    status=$?
    trap - EXIT
    if [ "$status" -ne 0 ]; then
        echo "navarch bootstrap failed while $step (exit status $status)"
        report {FAILED} "failed while $step (exit status $status)"
    fi
    tail -n {LOG_LINES} "$log" >&3
    exit "$status"
}}
trap finish EXIT

echo "navarch bootstrap started at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
report {RUNNING} "installing navarch"

step="making the virtual environment"
if ! "$python" -m ensurepip --version >/dev/null 2>&1 && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
fi
"$python" -m venv "$root/opt/navarch"

step="installing navarch"
"$root/opt/navarch/bin/pip" install --quiet --disable-pip-version-check {index}\\
    {q(package_spec(settings))}

step="writing the daemon's configuration"
mkdir -p "$root/etc/navarch" "$root/var/lib/navarch-daemon" "$root/etc/systemd/system"
cat >"$root/etc/navarch/daemon.toml" <<EOF
{_heredoc(daemon_config(pool_name, pool, settings.control_plane_url))}EOF
(umask 077 && printf 'NAVARCH_JOIN_TOKEN=%s\\n' "$token" >"$root/etc/navarch/daemon.env")
cat >"$root/etc/systemd/system/{UNIT_NAME}" <<EOF
{_heredoc(daemon_unit())}EOF

step="starting the daemon"
"$systemctl" daemon-reload
"$systemctl" enable --now {UNIT_NAME}
echo "navarch bootstrap finished: {UNIT_NAME} is running"
"""
