-- Approvals that are no longer pending, and how each ended: `approved`,
-- `rejected`, `expired` (no decision by the deadline) or `cancelled`
-- (superseded, or its rule or version went away), with why and when. The
-- API lists them beside the pending ones (`GET /v1/approvals?status=`);
-- retention forgets them with the rest of what finished.
CREATE TABLE steward_approvals_ended (
    tenant TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    rule TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    role TEXT COLLATE "C" NOT NULL,
    requested_at TEXT COLLATE "C" NOT NULL,
    deadline TEXT COLLATE "C" NOT NULL,
    continuation TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL CHECK (status IN ('approved', 'rejected', 'expired', 'cancelled')),
    reason TEXT COLLATE "C",
    ended_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX steward_approvals_ended_at ON steward_approvals_ended (ended_at);
