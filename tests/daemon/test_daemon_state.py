from __future__ import annotations

import stat

from navarch.api.wire import CommandResult
from navarch.daemon.state import KEEP_OUTCOMES, STATE_FILE, DaemonState, Outcome

OK = Outcome(CommandResult.COMMAND_RESULT_SUCCEEDED, "drained")


async def test_token_and_outcomes_survive_a_restart(tmp_path):
    state = DaemonState(tmp_path)
    await state.set_token("gpu-1", "secret-token")
    await state.record("c1", OK)
    path = tmp_path / STATE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again = DaemonState(tmp_path)
    again.load()
    assert (again.node_id, again.node_token) == ("gpu-1", "secret-token")
    assert again.outcome("c1") == OK
    assert again.outcome("c2") is None


async def test_only_recent_outcomes_are_kept(tmp_path):
    state = DaemonState()
    for i in range(KEEP_OUTCOMES + 5):
        await state.record(f"c{i}", OK)
    assert state.outcome("c0") is None
    assert state.outcome(f"c{KEEP_OUTCOMES + 4}") == OK


def test_a_damaged_file_starts_fresh(tmp_path):
    (tmp_path / STATE_FILE).write_text("{not json")
    state = DaemonState(tmp_path)
    state.load()
    assert state.node_token == "" and state.outcome("c1") is None
