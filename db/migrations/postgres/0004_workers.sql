-- Several workers on one database. Timers and approvals take their order
-- from a sequence (a counter row would make every unit of every worker
-- write the same row); claims find the first pending event of a key.
CREATE SEQUENCE steward_due_seq;
SELECT setval('steward_due_seq', (SELECT value + 1 FROM steward_seq WHERE name = 'due'), false);
CREATE INDEX steward_events_pending_key ON steward_events (tenant, key, occurred_at, seq)
    WHERE status = 'pending';
CREATE INDEX steward_events_pending_order ON steward_events (occurred_at, seq)
    WHERE status = 'pending';
DROP INDEX steward_events_pending;
