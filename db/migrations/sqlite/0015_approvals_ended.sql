-- Approvals that are no longer pending, and how each ended: `approved`,
-- `rejected`, `expired` (no decision by the deadline) or `cancelled`
-- (superseded, or its rule or version went away), with why and when. The
-- API lists them beside the pending ones (`GET /v1/approvals?status=`);
-- retention forgets them with the rest of what finished.
CREATE TABLE steward_approvals_ended (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    role TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    deadline TEXT NOT NULL,
    continuation TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('approved', 'rejected', 'expired', 'cancelled')),
    reason TEXT,
    ended_at TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX steward_approvals_ended_at ON steward_approvals_ended (ended_at);
