-- Rows that did not read back when the control plane started, set aside for an operator
-- (navarch/store/quarantine.py).

CREATE TABLE quarantine (
    quarantined_at TEXT NOT NULL,
    -- The table the row came from, and its key as Python's repr writes it.
    source TEXT NOT NULL,
    row_key TEXT NOT NULL,
    problem TEXT NOT NULL,
    -- The row's columns, as a JSON array.
    body TEXT NOT NULL,
    -- 1 when the row stayed in its table without its unreadable soft columns; 0 when it moved here.
    kept INTEGER NOT NULL
);
