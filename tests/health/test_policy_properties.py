"""Whatever the daemons send, the judge answers with a valid verdict and never raises."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from navarch.api.wire import HealthEvent, HealthEventType
from navarch.health import Action, HealthJudge, Result, default_policy, parse_policy

# A policy whose rules reach into every corner: history, helpers, maps, stdlib, arithmetic.
CURIOUS = parse_policy(
    """
history_window = "5m"

[[rules]]
name = "metric-arithmetic"
condition = 'event.metrics.a / event.metrics.b > 1.0'
result = "unhealthy"
action = "replace"

[[rules]]
name = "detail-parse"
condition = 'int(event.details.pid) % 7 == 3'
result = "degraded"

[[rules]]
name = "history-scan"
condition = '''
size(history.filter(e, e.message.contains(event.message) && e.gpu_index == event.gpu_index)) > 2
&& size(repeat_pids(60)) >= 1
'''
result = "unhealthy"
action = "drain"

[[rules]]
name = "stdlib"
condition = 'math.bitAnd(event.xid, 0xFF) == 79 || event.message.lowerAscii().startsWith("x")'
result = "degraded"
action = "alert"

[[rules]]
name = "time"
condition = 'event.time > timestamp("2030-01-01T00:00:00Z") + duration("1h")'
result = "degraded"
""",
    "curious.toml",
)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True)
# Lone surrogates included: JSON can carry them ("\ud800") and CEL refuses them.
text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20) | st.text(
    st.characters(codec=None, categories=["Cs", "Ll", "Zs"]), max_size=5
)

events = st.builds(
    HealthEvent,
    type=st.sampled_from(list(HealthEventType)),
    time=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    gpu_index=st.one_of(st.integers(-1, 8), INT64),
    gpu_uuid=text,
    xid=st.one_of(st.sampled_from([0, 13, 31, 43, 48, 63, 79, 154, 149]), INT64),
    message=st.one_of(
        text,
        st.sampled_from(
            [
                "GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)",
                "GPU recovery action changed from 0x0 (None) to 0xffffffff (?)",
                "NETIR_LINK_EVT Nonfatal XC0 i0 Link 08 (0x1 0x2)",
            ]
        ),
    ),
    metrics=st.dictionaries(
        st.sampled_from(
            [
                "a",
                "b",
                "temperature_c",
                "slowdown_c",
                "shutdown_c",
                "reasons",
                "recovery_action",
                "failure",
                "total",
                "link_gen",
                "link_width",
                "replays_per_minute",
                "replay_delta",
            ]
        )
        | text,
        floats,
        max_size=5,
    ),
    details=st.dictionaries(
        st.sampled_from(["pid", "recovery_action", "check"]) | text,
        st.one_of(
            text, st.sampled_from(["7", "GPU_RESET", "0x4", "<unknown>", "99999999999999999999"])
        ),
        max_size=3,
    ),
)
reports = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.floats(0, 50), st.lists(events, max_size=4)),
    max_size=12,
)


def _check(policy, batches) -> None:
    judge = HealthJudge(policy, 120)
    now = 0.0
    for node, step, batch in batches:
        now += step
        verdict = judge.evaluate(node, batch, now)
        assert len(verdict.matches) == len(batch)
        assert isinstance(verdict.health, Result)
        assert isinstance(verdict.action, Action)
        for match in verdict.matches:
            assert match.rule in {"", *(r.name for r in policy.rules)}
            if match.rule == "":
                assert (match.result, match.action) == (Result.HEALTHY, Action.NONE)
        if verdict.cause is not None:
            assert now - verdict.cause.at < 120
        assert judge.verdict(node, now + 121).health is Result.HEALTHY


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reports)
def test_the_default_policy_never_raises(batches):
    _check(default_policy(), batches)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reports)
def test_failing_rules_never_raise(batches):
    _check(CURIOUS, batches)
