-- Work for a person as well as a role (docs/language.md, "Notifications and
-- tasks"): `notify owner_email "..."`, `create task "..." for owner_id`.
-- A row has a role or an assignee (a user id or an e-mail address); the
-- API filters by either.
ALTER TABLE steward_notifications
    ADD COLUMN assignee TEXT COLLATE "C",
    ALTER COLUMN role DROP NOT NULL,
    ADD CONSTRAINT steward_notifications_whom CHECK (role IS NOT NULL OR assignee IS NOT NULL);
ALTER TABLE steward_tasks
    ADD COLUMN assignee TEXT COLLATE "C",
    ALTER COLUMN role DROP NOT NULL,
    ADD CONSTRAINT steward_tasks_whom CHECK (role IS NOT NULL OR assignee IS NOT NULL);
CREATE INDEX steward_notifications_assignee ON steward_notifications (tenant, assignee, created_at, key);
CREATE INDEX steward_notifications_role ON steward_notifications (tenant, role, created_at, key);
CREATE INDEX steward_tasks_assignee ON steward_tasks (tenant, assignee, created_at, key);
CREATE INDEX steward_tasks_role ON steward_tasks (tenant, role, created_at, key);
