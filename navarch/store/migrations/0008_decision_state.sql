-- What decisions depend on, kept across restarts (navarch.store.protocol.DecisionState): a
-- node's health-judge window, a pool's circuit-breaker window, floor and scaling windows, an
-- episode a verdict asked for. value is the owner's JSON; scopes starting with "node." are keyed
-- by node id and pruned with the node.

CREATE TABLE decision_state (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
