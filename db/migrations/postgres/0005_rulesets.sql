-- Deployed rulesets. Every version is kept, sources and all, so work
-- suspended under a version resumes under it after a redeploy or a
-- restart. The tenant `*` holds the development ruleset `steward run
-- --rules` deploys, which applies to every tenant.
CREATE TABLE steward_rulesets (
    tenant TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    -- The compiled program's digest: the version continuations name.
    digest TEXT COLLATE "C" NOT NULL,
    -- JSON: {"files": [[name, text], ...], "scripts": [[file, path, text], ...]}
    sources TEXT COLLATE "C" NOT NULL,
    deployed_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
CREATE INDEX steward_rulesets_digest ON steward_rulesets (digest);
