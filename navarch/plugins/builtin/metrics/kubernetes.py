"""The `kubernetes` metrics source: pending pods that request GPUs, from the Kubernetes API.

Each round lists the pods of `namespace` that match `label_selector` (`{pool}` in it is replaced
by the pool's name) and are pending (`fieldSelector=status.phase=Pending`), page by page, and
counts those that no node has taken yet and whose containers request `resource`
(`nvidia.com/gpu`). A pod bound to a node has its GPUs already.

Without `server` it runs as a pod does: the API server from KUBERNETES_SERVICE_HOST and
KUBERNETES_SERVICE_PORT, and the service account's token and CA from their files. The token file
is read each round, since the kubelet rotates it.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
from attrs import frozen

from navarch.plugins import NavarchError, validators
from navarch.plugins.builtin.metrics.secrets import from_env

_SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
# Pods asked for per page.
_PAGE = 500


@frozen(kw_only=True)
class KubernetesSettings:
    # The API server; empty means the cluster navarch runs in.
    server: str = attrs.field(default="", validator=validators.optional_url)
    namespace: str = "default"
    # Which pods are the pool's work, as kubectl -l takes it; `{pool}` is the pool's name.
    label_selector: str = ""
    resource: str = "nvidia.com/gpu"
    # A file that holds the bearer token; empty means the service account's, in a cluster.
    token_file: str = ""
    # The environment variable that holds the bearer token, instead of a file.
    token_env: str = ""
    # The CA bundle that signed the API server's certificate; empty means the service account's
    # in a cluster, and the system's otherwise.
    ca_file: str = ""
    timeout: timedelta = attrs.field(default=timedelta(seconds=5), validator=validators.positive)


class KubernetesSource:
    Settings = KubernetesSettings

    def __init__(self, settings: KubernetesSettings) -> None:
        self.settings = settings
        self._token_file = settings.token_file
        self._ca_file = settings.ca_file
        self._server = settings.server.rstrip("/")
        if not self._server:
            host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise NavarchError(
                    "kubernetes: server: not set, and navarch is not in a cluster "
                    "(KUBERNETES_SERVICE_HOST is not set)"
                )
            self._server = (
                f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
            )
            self._token_file = self._token_file or f"{_SERVICE_ACCOUNT}/token"
            self._ca_file = self._ca_file or f"{_SERVICE_ACCOUNT}/ca.crt"
        self._token = from_env("kubernetes", "token_env", settings.token_env)

    async def queue_depth(self, pool: str) -> int | None:
        import httpx

        s = self.settings
        path = f"/api/v1/namespaces/{s.namespace}/pods"
        params = {
            "labelSelector": s.label_selector.replace("{pool}", pool),
            "fieldSelector": "status.phase=Pending",
            "limit": str(_PAGE),
        }
        headers = {"Accept": "application/json"}
        token = self._read_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        verify: Any = True
        if self._ca_file:
            import ssl

            verify = ssl.create_default_context(cafile=self._ca_file)
        count = 0
        try:
            async with httpx.AsyncClient(
                base_url=self._server,
                headers=headers,
                verify=verify,
                timeout=s.timeout.total_seconds(),
            ) as client:
                while True:
                    response = await client.get(path, params=params)
                    page = _page(response, path)
                    count += sum(1 for pod in page.get("items") or [] if _waits(pod, s.resource))
                    more = (page.get("metadata") or {}).get("continue")
                    if not more:
                        return count
                    params["continue"] = more
        except httpx.HTTPError as exc:
            raise NavarchError(f"kubernetes: GET {path}: {type(exc).__name__}: {exc}") from exc

    def _read_token(self) -> str:
        if self._token or not self._token_file:
            return self._token
        try:
            return Path(self._token_file).read_text().strip()
        except OSError as exc:
            raise NavarchError(f"kubernetes: token_file: {exc}") from exc


def _page(response: Any, path: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and isinstance(body, dict) and body.get("kind") == "PodList":
        return body
    # The API server's errors are Status objects with a message.
    message = body.get("message") if isinstance(body, dict) else None
    raise NavarchError(
        f"kubernetes: GET {path}: HTTP {response.status_code}: "
        f"{message or response.text[:200] or 'not a pod list'}"
    )


def _waits(pod: Any, resource: str) -> bool:
    """A pod that no node has taken yet and whose containers ask for `resource`."""
    if not isinstance(pod, dict):
        return False
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return False
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    for container in containers:
        resources = container.get("resources") or {}
        for kind in ("limits", "requests"):
            amount = (resources.get(kind) or {}).get(resource)
            if amount not in (None, "0", 0):
                return True
    return False
