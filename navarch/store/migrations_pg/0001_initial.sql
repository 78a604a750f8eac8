-- The SQLite store's schema as of its migration 0007, and the leadership lease.
-- Times are RFC 3339 text in UTC and collections JSON text, as in SQLite, so that
-- navarch/store/rows.py reads both. Text compares byte by byte (COLLATE "C"), as SQLite's does,
-- so that listings and time comparisons order the same on both. Each table has a rowid, which
-- only the quarantine uses (navarch/store/postgres_quarantine.py).

CREATE TABLE nodes (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY,
    node_id TEXT COLLATE "C" PRIMARY KEY,
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
    registered_at TEXT COLLATE "C",
    last_heartbeat_at TEXT COLLATE "C",
    metrics TEXT,
    last_health_events TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE commands (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY,
    command_id TEXT COLLATE "C" PRIMARY KEY,
    node_id TEXT COLLATE "C" NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    parameters TEXT NOT NULL DEFAULT '{}',
    issued_at TEXT COLLATE "C",
    issued_by TEXT NOT NULL DEFAULT '',
    completed_at TEXT COLLATE "C",
    result_message TEXT NOT NULL DEFAULT ''
);

CREATE INDEX commands_by_node_status ON commands (node_id, status);

CREATE TABLE events (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY,
    event_id TEXT COLLATE "C" PRIMARY KEY,
    time TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    node_id TEXT COLLATE "C" NOT NULL DEFAULT '',
    actor TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    from_status TEXT,
    to_status TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX events_by_node ON events (node_id, event_id);

CREATE TABLE health_events (
    report_id TEXT COLLATE "C" NOT NULL,
    seq INTEGER NOT NULL,
    node_id TEXT COLLATE "C" NOT NULL,
    time TEXT COLLATE "C" NOT NULL,
    type TEXT NOT NULL,
    gpu_index INTEGER NOT NULL,
    xid INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (report_id, seq)
);

CREATE INDEX health_events_by_node_time ON health_events (node_id, time);

CREATE TABLE node_tokens (
    node_id TEXT COLLATE "C" PRIMARY KEY,
    token_hash TEXT NOT NULL,
    issued_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE instances (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY,
    instance_id TEXT COLLATE "C" NOT NULL,
    provider TEXT COLLATE "C" NOT NULL,
    pool TEXT COLLATE "C" NOT NULL DEFAULT '',
    region TEXT NOT NULL DEFAULT '',
    zone TEXT NOT NULL DEFAULT '',
    instance_type TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    node_id TEXT COLLATE "C" NOT NULL DEFAULT '',
    created_at TEXT COLLATE "C",
    updated_at TEXT COLLATE "C",
    address TEXT NOT NULL DEFAULT '',
    bootstrap TEXT NOT NULL DEFAULT '',
    preflight TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (provider, instance_id)
);

CREATE INDEX instances_by_pool_status ON instances (pool, status);

CREATE TABLE remediations (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY,
    episode_id TEXT COLLATE "C" PRIMARY KEY,
    node_id TEXT COLLATE "C" NOT NULL,
    pool TEXT COLLATE "C" NOT NULL DEFAULT '',
    step TEXT NOT NULL,
    rule TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    started_at TEXT COLLATE "C",
    updated_at TEXT COLLATE "C",
    -- 1 while the episode has not ended, so a restart loads only the open ones.
    open INTEGER NOT NULL,
    action TEXT NOT NULL DEFAULT 'replace',
    gpu_index INTEGER NOT NULL DEFAULT -1
);

CREATE INDEX remediations_open ON remediations (open, episode_id);
CREATE INDEX remediations_by_node ON remediations (node_id, episode_id);

CREATE TABLE remediation_switches (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY,
    kind TEXT COLLATE "C" NOT NULL,
    pool TEXT COLLATE "C" NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    since TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (kind, pool)
);

CREATE TABLE quarantine (
    quarantined_at TEXT NOT NULL,
    source TEXT NOT NULL,
    row_key TEXT NOT NULL,
    problem TEXT NOT NULL,
    body TEXT NOT NULL,
    kept INTEGER NOT NULL
);

-- Which control plane leads (navarch leadership): one row per lease. The token grows by one at
-- each change of holder; a store whose fencing names an older token refuses to write.
CREATE TABLE leader_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    address TEXT NOT NULL DEFAULT ''
);
