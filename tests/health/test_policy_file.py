from __future__ import annotations

from datetime import timedelta

import pytest

from navarch.errors import ConfigError
from navarch.health import Action, Result, default_policy, load_policy, parse_policy

GOOD_RULE = """
[[rules]]
name = "fallen-off"
condition = 'event.type == "xid" && event.xid == 79'
result = "unhealthy"
action = "replace"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_policy(text, "p.toml")
    assert info.value.source == "p.toml"
    return info.value.problems


def test_a_minimal_policy_and_its_defaults():
    policy = parse_policy(
        """
[[rules]]
name = "any-xid"
condition = 'event.type == "xid"'
result = "degraded"
""",
        "p.toml",
    )
    (rule,) = policy.rules
    assert (rule.name, rule.result, rule.action) == ("any-xid", Result.DEGRADED, Action.NONE)
    assert (policy.name, policy.history_window, policy.source) == ("", timedelta(hours=1), "p.toml")
    assert not rule.uses_history


def test_top_level_keys():
    policy = parse_policy(
        'name = "fleet"\ndescription = "ours"\nhistory_window = "2h30m"\n' + GOOD_RULE
    )
    assert (policy.name, policy.description) == ("fleet", "ours")
    assert policy.history_window == timedelta(hours=2, minutes=30)


def test_the_default_policy_loads_for_an_empty_path():
    assert load_policy(None) is default_policy()
    assert load_policy("") is default_policy()


def test_every_default_rule_is_documented_and_sourced():
    policy = default_policy()
    assert len({r.name for r in policy.rules}) == len(policy.rules)
    for rule in policy.rules:
        assert rule.description.strip(), rule.name
        assert rule.source.strip(), rule.name


def test_a_policy_file_is_read(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(GOOD_RULE)
    assert load_policy(path).rules[0].name == "fallen-off"
    assert load_policy(str(path)).source == str(path)
    with pytest.raises(ConfigError, match="file not found"):
        load_policy(tmp_path / "missing.toml")


def test_toml_syntax_errors_name_the_line():
    (problem,) = problems('[[rules]]\nname = "x"\ncondition = \n')
    assert problem.startswith("TOML syntax error:")
    assert "line 3" in problem


def test_unknown_keys_come_with_a_suggestion():
    found = problems(
        'histroy_window = "1h"\nowner = "me"\n'
        + GOOD_RULE.replace('action = "replace"', 'acton = "replace"')
    )
    assert found == [
        "histroy_window: unknown key (did you mean 'history_window'?)",
        "owner: unknown key",
        "rule \"fallen-off\": acton: unknown key (did you mean 'action'?)",
    ]


def test_every_problem_is_reported_at_once():
    found = problems(
        """
[[rules]]
condition = 'true'
result = "healthy"

[[rules]]
name = "no-condition"
result = "degraded"

[[rules]]
name = "empty-condition"
condition = "  "
result = "degraded"

[[rules]]
name = "bad-values"
condition = 'true'
result = "sick"
action = "restart"

[[rules]]
name = "no-result"
condition = 'true'

[[rules]]
name = "healthy-but-replace"
condition = 'true'
result = "healthy"
action = "replace"

