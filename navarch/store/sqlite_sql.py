"""The SQLite store's statements.

The columns and their order are those of `navarch.store.rows`, which maps rows for both stores;
`navarch.store.postgres_sql` holds the same statements in psycopg's parameter style.
"""

from __future__ import annotations

from navarch.model import LIVE

NODE_COLUMNS = (
    "node_id, status, health, status_reason, provider, region, zone, instance_type, pool, "
    "hostname, labels, gpus, registered_at, last_heartbeat_at, metrics, last_health_events"
)
COMMAND_COLUMNS = (
    "command_id, node_id, type, status, reason, parameters, issued_at, issued_by, "
    "completed_at, result_message"
)
INSTANCE_COLUMNS = (
    "instance_id, provider, pool, region, zone, instance_type, status, reason, node_id, "
    "created_at, updated_at, address, bootstrap, preflight"
)
EVENT_COLUMNS = "event_id, time, kind, node_id, actor, reason, from_status, to_status, details"


def _upsert(table: str, columns: str, key: str) -> str:
    names = [c.strip() for c in columns.split(",")]
    updates = ", ".join(f"{c} = excluded.{c}" for c in names if c != key)
    marks = ", ".join("?" for _ in names)
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


UPSERT_NODE = _upsert("nodes", NODE_COLUMNS, "node_id")
UPSERT_INSTANCE = (
    f"INSERT INTO instances ({INSTANCE_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (provider, instance_id) DO UPDATE SET status = excluded.status, "
    "reason = excluded.reason, node_id = excluded.node_id, updated_at = excluded.updated_at, "
    "address = excluded.address, bootstrap = excluded.bootstrap, "
    "preflight = excluded.preflight"
)
UPSERT_COMMAND = _upsert("commands", COMMAND_COLUMNS, "command_id")
INSERT_EVENT = (
    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (event_id) DO NOTHING"
)
INSERT_HEALTH_EVENT = (
    "INSERT INTO health_events (report_id, seq, node_id, time, type, gpu_index, xid, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (report_id, seq) DO NOTHING"
)
UPSERT_TOKEN = (
    "INSERT INTO node_tokens (node_id, token_hash, issued_at) VALUES (?, ?, ?) "
    "ON CONFLICT (node_id) DO UPDATE SET token_hash = excluded.token_hash, "
    "issued_at = excluded.issued_at"
)
UPDATE_HEARTBEAT = (
    "UPDATE nodes SET last_heartbeat_at = ?, metrics = COALESCE(?, metrics) WHERE node_id = ?"
)

OPEN_STATUSES = ("pending", "delivered")

REMEDIATION_COLUMNS = (
    "episode_id, node_id, pool, step, rule, detail, started_at, updated_at, action, gpu_index"
)
UPSERT_REMEDIATION = _upsert("remediations", f"{REMEDIATION_COLUMNS}, open", "episode_id")
UPSERT_SWITCH = (
    "INSERT INTO remediation_switches (kind, pool, reason, since) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (kind, pool) DO UPDATE SET reason = excluded.reason, since = excluded.since"
)
DELETE_SWITCH = "DELETE FROM remediation_switches WHERE kind = ? AND pool = ?"
UPSERT_DECISION = (
    "INSERT INTO decision_state (scope, key, value, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, "
    "updated_at = excluded.updated_at"
)
DELETE_DECISION = "DELETE FROM decision_state WHERE scope = ? AND key = ?"

# What a load reads that differs by parameter style (navarch.store.loading).
LOAD_COMMANDS = (
    f"SELECT rowid, {COMMAND_COLUMNS} FROM commands WHERE status IN (?, ?) ORDER BY command_id"
)
LOAD_COMMANDS_PARAMS = OPEN_STATUSES
_LIVE = sorted(status.value for status in LIVE)
LOAD_INSTANCES = (
    f"SELECT rowid, {INSTANCE_COLUMNS} FROM instances "
    f"WHERE status IN ({', '.join('?' for _ in _LIVE)}) ORDER BY provider, instance_id"
)
LOAD_INSTANCES_PARAMS = tuple(_LIVE)
SALVAGE_NODE = "UPDATE nodes SET metrics = NULL, last_health_events = '[]' WHERE rowid = ?"
