-- Events in. An application inserts the first six columns (in its own
-- transaction); Steward maintains the rest.
CREATE TABLE steward_events (
    tenant TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    type TEXT COLLATE "C" NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    key TEXT COLLATE "C",
    payload JSONB NOT NULL,
    status TEXT COLLATE "C" NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processed', 'rejected')),
    reason TEXT,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at TIMESTAMPTZ,
    seq BIGSERIAL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX steward_events_pending ON steward_events (status, occurred_at) WHERE status = 'pending';
