-- Every instance a pool asked a provider for, from the request to its end.
-- Times are RFC 3339 text in UTC; labels are JSON text.

CREATE TABLE instances (
    instance_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    pool TEXT NOT NULL DEFAULT '',
    region TEXT NOT NULL DEFAULT '',
    zone TEXT NOT NULL DEFAULT '',
    instance_type TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    node_id TEXT NOT NULL DEFAULT '',
    created_at TEXT,
    updated_at TEXT,
    PRIMARY KEY (provider, instance_id)
);

CREATE INDEX instances_by_pool_status ON instances (pool, status);
