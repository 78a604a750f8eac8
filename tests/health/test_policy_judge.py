from __future__ import annotations

from datetime import timedelta

import pytest
from support.health_events import event, xid

from navarch.health import (
    HISTORY_LIMIT,
    Action,
    HealthJudge,
    Result,
    default_policy,
    parse_policy,
)
from navarch.model import HealthStatus

WINDOW = 600.0
HOUR = 3600.0


@pytest.fixture
def judge() -> HealthJudge:
    return HealthJudge(default_policy(), timedelta(seconds=WINDOW))


def judged(judge: HealthJudge, ev, now: float = 0.0, node: str = "n1"):
    """The match of one event, judged alone at `now`."""
    (match,) = judge.evaluate(node, [ev], now).matches
    return match.result, match.action, match.rule


def policy(rules: str, head: str = ""):
    return parse_policy(head + rules, "test-policy.toml")


# Per event: first match, no match, run-time failures.


def test_first_matching_rule_wins():
    p = policy(
        """
[[rules]]
name = "first"
condition = 'event.xid == 79'
result = "degraded"
action = "alert"

[[rules]]
name = "second"
condition = 'event.xid >= 1'
result = "unhealthy"
action = "replace"
"""
    )
    judge = HealthJudge(p)
    assert judged(judge, xid(79)) == (Result.DEGRADED, Action.ALERT, "first")
    assert judged(judge, xid(48), node="n2") == (Result.UNHEALTHY, Action.REPLACE, "second")


def test_an_event_no_rule_matches_is_healthy(judge):
    verdict = judge.evaluate("n1", [event("thermal", metrics={"temperature_c": 40.0})], 0.0)
    assert verdict.matches[0].rule == ""
    assert (verdict.health, verdict.action, verdict.cause) == (Result.HEALTHY, Action.NONE, None)
    assert verdict.health_status is HealthStatus.HEALTHY


def test_a_failing_condition_is_skipped_counted_and_reported():
    p = policy(
        """
[[rules]]
name = "reads-missing-metric"
condition = 'event.metrics.temperature_c > 80.0'
result = "unhealthy"
action = "replace"

[[rules]]
name = "gives-a-number"
condition = 'event.xid + 1'
result = "unhealthy"

[[rules]]
name = "divides-by-zero"
condition = '1 / (event.xid - event.xid) == 1'
result = "unhealthy"

[[rules]]
name = "any-xid"
condition = 'event.type == "xid"'
result = "degraded"
action = "alert"
"""
    )
    judge = HealthJudge(p)
    verdict = judge.evaluate("n1", [xid(13), xid(31)], 0.0)
    assert [m.rule for m in verdict.matches] == ["any-xid", "any-xid"]
    assert verdict.health is Result.DEGRADED
    first = verdict.matches[0].errors
    assert [e.rule for e in first] == ["reads-missing-metric", "gives-a-number", "divides-by-zero"]
    assert "temperature_c" in first[0].message
    assert first[1].message == "condition gave int 14, not true or false"
    assert "division by zero" in first[2].message
    assert len(verdict.errors) == 6
    assert judge.rule_errors == {
        "reads-missing-metric": 2,
        "gives-a-number": 2,
        "divides-by-zero": 2,
    }
    assert judge.rule_matches == {"any-xid": 2}


def test_text_that_cel_cannot_hold_is_mended_not_fatal(judge):
    # JSON can carry lone surrogates ("\ud800"); CEL strings cannot.
    ev = xid(13, pid="\ud800", message="bad \udc00", details={"k\ud801": "v\udfff"})
    verdict = judge.evaluate("n1", [ev, ev], 0.0)
    assert [m.rule for m in verdict.matches] == ["app-error", "app-error"]
    assert verdict.errors == ()


def test_odd_numbers_in_metrics_fail_only_the_rules_that_read_them(judge):
    ev = event("clocks", metrics={"reasons": float("nan"), "recovery_action": float("inf")})
    verdict = judge.evaluate("n1", [ev], 0.0)
    assert verdict.matches[0].rule == ""
    assert [e.rule for e in verdict.errors] == ["clocks-hardware-slowdown"]


# Per node: the worst result over the window.


