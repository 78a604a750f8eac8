"""The hooks a navarch plugin implements. Each registration hook receives a `register` callback."""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("navarch")
hookimpl = pluggy.HookimplMarker("navarch")


@hookspec
def navarch_providers(register: Any) -> None:
    """Register provider factories: `register("lambda", LambdaProvider)`."""


@hookspec
def navarch_autoscalers(register: Any) -> None:
    """Register autoscaler factories: `register("reactive", ReactiveAutoscaler)`."""


@hookspec
def navarch_selectors(register: Any) -> None:
    """Register provider-selector factories: `register("priority", PrioritySelector)`."""


@hookspec
def navarch_health_checks(register: Any) -> None:
    """Register daemon health-check factories: `register("xid", XidCheck)`."""


@hookspec
def navarch_notifiers(register: Any) -> None:
    """Register notifier factories: `register("webhook", WebhookNotifier)`."""


@hookspec
def navarch_metrics_sources(register: Any) -> None:
    """Register pool metrics-source factories: `register("http-json", HttpJsonSource)`."""


@hookspec
def navarch_cli(cli: Any) -> None:
    """Add commands to the `navarch` click group."""
