-- The console's sessions: a signed-in browser holds the session's secret in
-- a cookie; only its SHA-256 (`hash`) is kept. `token` names the tenant
-- token it was made with (NULL: the admin token), so deleting the token ends
-- it; `tenant` is the tenant looked at (an admin chooses one).
CREATE TABLE steward_sessions (
    hash TEXT NOT NULL PRIMARY KEY,
    tenant TEXT,
    token TEXT,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX steward_sessions_expires ON steward_sessions (expires_at);

-- How many rule errors a trace holds, so the overview finds recent errors
-- without reading every trace.
ALTER TABLE steward_traces ADD COLUMN errors INTEGER NOT NULL DEFAULT 0;
CREATE INDEX steward_traces_errors ON steward_traces (tenant, created_at) WHERE errors > 0;

-- The console's lists, by tenant (SQLite keeps the rowid, the events'
-- order, at the end of every index).
CREATE INDEX steward_events_tenant ON steward_events (tenant);
CREATE INDEX steward_events_key ON steward_events (tenant, key);
CREATE INDEX steward_events_received ON steward_events (tenant, received_at);
CREATE INDEX steward_actions_status ON steward_actions (tenant, status, performed_at);
CREATE INDEX steward_actions_event ON steward_actions (tenant, event);
CREATE INDEX steward_timers_tenant ON steward_timers (tenant, due);
CREATE INDEX steward_timers_key ON steward_timers (tenant, key);
CREATE INDEX steward_approvals_key ON steward_approvals (tenant, key);
CREATE INDEX steward_approvals_ended_key ON steward_approvals_ended (tenant, key);
