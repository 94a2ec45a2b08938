-- The engine's state (see the `Store` contract in src/engine/store.rs).
-- Every table is keyed by tenant first. Times are RFC 3339 text of fixed
-- width (nanoseconds, `Z`), so they are exact and sort as text (COLLATE "C").
-- PostgreSQL: the same tables as the SQLite migration.

CREATE TABLE steward_handled (
    tenant TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- One sequence for timers and approvals together: ties at one time are
-- taken in the order they were put.
CREATE TABLE steward_seq (
    name TEXT COLLATE "C" PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO steward_seq (name, value) VALUES ('due', 0);

CREATE TABLE steward_timers (
    tenant TEXT COLLATE "C" NOT NULL,
    rule TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    pos BIGINT NOT NULL,
    due TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    continuation TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, rule, key, pos)
);
CREATE INDEX steward_timers_due ON steward_timers (due, seq);

CREATE TABLE steward_timer_cancels (
    tenant TEXT COLLATE "C" NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    field TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    rule TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    pos BIGINT NOT NULL,
    PRIMARY KEY (tenant, event_type, field, value, rule, key, pos)
);
CREATE INDEX steward_timer_cancels_timer ON steward_timer_cancels (tenant, rule, key, pos);

CREATE TABLE steward_approvals (
    tenant TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    rule TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    pos BIGINT NOT NULL,
    role TEXT COLLATE "C" NOT NULL,
    requested_at TEXT COLLATE "C" NOT NULL,
    deadline TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    continuation TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, rule, key, pos)
);
CREATE INDEX steward_approvals_deadline ON steward_approvals (deadline, seq);

CREATE TABLE steward_decisions (
    tenant TEXT COLLATE "C" NOT NULL,
    approval TEXT COLLATE "C" NOT NULL,
    approved BOOLEAN NOT NULL,
    decided_by TEXT COLLATE "C" NOT NULL,
    decided_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, approval)
);

CREATE TABLE steward_throttles (
    tenant TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    at TEXT COLLATE "C" NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (tenant, key, at, n)
);

CREATE TABLE steward_ticks (
    tenant TEXT COLLATE "C" NOT NULL,
    rule TEXT COLLATE "C" NOT NULL,
    next TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, rule)
);

-- The outbox: one row per action, unique on its idempotency key.
CREATE TABLE steward_actions (
    tenant TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    rule TEXT COLLATE "C" NOT NULL,
    event TEXT COLLATE "C" NOT NULL,
    action TEXT COLLATE "C" NOT NULL,
    args TEXT COLLATE "C" NOT NULL,
    performed_at TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT COLLATE "C",
    next_attempt_at TEXT COLLATE "C",
    PRIMARY KEY (tenant, key)
);