def test_xid_79_keeps_the_node_unhealthy_until_the_window_passes(judge):
    verdict = judge.evaluate("n1", [xid(79)], 0.0)
    assert (verdict.health, verdict.action, verdict.rule) == (
        Result.UNHEALTHY,
        Action.REPLACE,
        "xid-replace",
    )
    calm = event("thermal", metrics={"temperature_c": 50.0, "slowdown_c": 87.0})
    for now in (60.0, 300.0, WINDOW - 1):
        verdict = judge.evaluate("n1", [calm], now)
        assert verdict.matches[0].result is Result.HEALTHY
        assert verdict.health is Result.UNHEALTHY
        assert verdict.cause.event.xid == 79
    assert judge.verdict("n1", WINDOW - 0.5).health is Result.UNHEALTHY
    assert judge.verdict("n1", WINDOW).health is Result.HEALTHY
    assert judge.evaluate("n1", [calm], WINDOW + 1).health is Result.HEALTHY


def test_the_worst_result_then_the_most_disruptive_action_decides(judge):
    judge.evaluate("n1", [xid(79, at=0)], 0.0)  # unhealthy, replace
    verdict = judge.evaluate("n1", [xid(46, at=10)], 10.0)  # unhealthy, reset_gpu
    assert verdict.matches[0].action is Action.RESET_GPU
    assert (verdict.health, verdict.action, verdict.cause.event.xid) == (
        Result.UNHEALTHY,
        Action.REPLACE,
        79,
    )
    # The replace ages out first; the reset it was hiding is still within the window.
    verdict = judge.verdict("n1", WINDOW + 5)
    assert (verdict.health, verdict.action, verdict.cause.event.xid) == (
        Result.UNHEALTHY,
        Action.RESET_GPU,
        46,
    )


def test_a_degraded_event_outlives_an_older_unhealthy_one(judge):
    judge.evaluate("n1", [xid(79)], 0.0)
    judge.evaluate("n1", [xid(13, pid=1)], 300.0)
    assert judge.verdict("n1", 599.0).health is Result.UNHEALTHY
    verdict = judge.verdict("n1", 650.0)
    assert (verdict.health, verdict.rule) == (Result.DEGRADED, "app-error")
    assert judge.verdict("n1", 900.0).health is Result.HEALTHY


def test_nodes_are_judged_apart(judge):
    judge.evaluate("bad", [xid(79)], 0.0)
    assert judge.evaluate("good", [xid(63)], 1.0).health is Result.HEALTHY
    assert judge.verdict("bad", 1.0).health is Result.UNHEALTHY
    judge.forget("bad")
    assert judge.verdict("bad", 1.0).health is Result.HEALTHY


def test_the_window_can_be_given_in_seconds():
    judge = HealthJudge(default_policy(), 30)
    judge.evaluate("n1", [xid(79)], 0.0)
    assert judge.verdict("n1", 29.0).health is Result.UNHEALTHY
    assert judge.verdict("n1", 30.0).health is Result.HEALTHY
    with pytest.raises(ValueError, match="positive"):
        HealthJudge(default_policy(), 0)


# Counting application errors.


def test_one_application_error_is_degraded_with_an_alert(judge):
    assert judged(judge, xid(13, pid=100)) == (Result.DEGRADED, Action.ALERT, "app-error")


@pytest.mark.parametrize("code", [8, 13, 31, 32, 39, 43, 45, 60, 68, 69, 94])
def test_application_errors_escalate_when_three_processes_hit_one_gpu(judge, code):
    results = [
        judged(judge, xid(code, pid=pid, at=i * 60), now=i * 60)
        for i, pid in enumerate((100, 101, 102))
    ]
    assert [r[0] for r in results] == [Result.DEGRADED, Result.DEGRADED, Result.UNHEALTHY]
    assert results[2] == (Result.UNHEALTHY, Action.DRAIN, "app-error-repeated")
    assert judge.verdict("n1", 200.0).action is Action.DRAIN


def test_application_errors_from_the_same_process_stay_degraded(judge):
    for i in range(10):
        assert judged(judge, xid(13, pid=4242), now=i * 10.0)[0] is Result.DEGRADED
    assert judge.verdict("n1", 100.0).health is Result.DEGRADED


