-- Remediation episodes and the operator's switches (pauses and open circuit breakers).

CREATE TABLE remediations (
    episode_id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    pool TEXT NOT NULL DEFAULT '',
    step TEXT NOT NULL,
    rule TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    started_at TEXT,
    updated_at TEXT,
    -- 1 while the episode has not ended, so a restart loads only the open ones.
    open INTEGER NOT NULL
);

CREATE INDEX remediations_open ON remediations (open, episode_id);
CREATE INDEX remediations_by_node ON remediations (node_id, episode_id);

-- kind is "pause" or "breaker"; pool is empty for the global pause.
CREATE TABLE remediation_switches (
    kind TEXT NOT NULL,
    pool TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    since TEXT NOT NULL,
    PRIMARY KEY (kind, pool)
);
