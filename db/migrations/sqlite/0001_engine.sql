-- The engine's state (see the `Store` contract in src/engine/store.rs).
-- Every table is keyed by tenant first. Times are RFC 3339 text of fixed
-- width (nanoseconds, `Z`), so they are exact and sort as text.

CREATE TABLE steward_handled (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

-- One sequence for timers and approvals together: ties at one time are
-- taken in the order they were put.
CREATE TABLE steward_seq (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO steward_seq (name, value) VALUES ('due', 0);

CREATE TABLE steward_timers (
    tenant TEXT NOT NULL,
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    pos INTEGER NOT NULL,
    due TEXT NOT NULL,
    seq INTEGER NOT NULL,
    continuation TEXT NOT NULL,
    PRIMARY KEY (tenant, rule, key, pos)
) WITHOUT ROWID;
CREATE INDEX steward_timers_due ON steward_timers (due, seq);

CREATE TABLE steward_timer_cancels (
    tenant TEXT NOT NULL,
    event_type TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    pos INTEGER NOT NULL,
    PRIMARY KEY (tenant, event_type, field, value, rule, key, pos)
) WITHOUT ROWID;
CREATE INDEX steward_timer_cancels_timer ON steward_timer_cancels (tenant, rule, key, pos);

CREATE TABLE steward_approvals (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    pos INTEGER NOT NULL,
    role TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    deadline TEXT NOT NULL,
    seq INTEGER NOT NULL,
    continuation TEXT NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, rule, key, pos)
) WITHOUT ROWID;
CREATE INDEX steward_approvals_deadline ON steward_approvals (deadline, seq);

CREATE TABLE steward_decisions (
    tenant TEXT NOT NULL,
    approval TEXT NOT NULL,
    approved INTEGER NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    PRIMARY KEY (tenant, approval)
) WITHOUT ROWID;

CREATE TABLE steward_throttles (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    at TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (tenant, key, at, n)
) WITHOUT ROWID;

CREATE TABLE steward_ticks (
    tenant TEXT NOT NULL,
    rule TEXT NOT NULL,
    next TEXT NOT NULL,
    PRIMARY KEY (tenant, rule)
) WITHOUT ROWID;

-- The outbox: one row per action, unique on its idempotency key.
CREATE TABLE steward_actions (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    rule TEXT NOT NULL,
    event TEXT NOT NULL,
    action TEXT NOT NULL,
    args TEXT NOT NULL,
    performed_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at TEXT,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
