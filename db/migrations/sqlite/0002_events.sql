-- Events in. An application inserts the first six columns (in its own
-- transaction); Steward maintains the rest.
CREATE TABLE steward_events (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    key TEXT,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processed', 'rejected')),
    reason TEXT,
    received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    processed_at TEXT,
    seq INTEGER,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX steward_events_pending ON steward_events (status, occurred_at);
