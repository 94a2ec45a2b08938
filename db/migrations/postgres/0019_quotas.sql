-- What a tenant may use, set by the admin (NULL: no limit): events accepted
-- per second, events stored, rulesets, API requests per minute per token,
-- actions delivered per hour (webhooks and mails).
CREATE TABLE steward_quotas (
    tenant TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    events_per_second BIGINT,
    events_stored BIGINT,
    rulesets BIGINT,
    requests_per_minute BIGINT,
    actions_per_hour BIGINT,
    updated_at TEXT COLLATE "C" NOT NULL
);
