-- Leases: who may do a kind of work now. `steward run` holds the lease
-- `worker` while it runs and renews it as it goes; one that dies loses it
-- when it expires, and a waiting worker takes over. (A lease is about the
-- workers, not a tenant's data, so it is the one table not keyed by tenant.)
CREATE TABLE steward_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
