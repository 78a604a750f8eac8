"""The built-in `prometheus` metrics source against a real Prometheus server that scrapes an
exporter the test serves."""

from __future__ import annotations

import pytest
import trio
from support.metrics_servers import Exporter, free_port, prometheus_server, wait_for_sample
from support.pool_config import pool_config

from navarch.config import parse_config
from navarch.errors import ConfigError, NavarchError
from navarch.plugins import MetricsSource

__all__ = ["prometheus_server"]


def source(plugins, url: str, query: str, extra: str = ""):
    table = f'[pools.p.metrics]\ntype = "prometheus"\nurl = "{url}"\nquery = \'{query}\'\n{extra}'
    return pool_config(plugins, table).metrics.create(MetricsSource)


async def scraped(prometheus_server: str, text: str, query: str, value: str) -> None:
    """Serves `text` from the exporter and waits until Prometheus has scraped it."""
    Exporter.text = text
    await trio.to_thread.run_sync(wait_for_sample, prometheus_server, query, value)


async def test_a_vector_of_one_sample_is_the_depth(plugins, prometheus_server: str) -> None:
    text = 'navarch_queue_depth{pool="p"} 12\nnavarch_queue_depth{pool="q"} 30\n'
    await scraped(prometheus_server, text, 'navarch_queue_depth{pool="q"}', "30")
    reader = source(plugins, prometheus_server, 'navarch_queue_depth{pool="{pool}"}')
    assert await reader.queue_depth("p") == 12
    assert await reader.queue_depth("q") == 30
    summed = source(plugins, prometheus_server, "sum(navarch_queue_depth)")
    assert await summed.queue_depth("p") == 42


async def test_a_scalar_is_rounded_half_up(plugins, prometheus_server: str) -> None:
    assert await source(plugins, prometheus_server, "scalar(vector(2.5))").queue_depth("p") == 3
    assert await source(plugins, prometheus_server, "vector(7.4)").queue_depth("p") == 7


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("navarch_queue_depth", "returned 2 series, not 1; aggregate it, with sum"),
        ('navarch_queue_depth{pool="none"}', "returned 0 series, not 1; add `or vector(0)`"),
        ("vector(-3)", "returned -3, not a depth of 0 or more"),
        ("vector(NaN)", "returned NaN, not a depth of 0 or more"),
        ("navarch_queue_depth[1m]", "returned a matrix result, not a scalar or a vector"),
        ("sum(", 'bad_data: invalid parameter "query"'),
    ],
)
async def test_anything_but_one_sample_is_a_clear_error(
    plugins, prometheus_server: str, query: str, message: str
) -> None:
    text = 'navarch_queue_depth{pool="p"} 12\nnavarch_queue_depth{pool="q"} 30\n'
    await scraped(prometheus_server, text, 'navarch_queue_depth{pool="q"}', "30")
    with pytest.raises(NavarchError) as caught:
        await source(plugins, prometheus_server, query).queue_depth("p")
    assert str(caught.value).startswith("prometheus: query ")
    assert message in str(caught.value)


async def test_a_server_that_is_not_prometheus_or_not_there(plugins, prometheus_server) -> None:
    with pytest.raises(NavarchError, match="HTTP 404, not Prometheus's API"):
        await source(plugins, prometheus_server + "/nothing", "vector(1)").queue_depth("p")
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NavarchError, match=f"prometheus: GET {closed}/api/v1/query: ConnectError"):
        await source(plugins, closed, "vector(1)").queue_depth("p")


async def test_the_bearer_token_comes_from_the_environment(plugins, monkeypatch) -> None:
    from http.server import BaseHTTPRequestHandler

    from support.metrics_servers import serving

    seen: list[str | None] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            body = b'{"status":"success","data":{"resultType":"scalar","result":[1,"4"]}}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    monkeypatch.setenv("PROM_TOKEN", "s3cret")
    with serving(Proxy) as port:
        url = f"http://127.0.0.1:{port}"
        reader = source(plugins, url, "vector(4)", 'token_env = "PROM_TOKEN"\n')
        assert await reader.queue_depth("p") == 4
    assert seen == ["Bearer s3cret"]
    monkeypatch.delenv("PROM_TOKEN")
    with pytest.raises(NavarchError, match="token_env: the environment variable PROM_TOKEN"):
        source(plugins, url, "vector(4)", 'token_env = "PROM_TOKEN"\n')


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            'url = "prom:9090"\nquery = "up"',
            'url: expected an http:// or https:// URL, got "prom:9090"',
        ),
        ('url = "http://prom"', "query: required key is missing"),
        (
            'url = "http://prom"\nquery = "up"\nquerry = "x"',
            "querry: unknown key (did you mean 'query'?)",
        ),
    ],
)
def test_its_table_is_checked(plugins, keys: str, expected: str) -> None:
    text = (
        '[providers.fake]\n[pools.p]\ninstance_type = "h100-8x"\n'
        '[[pools.p.providers]]\nprovider = "fake"\n'
        f'[pools.p.metrics]\ntype = "prometheus"\n{keys}\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=plugins)
    assert caught.value.problems == [f"pools.p.metrics.{expected}"]
