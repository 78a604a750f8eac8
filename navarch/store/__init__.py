"""Durable state of the control plane: the `Store` protocol, its SQLite and PostgreSQL backends,
and `open_store`, which opens either from a path or URL."""

from navarch.store.open import open_store
from navarch.store.protocol import (
    Change,
    DecisionState,
    Deposed,
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
    "DecisionState",
    "Deposed",
    "HealthReport",
    "NodeToken",
    "RemediationSwitch",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoredState",
    "open_store",
]
