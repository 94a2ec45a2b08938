-- Each handled event's explain trace (the rules considered, each
-- condition's value and the fields it read, the actions and errors),
-- written in the batch that handled it; pruned with the events.
CREATE TABLE steward_traces (
    tenant TEXT COLLATE "C" NOT NULL,
    event TEXT COLLATE "C" NOT NULL,
    trace TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, event)
);
CREATE INDEX steward_traces_created ON steward_traces (created_at);
