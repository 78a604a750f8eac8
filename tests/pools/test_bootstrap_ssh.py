"""Bootstrap over SSH end to end: a pool whose machines cannot run user-data runs its
`setup_commands` and then the bootstrap script over SSH, against a real sshd on loopback that
plays the new machine (its sessions see the machine's root, systemd and GPU driver)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.bootstrap import RecordingCloud, bootstrap_config, eventually, record_of, served_fleet
from support.machine import new_machine
from support.sshd import Sshd, running_sshd

from navarch.config import Config
from navarch.model import BootstrapState, InstanceStatus

pytestmark = pytest.mark.slow


def ssh_pool(sshd: Sshd, *commands: str, command_timeout: str = "10m") -> Callable[[str], Config]:
    listed = ", ".join(f"{c!r}" for c in commands)
    table = f"""
[pools.train.bootstrap]
method = "ssh"
ssh_user = "{sshd.user}"
ssh_port = {sshd.port}
ssh_key_file = "{sshd.client_key}"
connect_timeout = "5s"
command_timeout = "{command_timeout}"
setup_commands = [{listed}]
"""
    return lambda url: bootstrap_config(url, extra=table)


async def test_setup_over_ssh_installs_the_daemon_and_records_the_host_key(
    tmp_path: Path, build_fake_nvml: Callable[..., Path]
) -> None:
    with new_machine(tmp_path / "machine", build_fake_nvml()) as machine:
        seen = {k: machine.env[k] for k in machine.env if k.startswith(("NAVARCH_", "FAKE_"))}
        with running_sshd(tmp_path, env=seen) as sshd:
            prepare = 'echo "drivers ready" > "$NAVARCH_BOOTSTRAP_ROOT/prepared"'
            cloud = RecordingCloud(address="127.0.0.1")
            async with served_fleet(tmp_path, ssh_pool(sshd, prepare), cloud) as (_url, service):
                await eventually(lambda: cloud.requests)
                instance_id, request = next(iter(cloud.requests.items()))
                # An SSH pool hands the cloud no user-data: the script goes over SSH.
                assert request.user_data == ""
                await eventually(lambda: service.node(instance_id) is not None, timeout=120)
                record = record_of(service, instance_id)
                boot = record.bootstrap
                assert boot is not None and boot.method == "ssh"
                await eventually(
                    lambda: (
                        record_of(service, instance_id).bootstrap.state  # type: ignore[union-attr]
                        is BootstrapState.SUCCEEDED
                    )
                )
                boot = record_of(service, instance_id).bootstrap
                assert boot is not None
                # Trusted on first use, and kept for the next connection.
                assert boot.host_keys == (sshd.host_key,)
                assert (machine.root / "prepared").read_text() == "drivers ready\n"
                assert "navarch-daemon.service is running" in boot.log_tail


@pytest.mark.parametrize(
    ("command", "timeout", "why"),
    [
        ("echo 'no driver for this GPU' >&2; exit 3", "10m", "exited with status 3"),
        ("sleep 10", "1s", "timed out after the command timeout (1s)"),
    ],
)
async def test_a_failing_setup_command_replaces_the_instance(
    tmp_path: Path, command: str, timeout: str, why: str
) -> None:
    with running_sshd(tmp_path) as sshd:
        cloud = RecordingCloud(address="127.0.0.1")
        config = ssh_pool(sshd, command, command_timeout=timeout)
        async with served_fleet(tmp_path, config, cloud) as (_url, service):
            await eventually(lambda: cloud.requests)
            first = next(iter(cloud.requests))
            await eventually(lambda: first in cloud.terminated and len(cloud.requests) >= 2)
            record = record_of(service, first)
            assert record.status is InstanceStatus.FAILED
            boot = record.bootstrap
            assert boot is not None and boot.state is BootstrapState.FAILED
            assert boot.detail.startswith("setup over SSH: command 1 of 2")
            assert why in boot.detail
            if "exit 3" in command:
                assert "no driver for this GPU" in boot.log_tail
            assert service.node(first) is None
