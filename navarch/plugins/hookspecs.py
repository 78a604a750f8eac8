"""The hooks a navarch plugin implements. Each registration hook receives a `register` callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

hookspec = pluggy.HookspecMarker("navarch")
hookimpl = pluggy.HookimplMarker("navarch")

# `register(name, factory)`: the factory is called with the plugin's settings object (when it has
# a `Settings` class) and context keywords, and returns the object that keeps the contract.
Register = Callable[[str, Callable[..., object]], None]


@hookspec
def navarch_providers(register: Register) -> None:
    """Register provider factories: `register("lambda", LambdaProvider)`."""


@hookspec
def navarch_autoscalers(register: Register) -> None:
    """Register autoscaler factories: `register("reactive", ReactiveAutoscaler)`."""


@hookspec
def navarch_selectors(register: Register) -> None:
    """Register provider-selector factories: `register("priority", PrioritySelector)`."""


@hookspec
def navarch_health_checks(register: Register) -> None:
    """Register daemon health-check factories: `register("xid", XidCheck)`."""


@hookspec
def navarch_notifiers(register: Register) -> None:
    """Register notifier factories: `register("webhook", WebhookNotifier)`."""


@hookspec
def navarch_metrics_sources(register: Register) -> None:
    """Register pool metrics-source factories: `register("http-json", HttpJsonSource)`."""


@hookspec
def navarch_cli(cli: click.Group) -> None:
    """Add commands to the `navarch` click group."""
