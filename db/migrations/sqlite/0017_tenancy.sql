-- Tokens that expire (NULL: never), and are revoked by deleting their row.
ALTER TABLE steward_tokens ADD COLUMN expires_at TEXT;

-- Each tenant's secrets, sealed (ChaCha20-Poly1305 with STEWARD_SECRET_KEY,
-- the tenant and the name as associated data: `steward_db::sealed`), never
-- readable back over the API. `webhook-signing` is the tenant's webhook
-- signing secret; `webhook-signing.previous` the one it replaced, signing
-- beside it until `expires_at`.
CREATE TABLE steward_secrets (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    sealed TEXT NOT NULL,
    set_at TEXT NOT NULL,
    set_by TEXT NOT NULL,
    expires_at TEXT,
    PRIMARY KEY (tenant, name)
);
