"""Bootstrap end to end: a pool's new instance gets a script with a one-time token; a machine that
runs it installs navarch from this checkout and its daemon registers as the instance's node.

The control plane is real and served over loopback; the cloud is a recording provider whose
machines the test plays (`support.machine`): the script runs under a root directory of its own,
with a fake systemd and the fake libnvidia-ml.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from support.bootstrap import (
    RecordingCloud,
    bootstrap_config,
    eventually,
    record_of,
    served_fleet,
    token_of,
)
from support.machine import new_machine
from support.navarch_process import run_navarch
from support.serving import ADMIN_TOKEN, post

from navarch.model import BootstrapState, InstanceStatus


async def test_a_bootstrapped_machine_registers_once_with_its_own_token(
    tmp_path: Path, build_fake_nvml: Callable[..., Path]
) -> None:
    cloud = RecordingCloud()
    async with served_fleet(tmp_path, bootstrap_config, cloud) as (url, service):
        await eventually(lambda: cloud.requests)
        instance_id, request = next(iter(cloud.requests.items()))
        script = request.user_data
        assert script.startswith("#!/bin/sh\n")
        assert record_of(service, instance_id).bootstrap is not None
        token = token_of(script)
        assert token.startswith("nvb_")
        # The store keeps the token's hash, never the token.
        assert token not in (tmp_path / "navarch.db").read_bytes().decode("latin-1")

        with new_machine(tmp_path / "machine", build_fake_nvml()) as machine:
            status, output = await machine.run(script)
            assert status == 0, output
            assert "navarch-daemon.service is running" in output
            await eventually(lambda: service.node(instance_id) is not None, timeout=60)

            node = service.node(instance_id)
            assert node is not None
            assert (node.pool, node.labels.get("team")) == ("train", "vision")
            record = record_of(service, instance_id)
            assert record.bootstrap is not None
            assert record.bootstrap.state is BootstrapState.SUCCEEDED
            assert record.bootstrap.token_used
            env = (machine.root / "etc/navarch/daemon.env").stat()
            assert env.st_mode & 0o077 == 0

            async with httpx.AsyncClient(base_url=url) as client:
                again = await post(client, "RegisterNode", {"nodeId": instance_id}, token=token)
                assert again.status_code == 401, again.text
                assert "already registered node" in again.json()["message"]
                described = await post(client, "GetPool", {"name": "train"}, token=ADMIN_TOKEN)
            instance = described.json()["pool"]["instances"][0]
            assert instance["bootstrap"]["state"] == "BOOTSTRAP_STATE_SUCCEEDED"
            assert "navarch bootstrap started" in instance["bootstrap"]["logTail"]


async def test_a_failing_script_reports_its_log_and_the_pool_replaces_the_instance(
    tmp_path: Path,
) -> None:
    cloud = RecordingCloud()
    missing = tmp_path / "no-such-wheel.whl"
    async with served_fleet(
        tmp_path, lambda url: bootstrap_config(url, wheel=str(missing)), cloud
    ) as (url, service):
        await eventually(lambda: cloud.requests)
        first, request = next(iter(cloud.requests.items()))
        with new_machine(tmp_path / "machine") as machine:
            status, output = await machine.run(request.user_data)
        assert status != 0
        assert "failed while installing navarch" in output
        await eventually(lambda: first in cloud.terminated and len(cloud.requests) == 2)
        record = record_of(service, first)
        assert record.status is InstanceStatus.FAILED
        assert record.bootstrap is not None
        assert record.bootstrap.state is BootstrapState.FAILED
        assert "installing navarch" in record.bootstrap.detail
        assert "no-such-wheel" in record.bootstrap.log_tail
        # `navarch pool get` shows why, with the end of the machine's log.
        shown = await trio.to_thread.run_sync(
            partial(
                run_navarch,
                "pool",
                "get",
                "train",
                "--server",
                url,
                env={"NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN},
            )
        )
        assert shown.returncode == 0, shown.stderr
        assert f"Bootstrap of {first}: failed (cloud-init): the bootstrap script" in shown.stdout
        assert "no-such-wheel" in shown.stdout
        kinds = [
            e.kind
            for e in await service.store.list_events(node_id=first, kinds=(), before="", limit=100)
        ]
        assert "instance.bootstrap_failed" in kinds


async def test_a_machine_that_never_registers_is_replaced_when_the_timeout_passes(
    tmp_path: Path,
) -> None:
    cloud = RecordingCloud()
    config = partial(bootstrap_config, timeout="2s")
    async with served_fleet(tmp_path, lambda url: config(url), cloud) as (_url, service):
        await eventually(lambda: len(cloud.requests) >= 2, timeout=30)
        first = next(iter(cloud.requests))
        record = record_of(service, first)
        assert record.bootstrap is not None
        assert record.bootstrap.state is BootstrapState.FAILED
        assert "never registered within 2s" in record.bootstrap.detail
        # The pool may ask for the next machine before the cloud has taken the termination.
        await eventually(lambda: first in cloud.terminated, timeout=30)


async def test_tokens_are_scoped_to_their_own_instance(tmp_path: Path) -> None:
    cloud = RecordingCloud()
    async with served_fleet(tmp_path, bootstrap_config, cloud) as (url, _service):
        await eventually(lambda: cloud.requests)
        instance_id, request = next(iter(cloud.requests.items()))
        token = token_of(request.user_data)
        async with httpx.AsyncClient(base_url=url) as client:
            who = await post(client, "GetBootstrapIdentity", {}, token=token)
            assert who.status_code == 200, who.text
            assert who.json()["nodeId"] == instance_id
            other = await post(client, "RegisterNode", {"nodeId": "someone-else"}, token=token)
            assert other.status_code == 403, other.text
            listing = await post(client, "ListNodes", {}, token=token)
            assert listing.status_code == 403, listing.text
            nobody = await post(client, "GetBootstrapIdentity", {}, token=ADMIN_TOKEN)
            assert nobody.status_code == 403, nobody.text


@pytest.mark.parametrize("line", ["token=", "control_plane=http://127.0.0.1:1"])
def test_the_rendered_script_is_valid_shell(line: str) -> None:
    import subprocess

    from navarch.config import BootstrapConfig
    from navarch.pools.bootstrap_script import render_script

    config = bootstrap_config("http://127.0.0.1:1")
    settings = config.bootstrap
    assert isinstance(settings, BootstrapConfig)
    script = render_script(settings, "train", config.pools["train"], "nvb_$(reboot)`x`")
    assert line in script
    subprocess.run(["/bin/sh", "-n"], input=script.encode(), check=True)
    # The token is quoted: the shell never expands what it holds.
    assert "token='nvb_$(reboot)`x`'" in script