def test_application_errors_on_different_gpus_stay_degraded(judge):
    for i, gpu in enumerate(range(8)):
        assert judged(judge, xid(13, pid=100 + i, gpu=gpu), now=i * 10.0)[0] is Result.DEGRADED


def test_application_errors_of_different_codes_are_counted_apart(judge):
    codes = (13, 31, 43, 45)
    for i, code in enumerate(codes):
        assert judged(judge, xid(code, pid=100 + i), now=i * 10.0)[0] is Result.DEGRADED


def test_application_errors_without_a_process_id_never_escalate(judge):
    for i, pid in enumerate([None, "<unknown>", "'<unknown>'", None, "-1"]):
        assert judged(judge, xid(13, pid=pid), now=i * 10.0)[0] is Result.DEGRADED


def test_application_errors_more_than_an_hour_apart_do_not_add_up(judge):
    assert judged(judge, xid(13, pid=1), now=0.0)[0] is Result.DEGRADED
    assert judged(judge, xid(13, pid=2), now=1800.0)[0] is Result.DEGRADED
    assert judged(judge, xid(13, pid=3), now=HOUR + 1)[0] is Result.DEGRADED
    assert judged(judge, xid(13, pid=4), now=HOUR + 2)[0] is Result.UNHEALTHY


def test_events_of_one_report_count_each_other_in_order(judge):
    verdict = judge.evaluate("n1", [xid(31, pid=p) for p in (7, 8, 9, 10)], 0.0)
    assert [m.rule for m in verdict.matches] == [
        "app-error",
        "app-error",
        "app-error-repeated",
        "app-error-repeated",
    ]
    assert verdict.health is Result.UNHEALTHY


def test_the_plain_cel_count_over_history_agrees_with_repeat_pids():
    fast = "size(repeat_pids(3600)) >= 3"
    slow = """size(history.filter(e, e.type == event.type && e.xid == event.xid
    && e.gpu_index == event.gpu_index && e.pid != "" && e.age_seconds <= 3600.0)
  .map(e, e.pid).distinct()) >= 3"""
    judges = [
        HealthJudge(policy(f"[[rules]]\nname='r'\ncondition='''{c}'''\nresult='unhealthy'\n"))
        for c in (fast, slow)
    ]
    stream = [
        (0.0, xid(13, pid=1)),
        (10.0, xid(13, pid=1)),
        (20.0, xid(13, pid=2, gpu=1)),
        (30.0, xid(31, pid=3)),
        (40.0, xid(13)),
        (50.0, xid(13, pid=2)),
        (60.0, xid(13, pid=4)),
        (4000.0, xid(13, pid=5)),
        (4010.0, xid(13, pid=6)),
        (4020.0, xid(13, pid=7)),
    ]
    outcomes = [[judged(j, ev, now)[0] for now, ev in stream] for j in judges]
    assert outcomes[0] == outcomes[1]
    assert outcomes[0].count(Result.UNHEALTHY) == 2


def test_history_holds_at_most_the_limit():
    limit = HISTORY_LIMIT
    p = policy(
        f"""
[[rules]]
name = "full"
condition = 'repeats(100000) == {limit} && size(history) == {limit}'
result = "degraded"

[[rules]]
name = "over"
condition = 'repeats(100000) > {limit} || size(history) > {limit}'
result = "unhealthy"
""",
        head='history_window = "1d"\n',
    )
    judge = HealthJudge(p, timedelta(days=1))
    rules = [judged(judge, xid(13, pid=1), now=float(i))[2] for i in range(HISTORY_LIMIT + 50)]
    assert rules.count("over") == 0
    assert rules[HISTORY_LIMIT - 1 :] == ["full"] * 51


def test_history_entries_carry_their_age():
    p = policy(
        """
[[rules]]
name = "old-79"
condition = 'history.exists(e, e.xid == 79 && e.age_seconds >= 100.0) && event.age_seconds == 0.0'
result = "degraded"
"""
    )
    judge = HealthJudge(p)
    assert judged(judge, xid(79), now=0.0)[2] == ""
    assert judged(judge, xid(13), now=99.0)[2] == ""
    assert judged(judge, xid(13), now=100.0)[2] == "old-79"


