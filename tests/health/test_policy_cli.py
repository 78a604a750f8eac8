"""`navarch policy check` and `navarch policy test`, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

BAD_POLICY = """
name = "bad"
histroy_window = "1h"

[[rules]]
name = "broken"
condition = 'event.xid == '
result = "unhealthy"

[[rules]]
name = "broken"
condition = 'event.xid == 1'
result = "sick"
"""

CUSTOM_POLICY = """
[[rules]]
name = "hot"
condition = 'event.metrics.temperature_c >= 80.0'
result = "degraded"
action = "alert"

[[rules]]
name = "fallen-off"
condition = 'event.xid == 79'
result = "unhealthy"
action = "replace"
"""


def line(**fields) -> str:
    event = {"type": "HEALTH_EVENT_TYPE_XID", "time": "2026-01-01T00:00:00Z", "gpuIndex": 0}
    return json.dumps({**event, **fields})


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(
            [
                line(nodeId="a", xid=13, details={"pid": "100"}),
                line(nodeId="a", xid=13, details={"pid": "101"}, time="2026-01-01T00:01:00Z"),
                line(nodeId="b", xid=79, time="2026-01-01T00:01:30Z"),
                "",
                line(nodeId="a", xid=13, details={"pid": "102"}, time="2026-01-01T00:02:00Z"),
                line(
                    nodeId="c",
                    type="HEALTH_EVENT_TYPE_THERMAL",
                    metrics={"temperature_c": 90, "slowdown_c": 87, "shutdown_c": 92},
                    time="2026-01-01T00:03:00Z",
                ),
            ]
        )
        + "\n"
    )
    return path


def test_check_the_default_policy(navarch):
    for args in (["default"], ["--default"]):
        result = navarch("policy", "check", *args)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("<default policy>: ok\n")
        assert "history window: 1h" in result.stdout
        assert "app-error-repeated" in result.stdout


def test_check_a_file(navarch, tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(CUSTOM_POLICY)
    result = navarch("policy", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [f"{path}: ok", "  rules: 2 (1 degraded, 1 unhealthy)"]


def test_check_reports_every_problem_and_exits_2(navarch, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BAD_POLICY)
    result = navarch("policy", "check", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"navarch: {path}: 4 problems"
    assert lines[1:] == [
        f"  {path}: histroy_window: unknown key (did you mean 'history_window'?)",
        f'  {path}: rules[1]: duplicate rule name "broken" (rules[0] has it too)',
        f'  {path}: rules[0] "broken": condition line 1, column 14 (file line 7, column 27): '
        "Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', "
        "'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}",
        f'  {path}: rules[1] "broken": result: expected one of healthy, degraded, unhealthy, '
        'got "sick"',
    ]


def test_check_names_a_toml_syntax_error_and_a_missing_file(navarch, tmp_path):
    path = tmp_path / "syntax.toml"
    path.write_text('[[rules]]\nname = "x"\ncondition = \n')
    result = navarch("policy", "check", str(path))
    assert result.returncode == 2
    assert f"navarch: {path}: TOML syntax error:" in result.stderr
    assert "line 3" in result.stderr
    result = navarch("policy", "check", str(tmp_path / "nope.toml"))
    assert (result.returncode, result.stderr.strip()) == (
        2,
        f"navarch: {tmp_path / 'nope.toml'}: file not found",
    )


def test_check_needs_a_file_or_default(navarch, tmp_path):
    result = navarch("policy", "check")
    assert result.returncode == 2
    assert "give a policy FILE, `default`, or --default" in result.stderr
    result = navarch("policy", "check", "default", "--default")
    assert result.returncode == 2


def test_test_shows_the_matching_rule_of_each_event_and_the_verdicts(navarch, events):
    result = navarch("policy", "test", "default", str(events), env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    table = [[cell.strip() for cell in row.split("│")] for row in out.splitlines() if "│" in row]
    assert table == [
        ["1", "a", "xid 13", "0", "app-error", "degraded", "alert"],
        ["2", "a", "xid 13", "0", "app-error", "degraded", "alert"],
        ["3", "b", "xid 79", "0", "xid-replace", "unhealthy", "replace"],
        ["5", "a", "xid 13", "0", "app-error-repeated", "unhealthy", "drain"],
        ["6", "c", "thermal", "0", "thermal-slowdown", "degraded", "alert"],
    ]
    assert out.splitlines()[-4:] == [
        "verdicts at 2026-01-01T00:03:00Z, the worst result within 10m:",
        "a: unhealthy, action drain (rule app-error-repeated, line 5)",
        "b: unhealthy, action replace (rule xid-replace, line 3)",
        "c: degraded, action alert (rule thermal-slowdown, line 6)",
    ]


def test_test_as_json(navarch, events):
    result = navarch("policy", "test", "--default", str(events), "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["policy"] == "<default policy>"
    assert data["at"] == "2026-01-01T00:03:00Z"
    assert data["events"][3] == {
        "line": 5,
        "nodeId": "a",
        "time": "2026-01-01T00:02:00Z",
        "type": "xid",
        "gpuIndex": 0,
        "xid": 13,
        "rule": "app-error-repeated",
        "result": "unhealthy",
        "action": "drain",
        "errors": [],
    }
    assert data["verdicts"] == [
        {"nodeId": "a", "health": "unhealthy", "action": "drain", "rule": "app-error-repeated",
         "line": 5},
        {"nodeId": "b", "health": "unhealthy", "action": "replace", "rule": "xid-replace",
         "line": 3},
        {"nodeId": "c", "health": "degraded", "action": "alert", "rule": "thermal-slowdown",
         "line": 6},
    ]  # fmt: skip


def test_test_window_lets_bad_events_age_out(navarch, events):
    result = navarch("policy", "test", "--default", str(events), "--json", "--window", "1m")
    verdicts = {v["nodeId"]: v for v in json.loads(result.stdout)["verdicts"]}
    assert verdicts["b"]["health"] == "healthy"  # its XID 79 is 90 s older than the last event
    assert verdicts["c"]["health"] == "degraded"


def test_test_a_custom_policy_reports_rules_that_fail(navarch, tmp_path, events):
    path = tmp_path / "policy.toml"
    path.write_text(CUSTOM_POLICY)
    result = navarch("policy", "test", str(path), str(events), env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "line 1: rule hot skipped: no key 'temperature_c' in the map" in result.stdout
    assert "line 6: rule hot skipped" not in result.stdout
    data = json.loads(navarch("policy", "test", str(path), str(events), "--json").stdout)
    assert [e["rule"] for e in data["events"]] == ["", "", "fallen-off", "", "hot"]
    assert data["events"][0]["errors"] == [
        {"rule": "hot", "message": "no key 'temperature_c' in the map"}
    ]


def test_test_reads_standard_input(navarch, events):
    result = subprocess.run(
        [sys.executable, "-m", "navarch", "policy", "test", "--default", "-", "--json"],
        input=events.read_text(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["events"]) == 5


def test_bad_event_lines_are_named_and_exit_2(navarch, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "\n".join(
            [
                line(xid=13),
                '{"type": "HEALTH_EVENT_TYPE_XID", "time": ',
                "[1, 2]",
                line(type="XID"),
                line(gpuIdx=1),
                line(nodeId=5),
                line(time="yesterday"),
            ]
        )
    )
    result = navarch("policy", "test", "default", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[1:] == [
        f"  {path}: line 2: malformed JSON at column 43 (Expecting value)",
        f"  {path}: line 3: expected a JSON object (one event per line)",
        f"  {path}: line 4: type: expected one of HEALTH_EVENT_TYPE_XID, "
        "HEALTH_EVENT_TYPE_THERMAL, HEALTH_EVENT_TYPE_ECC, HEALTH_EVENT_TYPE_REMAPPED_ROWS, "
        "HEALTH_EVENT_TYPE_RETIRED_PAGES, HEALTH_EVENT_TYPE_NVLINK, HEALTH_EVENT_TYPE_PCIE, "
        "HEALTH_EVENT_TYPE_POWER, HEALTH_EVENT_TYPE_CLOCKS, HEALTH_EVENT_TYPE_GPU_LOST, "
        "HEALTH_EVENT_TYPE_BOOT, HEALTH_EVENT_TYPE_CHECK_FAILED, HEALTH_EVENT_TYPE_INFINIBAND, "
        "HEALTH_EVENT_TYPE_NVSWITCH, HEALTH_EVENT_TYPE_FABRIC_MANAGER, "
        'HEALTH_EVENT_TYPE_DIAGNOSTIC, got "XID"',
        f"  {path}: line 5: unknown field 'gpuIdx' (did you mean 'gpuIndex'?)",
        f"  {path}: line 6: nodeId: expected a string",
        f"  {path}: line 7: time: expected an RFC 3339 timestamp such as 2026-01-02T15:04:05Z, "
        'got "yesterday"',
    ]


def test_test_argument_shapes(navarch, events, tmp_path):
    assert navarch("policy", "test", "default").returncode == 2
    assert navarch("policy", "test", "--default", "default", str(events)).returncode == 2
    assert navarch("policy", "test", "--default", str(events), "--window", "soon").returncode == 2
    result = navarch("policy", "test", "--default", str(tmp_path / "none.jsonl"))
    assert result.returncode == 2
    assert "none.jsonl: file not found" in result.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    result = navarch("policy", "test", "--default", str(empty))
    assert (result.returncode, result.stdout.strip()) == (0, f"{empty}: no events")


def test_help_does_not_load_cel():
    code = (
        "import sys; from navarch.cli import main\n"
        "for args in (['--help'], ['policy', '--help'], ['policy', 'test', '--help']):\n"
        "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in ('cel', 'navarch.health', 'trio') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "policy" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"
