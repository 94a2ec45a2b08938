-- Who holds each role of a tenant: the addresses an approval's mail (with
-- its links) goes to.
CREATE TABLE steward_roles (
    tenant TEXT COLLATE "C" NOT NULL,
    role TEXT COLLATE "C" NOT NULL,
    -- JSON: ["owner@example.com", ...]
    emails TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, role)
);
