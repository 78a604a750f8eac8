-- Nodes, commands, events, health reports and node tokens.
-- Timestamps are RFC 3339 text in UTC; collections are JSON text in the wire format.

CREATE TABLE nodes (
    node_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    health TEXT NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    provider TEXT NOT NULL DEFAULT '',
    region TEXT NOT NULL DEFAULT '',
    zone TEXT NOT NULL DEFAULT '',
    instance_type TEXT NOT NULL DEFAULT '',
    pool TEXT NOT NULL DEFAULT '',
    hostname TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    gpus TEXT NOT NULL DEFAULT '[]',
    registered_at TEXT,
    last_heartbeat_at TEXT,
    metrics TEXT,
    last_health_events TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE commands (
    command_id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    parameters TEXT NOT NULL DEFAULT '{}',
    issued_at TEXT,
    issued_by TEXT NOT NULL DEFAULT '',
    completed_at TEXT,
    result_message TEXT NOT NULL DEFAULT ''
);

CREATE INDEX commands_by_node_status ON commands (node_id, status);

CREATE TABLE events (
    event_id TEXT PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    node_id TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    from_status TEXT,
    to_status TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX events_by_node ON events (node_id, event_id);

-- Every health event a node reported, kept whole for the health policy.
CREATE TABLE health_events (
    report_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    time TEXT NOT NULL,
    type TEXT NOT NULL,
    gpu_index INTEGER NOT NULL,
    xid INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (report_id, seq)
);

CREATE INDEX health_events_by_node_time ON health_events (node_id, time);

-- Only the SHA-256 of each node token is kept.
CREATE TABLE node_tokens (
    node_id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    issued_at TEXT NOT NULL
);
