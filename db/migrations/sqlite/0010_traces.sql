-- Each handled event's explain trace (the rules considered, each
-- condition's value and the fields it read, the actions and errors),
-- written in the batch that handled it; pruned with the events.
CREATE TABLE steward_traces (
    tenant TEXT NOT NULL,
    event TEXT NOT NULL,
    trace TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, event)
);
CREATE INDEX steward_traces_created ON steward_traces (created_at);
