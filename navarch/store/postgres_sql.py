"""The PostgreSQL store's statements: the SQLite store's, in psycopg's parameter style.

The columns, and their order, are the SQLite store's (`navarch.store.sqlite_sql`): those of
`navarch.store.rows`, which maps rows for both stores.
"""

from __future__ import annotations

from navarch.model import LIVE
from navarch.store.sqlite_sql import COMMAND_COLUMNS as COMMAND_COLUMNS
from navarch.store.sqlite_sql import EVENT_COLUMNS as EVENT_COLUMNS
from navarch.store.sqlite_sql import INSTANCE_COLUMNS as INSTANCE_COLUMNS
from navarch.store.sqlite_sql import NODE_COLUMNS as NODE_COLUMNS
from navarch.store.sqlite_sql import REMEDIATION_COLUMNS as REMEDIATION_COLUMNS


def _insert(table: str, columns: str, key: str, update: str | None = None) -> str:
    """INSERT of every column; on a conflict over `key`, sets the columns of `update` (a
    comma-separated list; all but the key when None), or does nothing when `update` is ''."""
    names = [c.strip() for c in columns.split(",")]
    marks = ", ".join("%s" for _ in names)
    insert = f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT ({key}) DO "
    if update == "":
        return insert + "NOTHING"
    keys = {k.strip() for k in key.split(",")}
    chosen = [c for c in names if c not in keys] if update is None else update.split(", ")
    return insert + "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in chosen)


UPSERT_NODE = _insert("nodes", NODE_COLUMNS, "node_id")
UPSERT_COMMAND = _insert("commands", COMMAND_COLUMNS, "command_id")
INSERT_EVENT = _insert("events", EVENT_COLUMNS, "event_id", "")
INSERT_HEALTH_EVENT = _insert(
    "health_events",
    "report_id, seq, node_id, time, type, gpu_index, xid, body",
    "report_id, seq",
    "",
)
UPSERT_TOKEN = _insert("node_tokens", "node_id, token_hash, issued_at", "node_id")
UPSERT_INSTANCE = _insert(
    "instances",
    INSTANCE_COLUMNS,
    "provider, instance_id",
    "status, reason, node_id, updated_at, address, bootstrap, preflight",
)
UPSERT_REMEDIATION = _insert("remediations", f"{REMEDIATION_COLUMNS}, open", "episode_id")
UPSERT_SWITCH = _insert("remediation_switches", "kind, pool, reason, since", "kind, pool")
DELETE_SWITCH = "DELETE FROM remediation_switches WHERE kind = %s AND pool = %s"
UPSERT_DECISION = _insert("decision_state", "scope, key, value, updated_at", "scope, key")
DELETE_DECISION = "DELETE FROM decision_state WHERE scope = %s AND key = %s"

# Every heartbeat of a flush in one statement, in node order so that two writers lock alike.
UPDATE_HEARTBEATS = (
    "UPDATE nodes SET last_heartbeat_at = b.at, metrics = COALESCE(b.metrics, nodes.metrics) "
    "FROM unnest(%s::text[], %s::text[], %s::text[]) AS b(node_id, at, metrics) "
    "WHERE nodes.node_id = b.node_id"
)
UPDATE_HEARTBEAT = (
    "UPDATE nodes SET last_heartbeat_at = %s, metrics = COALESCE(%s, metrics) WHERE node_id = %s"
)

FENCE = "SELECT token FROM leader_lease WHERE name = %s FOR SHARE"

OPEN_COMMAND_STATUSES = ["pending", "delivered"]

# What a load reads that differs by parameter style (navarch.store.loading).
LOAD_COMMANDS = (
    f"SELECT rowid, {COMMAND_COLUMNS} FROM commands WHERE status = ANY(%s) ORDER BY command_id"
)
LOAD_COMMANDS_PARAMS = (OPEN_COMMAND_STATUSES,)
LOAD_INSTANCES = (
    f"SELECT rowid, {INSTANCE_COLUMNS} FROM instances "
    "WHERE status = ANY(%s) ORDER BY provider, instance_id"
)
LOAD_INSTANCES_PARAMS = (sorted(status.value for status in LIVE),)
SALVAGE_NODE = "UPDATE nodes SET metrics = NULL, last_health_events = '[]' WHERE rowid = %s"
