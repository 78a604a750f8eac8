"""Setting up a machine over SSH, against a real OpenSSH server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.sshd import (
    Sshd,
    fingerprint,
    free_port,
    generate_key,
    require_sshd,
    running_sshd,
)

from navarch.pools.ssh import SetupOutcome, SshTarget, run_setup

pytestmark = pytest.mark.slow


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    directory = tmp_path / "sshd"
    directory.mkdir()
    with running_sshd(directory) as server:
        yield server


async def setup(
    target: SshTarget,
    steps: list[str],
    *,
    connect_timeout: float = 10,
    command_timeout: float = 30,
    total_timeout: float = 60,
) -> SetupOutcome:
    return await run_setup(
        target,
        steps,
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
        total_timeout=total_timeout,
    )


async def test_steps_run_in_order_and_their_output_is_kept(sshd: Sshd, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = f"""#!/bin/sh
set -eu
# A script on standard input, with quotes and a here-document.
cat >>'{marker}' <<'EOF'
first: "quoted" $NOT_EXPANDED
EOF
echo 'script done'
"""
    outcome = await setup(
        sshd.target(tmp_path / "known_hosts"),
        [script, f"echo second >> {marker}", "echo to stderr >&2"],
    )

    assert outcome.ok, outcome
    assert outcome.detail == "setup succeeded"
    assert marker.read_text() == 'first: "quoted" $NOT_EXPANDED\nsecond\n'
    assert outcome.log_tail.splitlines() == ["script done", "to stderr"]


async def test_a_failing_command_stops_the_setup(sshd: Sshd, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    outcome = await setup(
        sshd.target(tmp_path / "known_hosts"),
        ["true", "echo 'unit x not found' >&2; exit 3", f"touch {marker}"],
    )

    assert not outcome.ok
    assert outcome.detail == (
        "command 2 of 3 (`echo 'unit x not found' >&2; exit 3`) exited with status 3"
    )
    assert "unit x not found" in outcome.log_tail
    assert not marker.exists()


async def test_a_remote_exit_status_of_255_is_not_taken_for_ssh_failing(
    sshd: Sshd, tmp_path: Path
) -> None:
    outcome = await setup(sshd.target(tmp_path / "known_hosts"), ["exit 255"])

    assert outcome.detail == "command 1 of 1 (`exit 255`) exited with status 255"


async def test_a_connection_closed_by_the_machine_is_told_from_a_failing_command(
    sshd: Sshd, tmp_path: Path
) -> None:
    # The parent of the step's shell is the server's process for the connection.
    outcome = await setup(sshd.target(tmp_path / "known_hosts"), ["kill -9 $PPID"])

    assert not outcome.ok
    assert outcome.detail == (
        "command 1 of 1 (`kill -9 $PPID`): ssh failed:"
        " Connection to 127.0.0.1 closed by remote host"
    )


async def test_a_step_is_named_by_its_first_command_line_alone(sshd: Sshd, tmp_path: Path) -> None:
    script = "#!/bin/sh\n\nset -u\nexport JOIN_TOKEN=s3cret\nfalse\n"
    outcome = await setup(sshd.target(tmp_path / "known_hosts"), [script])

    assert outcome.detail == "command 1 of 1 (`set -u`) exited with status 1"


async def test_a_command_that_runs_too_long_is_stopped(sshd: Sshd, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    outcome = await setup(
        sshd.target(tmp_path / "known_hosts"),
        ["echo started; sleep 10", f"touch {marker}"],
        command_timeout=1,
    )

    assert not outcome.ok
    assert outcome.detail == (
        "command 1 of 2 (`echo started; sleep 10`) timed out after the command timeout (1s)"
    )
    assert outcome.log_tail == "started"
    assert not marker.exists()


async def test_a_setup_that_runs_too_long_is_stopped(sshd: Sshd, tmp_path: Path) -> None:
    outcome = await setup(sshd.target(tmp_path / "known_hosts"), ["sleep 10"], total_timeout=1)

    assert not outcome.ok
    assert outcome.detail == (
        "command 1 of 1 (`sleep 10`) was still running at the total timeout (1s)"
    )


async def test_connecting_is_retried_until_the_total_timeout(tmp_path: Path) -> None:
    require_sshd()  # and so the OpenSSH client that comes with it
    key = tmp_path / "key"
    generate_key(key)
    target = SshTarget(
        address="127.0.0.1",
        port=free_port(),
        user="ubuntu",
        key_file=str(key),
        known_hosts=str(tmp_path / "known_hosts"),
    )

    outcome = await setup(target, ["true"], connect_timeout=1, total_timeout=2)

    assert not outcome.ok
    assert outcome.detail == "could not connect within the total timeout (2s): Connection refused"
    assert outcome.host_keys == ()


async def test_the_first_connection_records_the_host_key(sshd: Sshd, tmp_path: Path) -> None:
    known_hosts = tmp_path / "instance" / "known_hosts"

    first = await setup(sshd.target(known_hosts), ["true"])
    assert first.ok, first
    assert first.host_keys == (sshd.host_key,)

    again = await setup(sshd.target(tmp_path / "elsewhere", first.host_keys), ["true"])
    assert again.ok, again
    assert again.host_keys == (sshd.host_key,)


async def test_a_provider_given_host_key_is_checked_strictly(sshd: Sshd, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    outcome = await setup(sshd.target(known_hosts, (sshd.host_key,)), ["true"])

    assert outcome.ok, outcome
    assert outcome.host_keys == (sshd.host_key,)
    assert known_hosts.read_text() == f"[127.0.0.1]:{sshd.port} {sshd.host_key}\n"


@pytest.mark.parametrize("key_type", ["ed25519", "rsa"])
async def test_a_host_key_other_than_the_trusted_one_is_refused(
    sshd: Sshd, tmp_path: Path, key_type: str
) -> None:
    trusted = generate_key(tmp_path / "other_host_key", key_type)
    marker = tmp_path / "ran"

    outcome = await setup(sshd.target(tmp_path / "known_hosts", (trusted,)), [f"touch {marker}"])

    assert not outcome.ok
    assert outcome.detail == (
        f"host key mismatch: 127.0.0.1 presented the ED25519 key {fingerprint(sshd.host_key)},"
        " which is not a trusted one"
    )
    assert outcome.host_keys == (trusted,)
    assert not marker.exists()


async def test_a_missing_key_file_fails_at_once(sshd: Sshd, tmp_path: Path) -> None:
    target = sshd.target(tmp_path / "known_hosts")
    outcome = await setup(
        SshTarget(
            address=target.address,
            port=target.port,
            user=target.user,
            key_file=str(tmp_path / "missing"),
            known_hosts=target.known_hosts,
        ),
        ["true"],
    )

    assert outcome.detail == f"the key file {tmp_path / 'missing'} does not exist"


async def test_a_missing_ssh_program_is_named(sshd: Sshd, tmp_path: Path) -> None:
    outcome = await run_setup(
        sshd.target(tmp_path / "known_hosts"),
        ["true"],
        connect_timeout=1,
        command_timeout=1,
        total_timeout=5,
        ssh=str(tmp_path / "no-ssh"),
    )

    assert not outcome.ok
    assert outcome.detail.startswith(f"could not run {tmp_path / 'no-ssh'}: ")
