"""The built-in metrics sources: `http-json`, here, and those of `navarch.plugins.builtin.metrics`
(`prometheus`, `redis`, `rabbitmq`, `slurm`, `kubernetes`).

The `http-json` source reads a pool's queue depth from a JSON document over HTTP.

Each scaling round the pool manager GETs `url` (`{pool}` in it is replaced by the pool's name)
and follows `field`, a dotted path (`stats.queues.0.depth`; a number indexes an array), to the
depth. JSON `null` there means no data; a missing field, a value that is not a whole number of 0
or more, or an HTTP error is raised, and the manager keeps the last known depth.

httpx is imported where it is used: every navarch command loads the built-in plugins, and
`navarch --help` must stay fast.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
from attrs import frozen

from navarch.plugins import Register, hookimpl, validators
from navarch.plugins.builtin.metrics.kubernetes import KubernetesSource
from navarch.plugins.builtin.metrics.prometheus import PrometheusSource
from navarch.plugins.builtin.metrics.rabbitmq import RabbitMqSource
from navarch.plugins.builtin.metrics.redis import RedisSource
from navarch.plugins.builtin.metrics.slurm import SlurmSource


@frozen(kw_only=True)
class HttpJsonSettings:
    # The document to GET; `{pool}` is replaced by the pool's name.
    url: str = attrs.field(validator=validators.url)
    # Dotted path to the depth in the document; empty means the document is the number itself.
    field: str = ""
    # The longest one request may take (the pool manager stops waiting after 5s in any case).
    timeout: timedelta = attrs.field(default=timedelta(seconds=5), validator=validators.positive)


def pick(document: object, path: str) -> object:
    """The value at the dotted `path` of a parsed JSON document."""
    value = document
    walked: list[str] = []
    for part in path.split(".") if path else []:
        walked.append(part)
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise LookupError(f"the document has no field {'.'.join(walked)!r}")
    return value


def as_depth(value: object, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"field {path or '(document)'!r} is {value!r}, not a depth of 0 or more")
    return value


class HttpJsonSource:
    Settings = HttpJsonSettings

    def __init__(self, settings: HttpJsonSettings) -> None:
        self.settings = settings

    async def queue_depth(self, pool: str) -> int | None:
        import httpx

        url = self.settings.url.replace("{pool}", pool)
        async with httpx.AsyncClient(timeout=self.settings.timeout.total_seconds()) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        return as_depth(pick(response.json(), self.settings.field), self.settings.field)


@hookimpl
def navarch_metrics_sources(register: Register) -> None:
    register("http-json", HttpJsonSource)
    register("prometheus", PrometheusSource)
    register("redis", RedisSource)
    register("rabbitmq", RabbitMqSource)
    register("slurm", SlurmSource)
    register("kubernetes", KubernetesSource)
