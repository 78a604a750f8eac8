"""Notifiers: plugins that tell people about the control plane's events.

The service hands every event it records to each notifier whose table the configuration has
(`[notifiers.NAME] type = "webhook"`). `notify` only queues: delivery runs in the notifier's own
task in the service's nursery, so a slow or failing receiver never delays or undoes what the
event records.
"""

from __future__ import annotations

from typing import Protocol

from navarch.api.wire import Event
from navarch.config import Config


class Notifier(Protocol):
    def notify(self, event: Event) -> None:
        """Queues `event` for delivery; never blocks and never raises."""

    async def run(self) -> None:
        """Delivers the queued events until cancelled."""


def build_notifiers(config: Config) -> list[Notifier]:
    """One notifier per `[notifiers.NAME]` table, built by its plugin."""
    return [table.create(name=name) for name, table in config.notifiers.items()]
