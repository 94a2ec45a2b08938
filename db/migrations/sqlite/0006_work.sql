-- Work for people, written in the transaction that performed the action:
-- `notify` is a notification for a role, `create_task` a task (the API
-- reads and closes them). `approval_requested` is the pending row of
-- steward_approvals. Each is keyed by its action's key.
CREATE TABLE steward_notifications (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    rule TEXT NOT NULL,
    event TEXT NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE TABLE steward_tasks (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    rule TEXT NOT NULL,
    event TEXT NOT NULL,
    role TEXT NOT NULL,
    title TEXT NOT NULL,
    due TEXT,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
);
