"""Durable state of the control plane: the `Store` protocol and its SQLite backend."""

from navarch.store.protocol import (
    Change,
    HealthReport,
    NodeToken,
    RemediationSwitch,
    Store,
    StoredState,
    StoreError,
)
from navarch.store.sqlite import SQLiteStore

__all__ = [
    "Change",
    "HealthReport",
    "NodeToken",
    "RemediationSwitch",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoredState",
]
