-- What the delivery threads claim: actions not delivered yet, oldest first.
-- Without it each claim reads the whole outbox (delivered rows included),
-- which grows with every action until retention prunes it.
CREATE INDEX steward_actions_due ON steward_actions (performed_at, key)
    WHERE status IN ('pending', 'failed');

-- The events table is a queue: a burst of inserts, then every row updated
-- once. The claim's plan depends on how many rows are pending, so the
-- statistics must follow a burst within seconds, not after 10% of the
-- table changed; dead rows left by the updates are cleared as often.
ALTER TABLE steward_events SET (
    autovacuum_analyze_scale_factor = 0.01,
    autovacuum_analyze_threshold = 500,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000
);
