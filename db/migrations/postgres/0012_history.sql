-- What rules remember between events (docs/engine.md, "History"):
-- the last value of each field a rule reads with `previous` or `changed`,
-- per tenant and event key, replaced in place by each event that carries it.
CREATE TABLE steward_memory (
    tenant TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    field TEXT COLLATE "C" NOT NULL,
    -- engine::stored::StoredValue as JSON: exact, tagged by kind.
    value TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, key, field)
);

-- steward_throttles holds every window: throttles, `count` clauses and
-- `count(...)` expressions. A mark is no use once its window has passed:
-- retention deletes it then, so a key that is never seen again does not
-- keep its marks. Marks written before this column have none, and go when
-- their key is next counted.
ALTER TABLE steward_throttles ADD COLUMN expires TEXT COLLATE "C";
CREATE INDEX steward_throttles_expires ON steward_throttles (expires);

-- The values an event's source says the entity had before the change it
-- reports (`steward pg capture` gives an update's old row): what `previous`
-- reads when nothing was remembered for the key yet.
ALTER TABLE steward_events ADD COLUMN previous JSONB;
