"""deploy/prometheus/navarch-alerts.yml: `promtool check rules` accepts it, its unit tests
(navarch-alerts.test.yml) pass under `promtool test rules`, and every alert tells the on-call
person what fired and what to do. The series the rules read are checked against a real control
plane's `/metrics` in test_grafana_dashboard.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from support.metrics_servers import require

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS / "navarch-alerts.yml"
RULE_TESTS = PROMETHEUS / "navarch-alerts.test.yml"
# What issue 16 asks an on-call team to be paged for, by the alert that covers it.
REQUIRED = {
    "NavarchNodesUnhealthy",
    "NavarchRemediationBreakerOpen",
    "NavarchPoolBelowMin",
    "NavarchProviderFailing",
    "NavarchHeartbeatsLost",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        require("the promtool", "NAVARCH_REQUIRE_PROMETHEUS", "promtool is not installed")
        raise AssertionError  # unreachable: require skipped or failed
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, cwd=PROMETHEUS, timeout=60
    )


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rules_unit_tests_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_expectation_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests would catch a rule that stops firing: with one expectation changed to no
    alert, promtool fails."""
    tests = yaml.safe_load(RULE_TESTS.read_text())
    case = next(t for t in tests["tests"] if t["name"] == "a pool below its min_nodes")
    firing = next(a for a in case["alert_rule_test"] if a["exp_alerts"])
    firing["exp_alerts"] = []
    tests["rule_files"] = [str(RULES)]
    broken = tmp_path / "broken.test.yml"
    broken.write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", str(broken))
    assert result.returncode != 0
    assert "NavarchPoolBelowMin" in result.stdout + result.stderr


def test_every_alert_says_what_fired_and_what_to_do() -> None:
    rules = [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]
    alerts = {rule["alert"]: rule for rule in rules}
    assert alerts.keys() >= REQUIRED
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == alerts.keys()
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"].strip(), name
        assert len(rule["annotations"]["description"].split()) >= 10, name
