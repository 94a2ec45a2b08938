-- Tokens that expire (NULL: never), and are revoked by deleting their row.
ALTER TABLE steward_tokens ADD COLUMN expires_at TEXT COLLATE "C";

-- Each tenant's secrets, sealed (ChaCha20-Poly1305 with STEWARD_SECRET_KEY,
-- the tenant and the name as associated data: `steward_db::sealed`), never
-- readable back over the API. `webhook-signing` is the tenant's webhook
-- signing secret; `webhook-signing.previous` the one it replaced, signing
-- beside it until `expires_at`.
CREATE TABLE steward_secrets (
    tenant TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    sealed TEXT COLLATE "C" NOT NULL,
    set_at TEXT COLLATE "C" NOT NULL,
    set_by TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C",
    PRIMARY KEY (tenant, name)
);
