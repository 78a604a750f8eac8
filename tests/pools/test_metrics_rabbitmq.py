"""The built-in `rabbitmq` metrics source against the RabbitMQ broker on 127.0.0.1:5672."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from support.metrics_servers import AmqpQueues, amqp, free_port, rabbitmq_address
from support.pool_config import pool_config

from navarch.config import parse_config
from navarch.errors import ConfigError, NavarchError
from navarch.plugins import MetricsSource


@pytest.fixture
async def broker() -> AsyncIterator[tuple[str, AmqpQueues]]:
    """A queue name of the test's own, and a connection that makes and fills queues; the queues
    named after it are deleted afterwards (deleting a missing queue is no error)."""
    host, port = rabbitmq_address()
    stream, connection = await amqp(host, port)
    name = f"navarch-test-{uuid.uuid4().hex[:8]}"
    async with stream:
        yield name, connection
        for queue in (name, f"{name}.batch", f"{name}.other"):
            await connection.delete(queue)
        await connection.close()


def source(plugins, queue: str, extra: str = 'password_env = "RABBITMQ_PASSWORD"\n'):
    host, port = rabbitmq_address()
    table = (
        f'[pools.p.metrics]\ntype = "rabbitmq"\nhost = "{host}"\nport = {port}\n'
        f'queue = "{queue}"\n{extra}'
    )
    return pool_config(plugins, table).metrics.create(MetricsSource)


@pytest.fixture(autouse=True)
def password(monkeypatch) -> None:
    monkeypatch.setenv("RABBITMQ_PASSWORD", "guest")


async def test_the_ready_messages_of_a_queue(plugins, broker) -> None:
    name, queues = broker
    await queues.declare(f"{name}.batch")
    reader = source(plugins, f"{name}.{{pool}}")
    assert await reader.queue_depth("batch") == 0
    for n in range(5):
        await queues.publish(f"{name}.batch", b"job %d" % n)
    await queues.declare(f"{name}.other")
    await queues.publish(f"{name}.other", b"not ours")
    # The broker counts a published message once it has routed it; a declare after the publishes
    # on the same channel is answered after them.
    await queues.declare(f"{name}.batch")
    assert await reader.queue_depth("batch") == 5
    assert await reader.queue_depth("other") == 1


async def test_a_missing_queue_is_a_clear_error_and_is_not_made(plugins, broker) -> None:
    name, _ = broker
    reader = source(plugins, name)
    for _ in range(2):
        with pytest.raises(NavarchError) as caught:
            await reader.queue_depth("p")
        assert str(caught.value) == (
            f"rabbitmq 127.0.0.1:5672: 404 NOT_FOUND - no queue '{name}' in vhost '/'"
        )


async def test_refused_credentials_and_an_unknown_vhost(plugins, broker, monkeypatch) -> None:
    name, queues = broker
    await queues.declare(name)
    monkeypatch.setenv("RABBITMQ_PASSWORD", "wrong")
    with pytest.raises(NavarchError, match="403 ACCESS_REFUSED - Login was refused"):
        await source(plugins, name).queue_depth("p")
    monkeypatch.setenv("RABBITMQ_PASSWORD", "guest")
    with pytest.raises(NavarchError, match="530 NOT_ALLOWED - vhost nowhere not found"):
        await source(
            plugins, name, 'password_env = "RABBITMQ_PASSWORD"\nvhost = "nowhere"\n'
        ).queue_depth("p")


async def test_something_else_on_the_port_is_a_clear_error(plugins) -> None:
    port = free_port()
    table = f'[pools.p.metrics]\ntype = "rabbitmq"\nport = {port}\nqueue = "q"\n'
    reader = pool_config(plugins, table).metrics.create(MetricsSource)
    with pytest.raises(NavarchError, match=f"rabbitmq 127.0.0.1:{port}: all attempts to connect"):
        await reader.queue_depth("p")


def test_its_table_is_checked(plugins) -> None:
    text = (
        '[providers.fake]\n[pools.p]\ninstance_type = "h100-8x"\n'
        '[[pools.p.providers]]\nprovider = "fake"\n'
        '[pools.p.metrics]\ntype = "rabbitmq"\nqueue = "q"\nvhots = "/"\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=plugins)
    assert caught.value.problems == ["pools.p.metrics.vhots: unknown key (did you mean 'vhost'?)"]
