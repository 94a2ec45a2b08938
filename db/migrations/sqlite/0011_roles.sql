-- Who holds each role of a tenant: the addresses an approval's mail (with
-- its links) goes to.
CREATE TABLE steward_roles (
    tenant TEXT NOT NULL,
    role TEXT NOT NULL,
    -- JSON: ["owner@example.com", ...]
    emails TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, role)
);
