-- What a tenant may use, set by the admin (NULL: no limit): events accepted
-- per second, events stored, rulesets, API requests per minute per token,
-- actions delivered per hour (webhooks and mails).
CREATE TABLE steward_quotas (
    tenant TEXT NOT NULL PRIMARY KEY,
    events_per_second INTEGER,
    events_stored INTEGER,
    rulesets INTEGER,
    requests_per_minute INTEGER,
    actions_per_hour INTEGER,
    updated_at TEXT NOT NULL
);