[[rules]]
name = 7
condition = 'true'
result = "healthy"
"""
    )
    assert found == [
        "rules[0]: name is required",
        'rule "no-condition": condition is required',
        'rule "empty-condition": condition: expected a CEL expression, got "  "',
        'rule "bad-values": result: expected one of healthy, degraded, unhealthy, got "sick"',
        'rule "bad-values": action: expected one of none, alert, cordon, drain, reset_gpu, '
        'reboot, replace, got "restart"',
        'rule "no-result": result is required (one of healthy, degraded, unhealthy)',
        'rule "healthy-but-replace": action "replace" does not fit result "healthy"; '
        'a healthy result allows "none" or "alert"',
        "rules[6]: name: expected a non-empty string, got 7",
    ]


def test_duplicate_rule_names():
    found = problems(GOOD_RULE + GOOD_RULE.replace("79", "48") + GOOD_RULE)
    assert found == [
        'rules[1]: duplicate rule name "fallen-off" (rules[0] has it too)',
        'rules[2]: duplicate rule name "fallen-off" (rules[0] has it too)',
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "rules: a policy needs at least one [[rules]] table"),
        ('rules = "all"', "rules: expected an array of tables ([[rules]])"),
        ("history_window = 60\n" + GOOD_RULE, "history_window: a duration needs a unit"),
        ('history_window = "0s"\n' + GOOD_RULE, "history_window: expected a positive duration"),
        ("name = 5\n" + GOOD_RULE, "name: expected a string, got 5"),
    ],
)
def test_policy_shape(text, expected):
    (problem,) = problems(text)
    assert problem.startswith(expected)


# CEL errors: the rule, and the position within the condition and within the file.


def test_a_syntax_error_in_a_one_line_condition():
    (problem,) = problems(
        """
[[rules]]
name = "broken"
condition = 'event.xid == '
result = "unhealthy"
"""
    )
    assert problem.startswith(
        'rule "broken": condition line 1, column 14 (file line 4, column 27): Syntax error: '
        "mismatched input '<EOF>'"
    )


def test_a_syntax_error_in_a_multi_line_condition():
    (problem,) = problems(
        """name = "x"

[[rules]]
name = "broken"
condition = '''
event.type == "xid"
  && event.xid === 79
'''
result = "unhealthy"
"""
    )
    assert problem.startswith(
        'rule "broken": condition line 2, column 18 (file line 7, column 18): Syntax error: '
        "token recognition error at: '= '"
    )


def test_a_syntax_error_in_a_basic_string_condition():
    (problem,) = problems(
        '[[rules]]\nname = "b"\ncondition = "event.xid &&& 1"\nresult = "degraded"\n'
    )
    assert problem.startswith('rule "b": condition line 1, column 13 (file line 3, column 26):')


def test_an_inline_rule_still_gets_the_position_within_its_condition():
    (problem,) = problems('rules = [{name = "i", condition = "1 +", result = "degraded"}]')
    assert problem.startswith('rule "i": condition line 1, column 4: Syntax error')


def test_unknown_names_are_found_when_the_policy_loads():
    found = problems(
        """
[[rules]]
name = "typos"
condition = '''
event.tpye == "xid" && evnt.xid == 79 && sizee(history) > 1
  && history.exists(e, e.gpu_indx == 0)
'''
result = "unhealthy"
"""
    )
    assert found == [
        'rule "typos": condition line 1, column 24 (file line 5, column 24): '
        'unknown variable "evnt" (rules see event and history)',
        'rule "typos": condition line 1, column 42 (file line 5, column 42): '
        "unknown function \"sizee\" (did you mean 'size'?)",
        'rule "typos": condition line 1, column 7 (file line 5, column 7): '
        "events have no field \"tpye\" (did you mean 'type'?)",
        'rule "typos": condition line 2, column 26 (file line 6, column 26): '
        "events have no field \"gpu_indx\" (did you mean 'gpu_index'?)",
    ]


def test_names_that_are_fine():
    policy = parse_policy(
        """
[[rules]]
name = "all-kinds"
condition = '''
"event.nope" != "history.x" && event.message != 'sizee(x)'
&& [1, 2].exists(n, n > 1) && history.map(h, h.pid).distinct().size() >= 0
&& math.bitAnd(event.xid, 0xFF) >= 0 && event.message.lowerAscii() == event.message.lowerAscii()
&& size(repeat_pids(60)) + repeats(60) >= 0 && event.metrics.all(k, k != "")
'''
result = "degraded"
""",
        "p.toml",
    )
    assert policy.rules[0].uses_history


def test_load_policy_reports_the_file_it_read(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(GOOD_RULE.replace("== 79", "== "))
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert str(info.value).startswith(f'{path}: rule "fallen-off": condition line 1, column 37')
