"""deploy/grafana/navarch-dashboard.json: a Grafana dashboard on a templated Prometheus data
source, whose every query runs on a real Prometheus scraping a real control plane on loopback, and
whose series (with those of the alert rules) are all ones the control plane serves."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from support.live_control_plane import LiveControlPlane
from support.metrics_servers import run_prometheus
from support.pool_config import FAILOVER_POOL
from support.waiting import wait_for

from navarch.config import parse_config
from navarch.plugins.manager import load_plugins

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "navarch-dashboard.json"
RULES = DEPLOY / "prometheus" / "navarch-alerts.yml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's variables, as a query of the last minute with every pool chosen sends them.
VARIABLES = {"$__rate_interval": "1m", "$pool": ".*"}
# Panels whose queries return series on a fleet of two healthy nodes in one pool.
WITH_DATA = {
    "Nodes",
    "GPUs",
    "Nodes by status",
    "Nodes by health",
    "Pool size, target and bounds",
    "Nodes by pool and health",
    "Provider errors by kind",
    "Provider blocks",
    "Circuit breakers",
    "GPU temperature",
    "GPUs above 85 °C",
    "GPU utilization",
    "GPU power",
    "GPU memory in use",
    "Hottest GPUs",
    "Heartbeat age",
    "Silent nodes",
    "API calls by code",
}
CONFIG = (
    FAILOVER_POOL
    + """
[metrics]
per_node = true
per_gpu = true
"""
)
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "untyped": ("",),
}
PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: navarch
    static_configs:
      - targets: ["{target}"]
"""


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def queried(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in document["panels"] if p["type"] != "row"]


def expressions() -> list[str]:
    panels = [t["expr"] for p in queried(dashboard()) for t in p["targets"]]
    rules = yaml.safe_load(RULES.read_text())
    alerts = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    return panels + alerts


def test_the_dashboard_is_a_grafana_dashboard_on_a_templated_prometheus() -> None:
    document = dashboard()
    assert document["uid"] and document["title"] and document["schemaVersion"] >= 36
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["pool"]["datasource"] == DATASOURCE
    panels = document["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    assert {p["title"] for p in panels if p["type"] == "row"} == {
        "Fleet",
        "Pools",
        "Remediation",
        "GPUs",
        "Heartbeats and API",
    }
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, (panel["title"], "overlaps", cells[x, y])
                cells[x, y] = panel["title"]
    for panel in queried(document):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]
    assert {p["title"] for p in queried(document)} >= WITH_DATA


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveControlPlane]:
    """A control plane whose pool holds two fake machines, each a daemon with 8 GPUs."""
    config = parse_config(CONFIG, plugins=load_plugins(entry_points=False))
    with LiveControlPlane(tmp_path_factory.mktemp("navarch") / "navarch.db", config=config) as cp:
        wait_for("two nodes with GPU readings", lambda: _count_gpus(cp.url) == 16)
        # One call over HTTP, so that the API's own series have a sample.
        httpx.post(
            f"{cp.url}/navarch.v1.ControlPlaneService/ListNodes",
            json={},
            headers={"Content-Type": "application/json"},
        )
        yield cp


def _count_gpus(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "navarch_pool_gpu_temperature_celsius_count":
                return sample.value
    return 0


def test_every_series_the_rules_and_the_dashboard_read_is_served(live: LiveControlPlane) -> None:
    served = set()
    # A family with no sample yet (no XID reported) still has its TYPE line: it counts as served.
    for family in text_string_to_metric_families(httpx.get(f"{live.url}/metrics").text):
        served.update(f"{family.name}{suffix}" for suffix in SUFFIXES[family.type])
        served.update(sample.name for sample in family.samples)
    used = {name for expr in expressions() for name in re.findall(r"\bnavarch_\w+", expr)}
    assert len(used) > 20
    assert used - served == set()


@pytest.fixture(scope="module")
def prometheus(live: LiveControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus's URL, scraping the control plane every second as the job "navarch"."""
    config = PROMETHEUS_CONFIG.format(target=urlsplit(live.url).netloc)
    with run_prometheus(tmp_path_factory.mktemp("prometheus"), config) as (url, log):
        # Three scrapes at least, so that every rate() over the last minute has two samples.
        wait_for(
            f"three scrapes of the control plane ({log})",
            lambda: _query(url, 'count_over_time(navarch_pool_size{pool="dev"}[1m]) >= 3'),
            timeout=60,
        )
        yield url


def _query(url: str, expr: str) -> list[Any]:
    try:
        answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}).json()
    except (httpx.HTTPError, ValueError):
        return []
    assert answer["status"] == "success", (expr, answer)
    result: list[Any] = answer["data"]["result"]
    return result


def test_every_panel_query_runs_and_the_fleet_panels_have_data(prometheus: str) -> None:
    empty = []
    for panel in queried(dashboard()):
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in VARIABLES.items():
                expr = expr.replace(variable, value)
            answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}).json()
            assert answer["status"] == "success", (panel["title"], expr, answer)
            if panel["title"] in WITH_DATA and not answer["data"]["result"]:
                empty.append((panel["title"], expr))
    assert empty == []
    [size] = _query(prometheus, 'navarch_pool_size{job="navarch",pool="dev"}')
    assert size["value"][1] == "2"
    [hot] = _query(prometheus, "count(topk(10, navarch_gpu_temperature_celsius))")
    assert hot["value"][1] == "10"
