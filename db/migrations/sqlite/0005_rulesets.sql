-- Deployed rulesets. Every version is kept, sources and all, so work
-- suspended under a version resumes under it after a redeploy or a
-- restart. The tenant `*` holds the development ruleset `steward run
-- --rules` deploys, which applies to every tenant.
CREATE TABLE steward_rulesets (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    -- The compiled program's digest: the version continuations name.
    digest TEXT NOT NULL,
    -- JSON: {"files": [[name, text], ...], "scripts": [[file, path, text], ...]}
    sources TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
CREATE INDEX steward_rulesets_digest ON steward_rulesets (digest);
