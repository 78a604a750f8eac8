"""The built-in `http-json` metrics source against a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.pool_config import pool_config

from navarch.config import parse_config
from navarch.errors import ConfigError
from navarch.plugins import MetricsSource


class Queue(BaseHTTPRequestHandler):
    # path -> (status, body); set by each test.
    answers: dict[str, tuple[int, bytes]] = {}
    seen: list[str] = []

    def do_GET(self) -> None:
        Queue.seen.append(self.path)
        status, body = Queue.answers.get(self.path, (404, b'{"error": "no such queue"}'))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Queue.answers, Queue.seen = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Queue)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def source(plugins, url: str, field: str = ""):
    table = f'[pools.p.metrics]\ntype = "http-json"\nurl = "{url}"\nfield = "{field}"\n'
    return pool_config(plugins, table).metrics.create(MetricsSource)


def answer(path: str, document: object, status: int = 200) -> None:
    Queue.answers[path] = (status, json.dumps(document).encode())


async def test_reads_the_depth_at_a_dotted_path(plugins, server: str) -> None:
    answer("/queues/p", {"stats": {"queues": [{"depth": 3}, {"depth": 42}]}})
    reader = source(plugins, server + "/queues/{pool}", "stats.queues.1.depth")
    assert await reader.queue_depth("p") == 42
    assert Queue.seen == ["/queues/p"]


async def test_a_bare_number_and_null(plugins, server: str) -> None:
    answer("/depth", 7.0)
    assert await source(plugins, server + "/depth").queue_depth("p") == 7
    answer("/depth", None)
    assert await source(plugins, server + "/depth").queue_depth("p") is None


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        ({"depth": 1}, "dept", "the document has no field 'dept'"),
        ({"depth": -1}, "depth", "field 'depth' is -1, not a depth of 0 or more"),
        ({"depth": "many"}, "depth", "field 'depth' is 'many', not a depth of 0 or more"),
        ({"depth": 2.5}, "depth", "field 'depth' is 2.5, not a depth of 0 or more"),
    ],
)
async def test_a_document_without_a_depth_raises(plugins, server, document, field, message):
    answer("/q", document)
    with pytest.raises((LookupError, ValueError), match=message):
        await source(plugins, server + "/q", field).queue_depth("p")


async def test_an_http_error_raises(plugins, server: str) -> None:
    import httpx

    with pytest.raises(httpx.HTTPStatusError, match="404"):
        await source(plugins, server + "/missing", "depth").queue_depth("p")


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ('url = "ftp://x"', 'url: expected an http:// or https:// URL, got "ftp://x"'),
        ('url = "http://q"\ntimeout = "0s"', 'timeout: expected a positive duration, got "0s"'),
        ('url = "http://q"\nfeild = "a"', "feild: unknown key (did you mean 'field'?)"),
        ('field = "a"', "url: required key is missing"),
    ],
)
def test_its_table_is_checked(plugins, keys: str, expected: str) -> None:
    text = (
        '[providers.fake]\n[pools.p]\ninstance_type = "h100-8x"\n'
        '[[pools.p.providers]]\nprovider = "fake"\n'
        f'[pools.p.metrics]\ntype = "http-json"\n{keys}\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=plugins)
    assert caught.value.problems == [f"pools.p.metrics.{expected}"]
