-- What the delivery threads claim: actions not delivered yet, oldest first.
-- Without it each claim reads the whole outbox (delivered rows included),
-- which grows with every action until retention prunes it.
CREATE INDEX steward_actions_due ON steward_actions (performed_at, key)
    WHERE status IN ('pending', 'failed');
