"""The built-in `kubernetes` metrics source against a fake of the Kubernetes API on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.metrics_servers import FakeKubernetes, pod, serving
from support.pool_config import pool_config

from navarch.errors import NavarchError
from navarch.plugins import MetricsSource

TOKEN = "eyJhbGciOiJSUzI1NiJ9.test"


@pytest.fixture
def api() -> Iterator[str]:
    FakeKubernetes.pods, FakeKubernetes.token, FakeKubernetes.seen = {}, TOKEN, []
    with serving(FakeKubernetes) as port:
        yield f"http://127.0.0.1:{port}"


def source(plugins, server: str, extra: str = ""):
    table = (
        f'[pools.p.metrics]\ntype = "kubernetes"\nserver = "{server}"\nnamespace = "ml"\n'
        f'label_selector = "navarch.io/pool={{pool}}"\ntoken_env = "KUBE_TOKEN"\n{extra}'
    )
    return pool_config(plugins, table).metrics.create(MetricsSource)


@pytest.fixture(autouse=True)
def token(monkeypatch) -> None:
    monkeypatch.setenv("KUBE_TOKEN", TOKEN)


def ours(name: str, **kwargs) -> dict:
    return pod(name, labels={"navarch.io/pool": "train"}, **kwargs)


async def test_pending_pods_that_request_gpus(plugins, api: str) -> None:
    FakeKubernetes.pods = {
        "ml": [
            ours("a"),
            ours("b", gpus=8),
            ours("running", phase="Running"),
            ours("cpu-only", gpus=0),
            # Bound to a node, pulling its image: it has its GPUs.
            ours("bound", node="gpu-node-1"),
            pod("other-pool", labels={"navarch.io/pool": "serve"}),
        ],
        "default": [ours("elsewhere")],
    }
    assert await source(plugins, api).queue_depth("train") == 2
    assert FakeKubernetes.seen == [
        "/api/v1/namespaces/ml/pods?labelSelector=navarch.io%2Fpool%3Dtrain"
        "&fieldSelector=status.phase%3DPending&limit=500"
    ]


async def test_every_page_is_read(plugins, api: str) -> None:
    FakeKubernetes.pods = {"ml": [ours(f"p{n}") for n in range(1203)]}
    assert await source(plugins, api).queue_depth("train") == 1203
    assert len(FakeKubernetes.seen) == 3
    assert FakeKubernetes.seen[-1].endswith("&continue=1000")


async def test_the_token_file_is_read_each_round(plugins, api: str, tmp_path, monkeypatch) -> None:
    FakeKubernetes.pods = {"ml": [ours("a")]}
    token = tmp_path / "token"
    token.write_text("old\n")
    monkeypatch.delenv("KUBE_TOKEN")
    table = (
        f'[pools.p.metrics]\ntype = "kubernetes"\nserver = "{api}"\nnamespace = "ml"\n'
        f'token_file = "{token}"\n'
    )
    reader = pool_config(plugins, table).metrics.create(MetricsSource)
    with pytest.raises(NavarchError) as caught:
        await reader.queue_depth("train")
    assert str(caught.value) == (
        "kubernetes: GET /api/v1/namespaces/ml/pods: HTTP 401: Unauthorized"
    )
    token.write_text(TOKEN + "\n")
    assert await reader.queue_depth("train") == 1


async def test_the_api_servers_errors_are_clear(plugins, api: str, monkeypatch) -> None:
    with pytest.raises(NavarchError) as caught:
        await source(plugins, api + "/nowhere").queue_depth("train")
    assert str(caught.value) == (
        "kubernetes: GET /api/v1/namespaces/ml/pods: HTTP 404: "
        "the server could not find the requested resource"
    )
    monkeypatch.delenv("KUBE_TOKEN")
    with pytest.raises(NavarchError, match="token_env: the environment variable KUBE_TOKEN"):
        source(plugins, api)


def test_in_a_cluster_it_finds_the_api_server(plugins, monkeypatch) -> None:
    table = '[pools.p.metrics]\ntype = "kubernetes"\n'
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(NavarchError, match="not in a cluster"):
        pool_config(plugins, table).metrics.create(MetricsSource)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    reader = pool_config(plugins, table).metrics.create(MetricsSource)
    assert reader._server == "https://10.96.0.1:443"
    assert reader._token_file == "/var/run/secrets/kubernetes.io/serviceaccount/token"
