-- What decisions depend on, kept across restarts (navarch.store.protocol.DecisionState), as the
-- SQLite store's migration 0008 keeps it: value is the owner's JSON; scopes starting with "node."
-- are keyed by node id and pruned with the node.

CREATE TABLE decision_state (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY,
    scope TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (scope, key)
);
