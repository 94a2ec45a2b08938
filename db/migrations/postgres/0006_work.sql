-- Work for people, written in the transaction that performed the action:
-- `notify` is a notification for a role, `create_task` a task (the API
-- reads and closes them). `approval_requested` is the pending row of
-- steward_approvals. Each is keyed by its action's key.
CREATE TABLE steward_notifications (
    tenant TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    rule TEXT COLLATE "C" NOT NULL,
    event TEXT COLLATE "C" NOT NULL,
    role TEXT COLLATE "C" NOT NULL,
    text TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE TABLE steward_tasks (
    tenant TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    rule TEXT COLLATE "C" NOT NULL,
    event TEXT COLLATE "C" NOT NULL,
    role TEXT COLLATE "C" NOT NULL,
    title TEXT COLLATE "C" NOT NULL,
    due TEXT COLLATE "C",
    status TEXT COLLATE "C" NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, key)
);