def test_an_ignored_xid_stays_in_the_history_without_an_alert(judge):
    verdict = judge.evaluate("n1", [xid(63)], 0.0)
    assert (verdict.health, verdict.action) == (Result.HEALTHY, Action.NONE)
    assert [m.rule for m in verdict.matches] == ["xid-ignore"]


def test_every_catalog_code_has_a_rule_of_its_own_bucket():
    from navarch.health.doc_table import judge_xid
    from navarch.telemetry.xid_catalog import catalog

    for entry in catalog().entries.values():
        # Only codes outside the catalog, and CHECK_UVM, reach the catch-all rule.
        assert judge_xid(entry.code).rule != "xid-other" or entry.immediate == "CHECK_UVM"


# XID 154 and the driver's recovery action.


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)",
            (Result.UNHEALTHY, Action.RESET_GPU, "recovery-reset-gpu"),
        ),
        (
            "GPU recovery action changed from 0x4 (Drain and Reset) to 0x2 (Node Reboot Required)",
            (Result.UNHEALTHY, Action.REBOOT, "recovery-reboot"),
        ),
        (
            "GPU recovery action changed from 0x0 (None) to 0x4 (Drain and Reset)",
            (Result.UNHEALTHY, Action.RESET_GPU, "recovery-reset-gpu"),
        ),
        (
            "GPU recovery action changed from 0x0 (None) to 0x3 (Drain P2P)",
            (Result.UNHEALTHY, Action.DRAIN, "recovery-drain-p2p"),
        ),
        (
            "GPU recovery action changed from 0x1 (GPU Reset Required) to 0x0 (None)",
            (Result.HEALTHY, Action.NONE, "xid-154-recovered"),
        ),
        (
            "GPU recovery action changed from 0x0 (None) to 0x9 (Something New)",
            (Result.DEGRADED, Action.ALERT, "xid-154-unreadable"),
        ),
        ("", (Result.DEGRADED, Action.ALERT, "xid-154-unreadable")),
    ],
)
def test_xid_154_follows_its_payload(judge, message, expected):
    assert judged(judge, xid(154, message=message)) == expected


@pytest.mark.parametrize(
    ("carrier", "expected"),
    [
        ({"details": {"recovery_action": "GPU_RESET"}}, Action.RESET_GPU),
        ({"details": {"recovery_action": "gpu_reset"}}, Action.RESET_GPU),
        ({"details": {"recovery_action": "4"}}, Action.RESET_GPU),
        ({"details": {"recovery_action": "0x7"}}, Action.REBOOT),
        ({"metrics": {"recovery_action": 2.0}}, Action.REBOOT),
        ({"metrics": {"recovery_action": 6.0}}, Action.REBOOT),
        ({"metrics": {"recovery_action": 3.0}}, Action.DRAIN),
    ],
)
def test_the_recovery_action_overrides_the_xid_bucket(judge, carrier, expected):
    # XID 79's bucket says replace; the driver says what recovery it needs.
    result, action, rule = judged(judge, xid(79, **carrier))
    assert (result, action) == (Result.UNHEALTHY, expected)
    assert rule.startswith("recovery-")


def test_a_recovery_action_of_none_leaves_the_bucket_in_charge(judge):
    assert judged(judge, xid(79, metrics={"recovery_action": 0.0}))[1] is Action.REPLACE
    assert judged(judge, xid(13, details={"recovery_action": "NONE"}), node="n2")[2] == (
        "app-error"
    )


def test_recover_imex_domain_asks_a_person(judge):
    ev = event("clocks", metrics={"recovery_action": 5.0})
    assert judged(judge, ev) == (Result.DEGRADED, Action.ALERT, "recovery-imex-domain")


def test_recovery_action_names_match_nvml():
    from navarch.health.variables import RECOVERY_ACTIONS
    from navarch.telemetry.nvml import RecoveryAction

    assert {a.value: a.name for a in RecoveryAction} == RECOVERY_ACTIONS


