"""The built-in `redis` metrics source against the Redis server on 127.0.0.1:6379."""

from __future__ import annotations

import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing
from support.metrics_servers import free_port, redis_address
from support.pool_config import pool_config
from support.pool_manager import (
    events,
    fleet,
    healthy_nodes,
    live_nodes,
    open_fleet,
    pool,
    wait_until,
)

from navarch.config import parse_config
from navarch.errors import ConfigError, NavarchError
from navarch.plugins import MetricsSource


def redis(*args: str) -> str:
    """Runs a command on the test's Redis with redis-cli."""
    host, port = redis_address()
    done = subprocess.run(
        ["redis-cli", "-h", host, "-p", str(port), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of the test's own; its keys are deleted afterwards, in databases 0 and 3."""
    redis_address()
    prefix = f"navarch-test-{uuid.uuid4().hex[:8]}"
    yield prefix
    for db in ("0", "3"):
        keys = redis("-n", db, "--scan", "--pattern", f"{prefix}*").split()
        if keys:
            redis("-n", db, "DEL", *keys)


def source(plugins, key: str, extra: str = ""):
    host, port = redis_address()
    table = (
        f'[pools.p.metrics]\ntype = "redis"\nhost = "{host}"\nport = {port}\nkey = "{key}"\n{extra}'
    )
    return pool_config(plugins, table).metrics.create(MetricsSource)


async def test_the_length_of_a_list(plugins, prefix: str) -> None:
    reader = source(plugins, f"{prefix}:{{pool}}")
    assert await reader.queue_depth("batch") == 0  # Redis removes a list that empties
    redis("RPUSH", f"{prefix}:batch", "a", "b", "c")
    redis("RPUSH", f"{prefix}:other", "x")
    assert await reader.queue_depth("batch") == 3
    redis("LPOP", f"{prefix}:batch")
    assert await reader.queue_depth("batch") == 2


async def test_the_length_of_a_stream_in_another_database(plugins, prefix: str) -> None:
    reader = source(plugins, f"{prefix}:jobs", 'kind = "stream"\ndb = 3\n')
    for n in range(4):
        redis("-n", "3", "XADD", f"{prefix}:jobs", "*", "job", str(n))
    assert await reader.queue_depth("p") == 4
    assert redis("-n", "0", "EXISTS", f"{prefix}:jobs") == "0"


async def test_a_key_of_another_kind_is_a_clear_error(plugins, prefix: str) -> None:
    redis("SET", f"{prefix}:jobs", "5")
    with pytest.raises(NavarchError) as caught:
        await source(plugins, f"{prefix}:jobs").queue_depth("p")
    assert str(caught.value) == (
        f"redis 127.0.0.1:6379: LLEN {prefix}:jobs: "
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    )


async def test_a_password_the_server_does_not_want(plugins, prefix, monkeypatch) -> None:
    # The test server has no password, so AUTH is refused: the reply names AUTH, never the secret.
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    reader = source(plugins, f"{prefix}:jobs", 'password_env = "REDIS_PASSWORD"\n')
    with pytest.raises(NavarchError, match=r"redis 127\.0\.0\.1:6379: AUTH: ") as caught:
        await reader.queue_depth("p")
    assert "s3cret" not in str(caught.value)
    monkeypatch.delenv("REDIS_PASSWORD")
    with pytest.raises(NavarchError, match="password_env: the environment variable REDIS_PASSWORD"):
        source(plugins, f"{prefix}:jobs", 'password_env = "REDIS_PASSWORD"\n')


async def test_no_server_is_a_clear_error(plugins) -> None:
    port = free_port()
    table = f'[pools.p.metrics]\ntype = "redis"\nport = {port}\nkey = "q"\n'
    reader = pool_config(plugins, table).metrics.create(MetricsSource)
    with pytest.raises(NavarchError, match=f"redis 127.0.0.1:{port}: all attempts to connect"):
        await reader.queue_depth("p")


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ('key = "q"\nkind = "set"', 'kind: expected "list" or "stream", got "set"'),
        ('key = "q"\nport = 0', "port: expected a number from 1 to 65535, got 0"),
        ("", "key: required key is missing"),
    ],
)
def test_its_table_is_checked(plugins, keys: str, expected: str) -> None:
    text = (
        '[providers.fake]\n[pools.p]\ninstance_type = "h100-8x"\n'
        '[[pools.p.providers]]\nprovider = "fake"\n'
        f'[pools.p.metrics]\ntype = "redis"\n{keys}\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=plugins)
    assert caught.value.problems == [f"pools.p.metrics.{expected}"]


@pytest.fixture
def redis_clock() -> trio.testing.MockClock:
    """Virtual time that jumps only after 3 ms of real idleness, so that it waits for Redis's
    answers on loopback; a jump past a slow answer times the reading out, which only delays the
    pool by a round."""
    return trio.testing.MockClock(autojump_threshold=0.003)


async def test_a_pool_follows_a_redis_list_from_zero_and_back(
    prefix: str, tmp_path: Path, redis_clock: trio.testing.MockClock
) -> None:
    host, port = redis_address()
    config = fleet(
        textwrap.dedent(f"""
        [providers.fake]
        provision_delay = "20s"

        [pools.dev]
        instance_type = "h100-8x"
        min_nodes = 0
        max_nodes = 5
        scale_interval = "10s"

        [[pools.dev.providers]]
        provider = "fake"

        [pools.dev.autoscaler]
        type = "queue"
        jobs_per_node = 10

        [pools.dev.metrics]
        type = "redis"
        host = "{host}"
        port = {port}
        key = "{prefix}:{{pool}}"
    """)
    )
    async with open_fleet(tmp_path / "navarch.db", config) as service:
        await trio.sleep(60)
        assert live_nodes(service) == []
        assert (await pool(service)).queue_depth == 0
        redis("RPUSH", f"{prefix}:dev", *(f"job-{n}" for n in range(25)))
        await wait_until(lambda: len(healthy_nodes(service)) == 3)
        assert (await pool(service)).queue_depth == 25
        redis("LPOP", f"{prefix}:dev", "15")
        await wait_until(lambda: len(live_nodes(service)) == 1)
        redis("DEL", f"{prefix}:dev")
        await wait_until(lambda: live_nodes(service) == [])
        reasons = [e.reason for e in await events(service, "pool.scaled")]
        assert any("queue depth 25 needs 3 nodes" in r for r in reasons)
        assert any("queue depth 0 needs 0 nodes" in r for r in reasons)
