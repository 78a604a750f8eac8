"""The `prometheus` metrics source: a PromQL instant query over Prometheus's HTTP API.

Each round GETs `URL/api/v1/query` with `query` (`{pool}` in it is replaced by the pool's name).
The result must be one sample, a scalar or a vector of one series; its value, rounded, is the
depth. An empty vector, several series, a value that is not a finite number of 0 or more, and an
error from Prometheus are raised with what to change.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import attrs
from attrs import frozen

from navarch.plugins import NavarchError, validators
from navarch.plugins.builtin.metrics.secrets import from_env


@frozen(kw_only=True)
class PrometheusSettings:
    # Prometheus's address (or a compatible API's: Thanos, Mimir, VictoriaMetrics), without
    # /api/v1.
    url: str = attrs.field(validator=validators.url)
    # A PromQL expression of one sample; `{pool}` is replaced by the pool's name.
    query: str
    timeout: timedelta = attrs.field(default=timedelta(seconds=5), validator=validators.positive)
    # The environment variable that holds a bearer token; empty sends none.
    token_env: str = ""


class PrometheusSource:
    Settings = PrometheusSettings

    def __init__(self, settings: PrometheusSettings) -> None:
        self.settings = settings
        self._headers = {"Accept": "application/json"}
        token = from_env("prometheus", "token_env", settings.token_env)
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    async def queue_depth(self, pool: str) -> int | None:
        import httpx

        s = self.settings
        query = s.query.replace("{pool}", pool)
        url = s.url.rstrip("/") + "/api/v1/query"
        seconds = s.timeout.total_seconds()
        params = {"query": query, "timeout": f"{seconds:g}s"}
        try:
            async with httpx.AsyncClient(timeout=seconds) as client:
                response = await client.get(url, params=params, headers=self._headers)
        except httpx.HTTPError as exc:
            raise NavarchError(f"prometheus: GET {url}: {type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise NavarchError(
                f"prometheus: GET {url}: HTTP {response.status_code}, not Prometheus's API: "
                f"{response.text[:200]!r}"
            )
        if body["status"] == "error":
            raise NavarchError(
                f"prometheus: query {query!r}: {body.get('errorType', 'error')}: "
                f"{body.get('error', '')}"
            )
        return _depth(body.get("data"), query)


def _depth(data: Any, query: str) -> int:
    """The depth in a successful query's `data`: one sample, rounded to a whole number."""
    kind = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    if kind == "scalar":
        sample: Any = result
    elif kind == "vector" and isinstance(result, list):
        if len(result) != 1:
            hint = "; aggregate it, with sum(...) say" if result else "; add `or vector(0)`"
            raise NavarchError(
                f"prometheus: query {query!r} returned {len(result)} series, not 1{hint}"
            )
        sample = result[0].get("value") if isinstance(result[0], dict) else result[0]
    else:
        raise NavarchError(
            f"prometheus: query {query!r} returned a {kind or 'malformed'} result, "
            "not a scalar or a vector of one series"
        )
    try:
        shown = sample[1]
        value = float(shown)
    except (TypeError, ValueError, IndexError, KeyError):
        raise NavarchError(f"prometheus: query {query!r}: malformed sample {sample!r}") from None
    # Half up, so that a mean of 2.5 jobs asks for room for 3.
    depth = math.floor(value + 0.5) if math.isfinite(value) else -1
    if depth < 0:
        raise NavarchError(
            f"prometheus: query {query!r} returned {shown}, not a depth of 0 or more"
        )
    return depth