# XIDs by catalog bucket.


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (79, (Result.UNHEALTHY, Action.REPLACE, "xid-replace")),
        (54, (Result.UNHEALTHY, Action.REPLACE, "xid-replace")),
        (151, (Result.UNHEALTHY, Action.REPLACE, "xid-replace")),
        (46, (Result.UNHEALTHY, Action.RESET_GPU, "xid-reset-gpu")),
        (119, (Result.UNHEALTHY, Action.RESET_GPU, "xid-reset-gpu")),
        (48, (Result.UNHEALTHY, Action.RESET_GPU, "xid-double-bit-ecc")),
        (74, (Result.UNHEALTHY, Action.RESET_GPU, "xid-nvlink")),
        (149, (Result.UNHEALTHY, Action.RESET_GPU, "xid-nvlink5")),
        (63, (Result.HEALTHY, Action.NONE, "xid-ignore")),
        (92, (Result.HEALTHY, Action.NONE, "xid-ignore")),
        (106, (Result.HEALTHY, Action.NONE, "xid-ignore")),
        (141, (Result.HEALTHY, Action.NONE, "xid-ignore")),
        (40, (Result.DEGRADED, Action.ALERT, "app-error")),  # RESTART_APP
        (135, (Result.DEGRADED, Action.ALERT, "app-error")),
        (1, (Result.UNHEALTHY, Action.REPLACE, "xid-replace")),  # unused: CONTACT_SUPPORT
        (142, (Result.UNHEALTHY, Action.REPLACE, "xid-replace")),
        (78, (Result.UNHEALTHY, Action.DRAIN, "xid-update-software")),
        (159, (Result.DEGRADED, Action.ALERT, "xid-other")),  # CHECK_UVM
        # No bucket in the catalog: one rule each, from the catalog's trigger conditions.
        (162, (Result.HEALTHY, Action.NONE, "xid-power-smoothing-reengaged")),
        (163, (Result.DEGRADED, Action.ALERT, "xid-no-bucket")),
        (165, (Result.DEGRADED, Action.ALERT, "xid-no-bucket")),
        (167, (Result.UNHEALTHY, Action.REBOOT, "xid-pcie-fatal-timeout")),
        (169, (Result.UNHEALTHY, Action.RESET_GPU, "xid-micro-controller-halt")),
        (171, (Result.UNHEALTHY, Action.RESET_GPU, "xid-uncorrectable-memory-detail")),
        (172, (Result.UNHEALTHY, Action.RESET_GPU, "xid-uncorrectable-memory-detail")),
        (173, (Result.DEGRADED, Action.ALERT, "xid-other")),  # not in the catalog
        (9999, (Result.DEGRADED, Action.ALERT, "xid-other")),
    ],
)
def test_xids_follow_the_catalogs_immediate_bucket(judge, code, expected):
    assert judged(judge, xid(code)) == expected


def test_a_nonfatal_nvlink5_error_is_degraded(judge):
    line = "NETIR_LINK_EVT Nonfatal XC0 i0 Link 08 (0x004505c6 0x00000000 0x00000000)"
    assert judged(judge, xid(149, message=line))[2] == "xid-nvlink5-nonfatal"
    fatal = line.replace("Nonfatal", "Fatal")
    assert judged(judge, xid(149, message=fatal), node="n2")[2] == "xid-nvlink5"


def test_a_lost_gpu_is_replaced(judge):
    assert judged(judge, event("gpu_lost")) == (Result.UNHEALTHY, Action.REPLACE, "gpu-lost")


def test_a_failed_check_is_degraded_with_an_alert(judge):
    ev = event("check_failed", gpu=-1, details={"check": "nvml"})
    assert judged(judge, ev) == (Result.DEGRADED, Action.ALERT, "check-failed")


# Sampled counters against DCGM's thresholds.


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"failure": 1.0}, (Result.UNHEALTHY, Action.REPLACE, "remapped-rows-failure")),
        ({"failure": 0.0, "uncorrectable": 512.0}, (Result.DEGRADED, Action.ALERT,
                                                   "remapped-rows-uncorrectable")),
        ({"failure": 0.0, "uncorrectable": 511.0}, (Result.HEALTHY, Action.NONE, "")),
        ({"pending": 1.0}, (Result.DEGRADED, Action.ALERT, "remapped-rows-pending")),
    ],
)  # fmt: skip
def test_remapped_rows(judge, metrics, expected):
    assert judged(judge, event("remapped_rows", metrics=metrics)) == expected


