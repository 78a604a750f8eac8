import re
import time

import pytest
from support.sim_report import empty_report, sample_report

from navarch.sim.html import render_html

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def large_report() -> dict:
    return sample_report(nodes=5000, minutes=100, failures=2000)


def test_page_loads_nothing_from_outside():
    page = render_html(sample_report())

    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script src" not in page.lower()
    assert "<link" not in page.lower()
    assert "@import" not in page
    assert "url(" not in page


def test_strings_from_the_report_are_escaped():
    report = sample_report(nodes=50, minutes=10, failures=5)
    report["scenario"]["name"] = HOSTILE
    report["scenario"]["description"] = HOSTILE
    report["failures"][0]["node"] = HOSTILE
    report["failures_by_type"] = {HOSTILE: 5}
    report["failures_by_xid"] = {HOSTILE: 1}
    report["scaling"][0]["reason"] = HOSTILE
    report["scaling"][0]["pool"] = HOSTILE
    report["samples"][-1]["pools"][HOSTILE] = 3
    report["outages"][0]["name"] = HOSTILE
    report["timeline"][0]["detail"] = HOSTILE
    report["assertions"][0]["message"] = HOSTILE

    page = render_html(report)

    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_failed_run_shows_the_failed_assertion_and_its_message():
    report = sample_report(nodes=50, minutes=10, failures=5)

    page = render_html(report)

    assert ">FAILED<" in page and ">PASSED<" not in page
    failed_row = re.search(r'<tr class="fail">.*?</tr>', page).group(0)
    assert "detection_latency_p90" in failed_row
    assert "p90 detection latency was" in failed_row
    assert "2 of 3 passed" in page


def test_passed_run_shows_the_passed_badge():
    page = render_html(empty_report())

    assert ">PASSED<" in page and ">FAILED<" not in page
    assert '<tr class="fail">' not in page


def test_output_is_deterministic():
    assert render_html(sample_report()) == render_html(sample_report())


def test_empty_report_says_no_failures_and_leaves_out_failure_and_pool_charts():
    page = render_html(empty_report())

    assert "No failures were injected." in page
    assert "The timeline is empty." in page
    assert "Nodes by status" in page
    for title in ("Failures by type", "Top XID codes", "Detection latency", "Pool size"):
        assert f"<h3>{title}</h3>" not in page


def test_sample_report_draws_every_chart():
    page = render_html(sample_report())

    for title in (
        "Nodes by status",
        "Nodes in remediation",
        "Failures and recoveries",
        "Failures by type",
        "Top XID codes",
        "Detection latency",
        "Pool size",
    ):
        assert f"<h3>{title}</h3>" in page
    assert ">79</text>" in page
    assert ">60:00</text>" in page


def test_a_long_run_labels_its_time_axis_in_hours():
    page = render_html(sample_report(nodes=20, minutes=150, failures=5))

    assert ">2:00:00</text>" in page


def test_large_report_stays_small_and_says_what_it_left_out(large_report):
    started = time.perf_counter()
    page = render_html(large_report)
    elapsed = time.perf_counter() - started

    assert len(page.encode()) < 3_000_000
    assert elapsed < 2
    assert "Showing the first 500 of 2,000 failures" in page
    assert "Showing the first 500 of 5,000 entries" in page
    dropped = large_report["timeline_dropped"]
    assert dropped > 0
    assert f"{dropped:,} further entries" in page
    assert page.count("<tr>") <= 3 * 500 + 10


def test_large_report_charts_are_downsampled(large_report):
    assert len(large_report["samples"]) > 300
    page = render_html(large_report)

    polylines = re.findall(r'<polyline[^>]*points="([^"]*)"', page)
    assert polylines
    assert max(len(points.split()) for points in polylines) <= 300


def test_the_remediation_chart_counts_episodes_and_nodes_held_outside_them():
    report = sample_report(nodes=50, minutes=10, failures=5)
    for sample in report["samples"]:
        sample["remediations_open"], sample["remediations_held"] = 3, 1
        # Drained for a GPU reset by a verdict: out of service, in no episode.
        sample["out_of_service_outside_episodes"] = 30
    page = render_html(report)
    chart = page.split("<h3>Nodes in remediation</h3>", 1)[1].split("</figure>", 1)[0]
    for label in ("In an episode", "Held for an operator", "Out of service, no episode"):
        assert label in chart
    for key in ("in_episodes", "remediations_held", "out_of_service_outside_episodes"):
        assert f"<title>{key}</title>" in chart


def test_a_run_with_no_episode_and_no_node_out_of_service_has_no_remediation_chart():
    report = sample_report(nodes=50, minutes=10, failures=5)
    for sample in report["samples"]:
        sample["remediations_open"] = sample["remediations_held"] = 0
        sample["out_of_service_outside_episodes"] = 0
    assert "<h3>Nodes in remediation</h3>" not in render_html(report)


def test_pools_of_one_size_are_drawn_with_their_own_dashes():
    report = sample_report(nodes=50, minutes=10, failures=5)
    for sample in report["samples"]:
        sample["pools"] = {"a": 4, "b": 4}
    page = render_html(report)
    chart = page.split("<h3>Pool size</h3>", 1)[1].split("</figure>", 1)[0]
    lines = re.findall(r"<polyline [^>]*>", chart)
    assert len(lines) == 2
    assert "stroke-dasharray" not in lines[0] and 'stroke-dasharray="8 4"' in lines[1]
    assert chart.count('<svg width="22"') == 2  # a line sample per pool in the legend


def test_detection_latencies_that_are_all_one_value_are_said_not_drawn():
    report = sample_report(nodes=50, minutes=10, failures=5)
    for failure in report["failures"]:
        failure["detection_latency_s"] = 0.0
    page = render_html(report)
    chart = page.split("<h3>Detection latency</h3>", 1)[1].split("</figure>", 1)[0]
    assert "<rect" not in chart
    assert "The detection latency of all 5 failures was 0 s." in chart


def test_one_hidden_xid_code_is_one_code():
    report = sample_report(nodes=50, minutes=10, failures=5)
    report["failures_by_xid"] = {str(code): 20 - code for code in range(1, 14)}
    page = render_html(report)
    assert "1 less frequent XID code is not shown." in page
    report["failures_by_xid"]["99"] = 1
    assert "2 less frequent XID codes are not shown." in render_html(report)


def test_the_timeline_folds_its_routine_start_into_one_row():
    report = sample_report(nodes=50, minutes=10, failures=5)
    startup = [{"t": 0.0, "kind": "scenario.start_fleet", "node": "", "detail": "start_fleet"}]
    startup += [
        {"t": 0.0, "kind": "instance.adopted", "node": f"n{i}", "detail": "listed"}
        for i in range(40)
    ]
    startup += [
        {"t": 5.0, "kind": "node.health_changed", "node": f"n{i}", "detail": "health healthy"}
        for i in range(40)
    ]
    report["timeline"] = startup + report["timeline"]
    page = render_html(report)
    rows = re.findall(r"<tr[^>]*>.*?</tr>", page.split('id="timeline"', 1)[1], re.S)
    assert 'class="folded"' in rows[1]  # after the header row
    assert "1 fleet start, 40 instances adopted, 40 nodes healthy (81 entries" in rows[1]
    assert "instance.adopted" not in page.split('id="timeline"', 1)[1].split("</table>")[0]
