-- Tenants, their programs and the control plane (`steward serve`).

-- A webhook action's URL, taken from the version that performed it, so
-- delivery needs no ruleset (and a version since replaced still delivers
-- where it said).
ALTER TABLE steward_actions ADD COLUMN url TEXT;

-- Each ruleset of a tenant: its active version, and whether it runs.
-- A deleted ruleset has no row (its versions are kept, for the work
-- suspended under them and for the audit).
CREATE TABLE steward_ruleset_heads (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);

-- The program a tenant runs: its enabled rulesets' active versions,
-- checked together. Kept by digest (the version continuations name), so
-- suspended work resumes under the program that suspended it.
CREATE TABLE steward_programs (
    tenant TEXT NOT NULL,
    digest TEXT NOT NULL,
    -- JSON, as steward_rulesets.sources, files named `ruleset/file`.
    sources TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, digest)
);
CREATE INDEX steward_programs_digest ON steward_programs (digest);

-- Which program each tenant runs now (no digest: none of its rulesets
-- is enabled). A tenant without a row runs the development ruleset of
-- tenant `*`. `generation` grows with every change, so workers see one.
CREATE TABLE steward_tenant_programs (
    tenant TEXT NOT NULL PRIMARY KEY,
    digest TEXT,
    generation BIGINT NOT NULL,
    changed_at TEXT NOT NULL
);

-- What `steward run --rules` deployed before this migration.
INSERT INTO steward_ruleset_heads (tenant, name, version, enabled, updated_at)
    SELECT tenant, name, MAX(version), 1, MAX(deployed_at) FROM steward_rulesets GROUP BY tenant, name;
INSERT INTO steward_programs (tenant, digest, sources, created_at)
    SELECT tenant, digest, MIN(sources), MIN(deployed_at) FROM steward_rulesets GROUP BY tenant, digest;

-- (Before, one ruleset per tenant: its latest version is the program.)
INSERT INTO steward_tenant_programs (tenant, digest, generation, changed_at)
    SELECT r.tenant, r.digest, 1, r.deployed_at FROM steward_rulesets r
    WHERE r.version = (SELECT MAX(v.version) FROM steward_rulesets v
                       WHERE v.tenant = r.tenant AND v.name = r.name);
-- Grows with every change of a tenant's program (a row lock: changes
-- take their numbers in the order they commit).
INSERT INTO steward_seq (name, value)
    SELECT 'programs', COUNT(*) FROM steward_tenant_programs;

CREATE TABLE steward_tenants (
    id TEXT NOT NULL PRIMARY KEY,
    created_at TEXT NOT NULL
);

-- API tokens, `TENANT.ID.SECRET`: only a SHA-256 of the secret is kept.
CREATE TABLE steward_tokens (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- Who did what, when: deploys, rollbacks, enables, disables, deletes,
-- decisions, retries, tokens.
CREATE TABLE steward_audit (
    tenant TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    what TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (tenant, seq)
);

-- Answers to creating POSTs, by Idempotency-Key, kept for a day.
CREATE TABLE steward_idempotency (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    request TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
);

-- Decisions asked for over HTTP, each taken by the engine in a batch:
-- the first for an approval wins (a compare-and-set on the key).
CREATE TABLE steward_decision_requests (
    tenant TEXT NOT NULL,
    approval TEXT NOT NULL,
    approved INTEGER NOT NULL,
    decided_by TEXT NOT NULL,
    via TEXT NOT NULL,
    comment TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    taken_at TEXT,
    PRIMARY KEY (tenant, approval)
);

-- Approval links: single-use tokens (`TENANT.SECRET`), kept as hashes,
-- expiring at the approval's deadline.
CREATE TABLE steward_approval_links (
    tenant TEXT NOT NULL,
    hash TEXT NOT NULL,
    approval TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    PRIMARY KEY (tenant, hash)
);