@pytest.mark.parametrize(
    ("total", "expected"),
    [(62.0, Result.HEALTHY), (63.0, Result.UNHEALTHY), (200.0, Result.UNHEALTHY)],
)
def test_retired_pages_fail_at_63(judge, total, expected):
    assert judged(judge, event("retired_pages", metrics={"total": total}))[0] is expected


@pytest.mark.parametrize(
    ("temperature", "slowdown", "shutdown", "expected"),
    [
        (86.0, 87.0, 92.0, (Result.HEALTHY, Action.NONE, "")),
        (87.0, 87.0, 92.0, (Result.DEGRADED, Action.ALERT, "thermal-slowdown")),
        (92.0, 87.0, 92.0, (Result.UNHEALTHY, Action.REPLACE, "thermal-shutdown")),
        # A GPU with lower limits is judged by its own, not by a fixed number of degrees.
        (82.0, 80.0, 85.0, (Result.DEGRADED, Action.ALERT, "thermal-slowdown")),
        (90.0, 95.0, 100.0, (Result.HEALTHY, Action.NONE, "")),
        # Unknown thresholds (0) judge nothing.
        (120.0, 0.0, 0.0, (Result.HEALTHY, Action.NONE, "")),
    ],
)
def test_temperature_against_the_gpus_own_thresholds(
    judge, temperature, slowdown, shutdown, expected
):
    metrics = {"temperature_c": temperature, "slowdown_c": slowdown, "shutdown_c": shutdown}
    assert judged(judge, event("thermal", metrics=metrics)) == expected


def test_a_thermal_event_without_thresholds_is_not_an_error(judge):
    verdict = judge.evaluate("n1", [event("thermal", metrics={"temperature_c": 99.0})], 0.0)
    assert verdict.health is Result.HEALTHY
    assert verdict.errors == ()


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"replay_delta": 1.0}, (Result.UNHEALTHY, "nvlink-replay-recovery")),
        ({"recovery_delta": 2.0}, (Result.UNHEALTHY, "nvlink-replay-recovery")),
        ({"crc_per_second": 100.0, "crc_delta": 6000.0}, (Result.UNHEALTHY, "nvlink-crc-rate")),
        ({"crc_per_second": 2.0, "crc_delta": 120.0}, (Result.DEGRADED, "nvlink-crc")),
        ({"replay_delta": 0.0, "recovery_delta": 0.0, "crc_delta": 0.0}, (Result.HEALTHY, "")),
    ],
)
def test_nvlink_counters(judge, metrics, expected):
    result, _, rule = judged(judge, event("nvlink", metrics=metrics))
    assert (result, rule) == expected


@pytest.mark.parametrize(
    ("gen", "width", "rate", "expected"),
    [
        (4.0, 16.0, 15.0, Result.HEALTHY),  # budget 0.96 x 16 = 15.36 a minute
        (4.0, 16.0, 16.0, Result.DEGRADED),
        (3.0, 16.0, 8.0, Result.DEGRADED),  # budget 7.68
        (5.0, 16.0, 30.0, Result.HEALTHY),  # budget 30.72
        (5.0, 8.0, 16.0, Result.DEGRADED),  # budget 15.36
    ],
)
def test_pcie_replays_against_the_links_budget(judge, gen, width, rate, expected):
    metrics = {"link_gen": gen, "link_width": width, "replays_per_minute": rate}
    assert judged(judge, event("pcie", metrics=metrics))[0] is expected


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [(0x40, Result.DEGRADED), (0x8, Result.DEGRADED), (0x80, Result.DEGRADED),
     (0x4, Result.HEALTHY), (0x1 | 0x20, Result.HEALTHY)],
)  # fmt: skip
def test_only_hardware_clock_slowdowns_count(judge, reasons, expected):
    assert judged(judge, event("clocks", metrics={"reasons": float(reasons)}))[0] is expected


def test_double_bit_ecc_errors_ask_for_a_reset(judge):
    ev = event("ecc", metrics={"dbe_volatile": 1.0, "sbe_volatile": 30.0})
    assert judged(judge, ev) == (Result.UNHEALTHY, Action.RESET_GPU, "ecc-double-bit")
