from __future__ import annotations

import trio

from navarch.daemon.drain import NothingToDrain, ShellDrain

ENV = {"NAVARCH_NODE_ID": "gpu-1", "NAVARCH_COMMAND_ID": "c1", "NAVARCH_DRAIN_REASON": "maint"}


async def test_success_reports_output_and_sees_the_command_environment():
    outcome = await ShellDrain('echo "draining $NAVARCH_NODE_ID for $NAVARCH_DRAIN_REASON"')(
        10, ENV
    )
    assert outcome.ok
    assert outcome.message == "draining gpu-1 for maint"


async def test_failure_reports_status_and_stderr_tail():
    outcome = await ShellDrain("echo started; echo 'jobs still running' >&2; exit 3")(10, ENV)
    assert not outcome.ok
    assert outcome.message == "drain command exited with status 3: jobs still running"


async def test_long_output_keeps_the_end():
    outcome = await ShellDrain("seq 1 2000 >&2; exit 1")(10, ENV)
    assert outcome.message.endswith("1999 | 2000")
    assert len(outcome.message) < 700


async def test_timeout_kills_the_command():
    start = trio.current_time()
    outcome = await ShellDrain("sleep 30")(0.3, ENV)
    assert not outcome.ok
    assert outcome.message == "drain command timed out after 300ms and was killed"
    assert trio.current_time() - start < 10


async def test_no_command_means_nothing_to_drain():
    outcome = await NothingToDrain()(10, ENV)
    assert outcome.ok and "nothing to drain" in outcome.message
