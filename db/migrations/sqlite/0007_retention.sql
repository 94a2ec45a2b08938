-- Retention: when an event id was handled (wall clock), so the ids of old
-- events (and of the events rules emitted) are forgotten after the
-- retention period, with the events and the finished actions.
ALTER TABLE steward_handled ADD COLUMN handled_at TEXT;
CREATE INDEX steward_handled_at ON steward_handled (handled_at);
-- When an action was delivered or found dead (wall clock).
ALTER TABLE steward_actions ADD COLUMN finished_at TEXT;
CREATE INDEX steward_actions_finished ON steward_actions (finished_at);
