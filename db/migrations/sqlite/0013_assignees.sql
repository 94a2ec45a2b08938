-- Work for a person as well as a role (docs/language.md, "Notifications and
-- tasks"): `notify owner_email "..."`, `create task "..." for owner_id`.
-- A row has a role or an assignee (a user id or an e-mail address); the
-- API filters by either. SQLite cannot drop a NOT NULL in place: the
-- tables are made again and their rows copied.
CREATE TABLE steward_notifications_new (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    rule TEXT NOT NULL,
    event TEXT NOT NULL,
    role TEXT,
    assignee TEXT,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, key),
    CHECK (role IS NOT NULL OR assignee IS NOT NULL)
);
INSERT INTO steward_notifications_new (tenant, key, rule, event, role, text, created_at)
    SELECT tenant, key, rule, event, role, text, created_at FROM steward_notifications;
DROP TABLE steward_notifications;
ALTER TABLE steward_notifications_new RENAME TO steward_notifications;

CREATE TABLE steward_tasks_new (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    rule TEXT NOT NULL,
    event TEXT NOT NULL,
    role TEXT,
    assignee TEXT,
    title TEXT NOT NULL,
    due TEXT,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, key),
    CHECK (role IS NOT NULL OR assignee IS NOT NULL)
);
INSERT INTO steward_tasks_new (tenant, key, rule, event, role, title, due, status, created_at)
    SELECT tenant, key, rule, event, role, title, due, status, created_at FROM steward_tasks;
DROP TABLE steward_tasks;
ALTER TABLE steward_tasks_new RENAME TO steward_tasks;

CREATE INDEX steward_notifications_assignee ON steward_notifications (tenant, assignee, created_at, key);
CREATE INDEX steward_notifications_role ON steward_notifications (tenant, role, created_at, key);
CREATE INDEX steward_tasks_assignee ON steward_tasks (tenant, assignee, created_at, key);
CREATE INDEX steward_tasks_role ON steward_tasks (tenant, role, created_at, key);
