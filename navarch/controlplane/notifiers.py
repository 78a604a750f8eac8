"""The notifiers a configuration names, built by their plugins.

The service hands every event it records to each notifier whose table the configuration has
(`[notifiers.NAME] type = "webhook"`); the contract is `navarch.plugins.Notifier`.
"""

from __future__ import annotations

from navarch.config import Config
from navarch.plugins import Notifier


def build_notifiers(config: Config) -> list[Notifier]:
    """One notifier per `[notifiers.NAME]` table, built by its plugin."""
    return [table.create(Notifier, name=name) for name, table in config.notifiers.items()]
