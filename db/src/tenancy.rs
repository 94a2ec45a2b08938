//! What keeps tenants apart beyond their rows: their tokens (listed,
//! expiring, revoked) and their secrets (sealed with `sealed::Sealer`,
//! listed by name only). Every query names the tenant first.

use crate::control::ControlError;
use crate::driver::{Driver, Pooled, Query};
use crate::SqlStore;

/// The name of a tenant's webhook signing secret, and of the one it
/// replaced, which signs beside it until it expires.
pub const SIGNING: &str = "webhook-signing";
pub const SIGNING_PREVIOUS: &str = "webhook-signing.previous";

/// A secret's name a tenant may set: lowercase letters, digits and `_`, 1
/// to 63, a letter first (the name a rule writes after `secret`); the
/// signing secret's names are the server's.
pub fn secret_name(name: &str) -> Result<(), String> {
    if name.starts_with(SIGNING) {
        return Err(format!(
            "`{name}` is the webhook signing secret's: rotate it with POST /v1/secrets/{SIGNING}/rotate"
        ));
    }
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a secret name (lowercase letters, digits and `_`, 1 to 63, a letter first: the name a rule writes after `secret`)"))
    }
}

/// A token as listed: never its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
}

/// A secret as listed: its name and when and by whom it was set, never
/// its value.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SecretRow {
    pub name: String,
    pub set_at: String,
    pub set_by: String,
    /// When it stops being used (a signing secret replaced by a rotation).
    pub expires_at: Option<String>,
}

/// What a tenant may use (none: no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Quotas {
    pub events_per_second: Option<i64>,
    pub events_stored: Option<i64>,
    pub rulesets: Option<i64>,
    pub requests_per_minute: Option<i64>,
    pub actions_per_hour: Option<i64>,
}

/// What a tenant uses now, of what its quotas count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub events_stored: i64,
    pub rulesets: i64,
}

pub trait Tenancy {
    /// A tenant's quotas (all none when the admin set none).
    fn quotas(&self, tenant: &str) -> Result<Quotas, ControlError>;
    /// Sets a tenant's quotas, with an audit entry.
    fn set_quotas(&self, tenant: &str, quotas: &Quotas, who: &str) -> Result<(), ControlError>;
    /// What the tenant stores now: its events and its rulesets.
    fn usage(&self, tenant: &str) -> Result<Usage, ControlError>;
    /// How many of the tenant's webhooks and mails (`send`) were delivered
    /// since `since`.
    fn delivered_since(&self, tenant: &str, since: &str) -> Result<i64, ControlError>;
    /// A tenant's tokens, by id.
    fn tokens(&self, tenant: &str) -> Result<Vec<TokenRow>, ControlError>;
    /// Deletes a token and ends its console sessions, with an audit entry;
    /// false if there was none.
    fn revoke_token(&self, tenant: &str, id: &str, who: &str) -> Result<bool, ControlError>;
    /// Sets a secret (sealed), with an audit entry naming it only.
    fn put_secret(
        &self,
        tenant: &str,
        name: &str,
        sealed: &str,
        who: &str,
    ) -> Result<(), ControlError>;
    /// Replaces secret `name` with `sealed`; the value it replaces, sealed
    /// again for its new name, is kept as `previous.0` until `until` (none:
    /// there was none). One transaction, one audit entry.
    fn rotate_secret(
        &self,
        tenant: &str,
        name: &str,
        sealed: &str,
        previous: (&str, Option<&str>),
        until: &str,
        who: &str,
    ) -> Result<(), ControlError>;
    fn secrets(&self, tenant: &str) -> Result<Vec<SecretRow>, ControlError>;
    /// Deletes a secret, with an audit entry; false if there was none.
    fn delete_secret(&self, tenant: &str, name: &str, who: &str) -> Result<bool, ControlError>;
    /// The sealed values of those of `names` that are set and not expired
    /// at `now`: (name, sealed).
    fn sealed_secrets(
        &self,
        tenant: &str,
        names: &[&str],
        now: &str,
    ) -> Result<Vec<(String, String)>, ControlError>;
}

/// The tenancy queries, for both databases.
impl<D: Driver> crate::tenancy::Tenancy for SqlStore<D> {
    fn quotas(&self, tenant: &str) -> Result<crate::tenancy::Quotas, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let row: Option<Quotas> = Query::new(
                "SELECT events_per_second, events_stored, rulesets, requests_per_minute, \
                 actions_per_hour FROM steward_quotas WHERE tenant = ?",
            )
            .bind(tenant)
            .fetch_optional(&mut Pooled(&self.pool))
            .await
            .map_err(db)?;
            Ok(row.unwrap_or_default())
        })
    }

    fn set_quotas(
        &self,
        tenant: &str,
        quotas: &crate::tenancy::Quotas,
        who: &str,
    ) -> Result<(), crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let mut tx = self.pool.begin_with(D::BEGIN).await.map_err(db)?;
            Query::new(
                "INSERT INTO steward_quotas (tenant, events_per_second, events_stored, rulesets, \
                 requests_per_minute, actions_per_hour, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (tenant) DO UPDATE SET events_per_second = excluded.events_per_second, \
                 events_stored = excluded.events_stored, rulesets = excluded.rulesets, \
                 requests_per_minute = excluded.requests_per_minute, \
                 actions_per_hour = excluded.actions_per_hour, updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(quotas.events_per_second)
            .bind(quotas.events_stored)
            .bind(quotas.rulesets)
            .bind(quotas.requests_per_minute)
            .bind(quotas.actions_per_hour)
            .bind(crate::control::now_text())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let detail = serde_json::json!({
                "events_per_second": quotas.events_per_second,
                "events_stored": quotas.events_stored,
                "rulesets": quotas.rulesets,
                "requests_per_minute": quotas.requests_per_minute,
                "actions_per_hour": quotas.actions_per_hour,
            });
            self.audit_on(&mut tx, tenant, who, "tenant.quotas", tenant, &detail)
                .await?;
            tx.commit().await.map_err(db)
        })
    }

    fn delivered_since(
        &self,
        tenant: &str,
        since: &str,
    ) -> Result<i64, crate::control::ControlError> {
        self.block(async {
            Query::new(
                "SELECT COUNT(*) FROM steward_actions WHERE tenant = ? AND status = 'delivered' \
                 AND finished_at >= ? AND (url IS NOT NULL OR action = 'send')",
            )
            .bind(tenant)
            .bind(since)
            .scalar(&mut Pooled(&self.pool))
            .await
            .map_err(crate::control::db)
        })
    }

    fn usage(&self, tenant: &str) -> Result<crate::tenancy::Usage, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let mut c = self.pool.acquire().await.map_err(db)?;
            let events_stored: i64 =
                Query::new("SELECT COUNT(*) FROM steward_events WHERE tenant = ?")
                    .bind(tenant)
                    .scalar(&mut *c)
                    .await
                    .map_err(db)?;
            let rulesets: i64 =
                Query::new("SELECT COUNT(*) FROM steward_ruleset_heads WHERE tenant = ?")
                    .bind(tenant)
                    .scalar(&mut *c)
                    .await
                    .map_err(db)?;
            Ok(crate::tenancy::Usage {
                events_stored,
                rulesets,
            })
        })
    }

    fn tokens(
        &self,
        tenant: &str,
    ) -> Result<Vec<crate::tenancy::TokenRow>, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let rows: Vec<(String, String, String, Option<String>)> = Query::new(
                "SELECT id, scopes, created_at, expires_at FROM steward_tokens \
                 WHERE tenant = ? ORDER BY id LIMIT 1000",
            )
            .bind(tenant)
            .fetch_all(&mut Pooled(&self.pool))
            .await
            .map_err(db)?;
            Ok(rows
                .into_iter()
                .map(
                    |(id, scopes, created_at, expires_at)| crate::tenancy::TokenRow {
                        id,
                        scopes: scopes.split_whitespace().map(str::to_string).collect(),
                        created_at,
                        expires_at,
                    },
                )
                .collect())
        })
    }

    fn revoke_token(
        &self,
        tenant: &str,
        id: &str,
        who: &str,
    ) -> Result<bool, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let mut tx = self.pool.begin_with(D::BEGIN).await.map_err(db)?;
            let done = Query::new("DELETE FROM steward_tokens WHERE tenant = ? AND id = ?")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if done == 0 {
                return Ok(false);
            }
            Query::new("DELETE FROM steward_sessions WHERE tenant = ? AND token = ?")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            self.audit_on(
                &mut tx,
                tenant,
                who,
                "token.revoked",
                id,
                &serde_json::json!({}),
            )
            .await?;
            tx.commit().await.map_err(db)?;
            Ok(true)
        })
    }

    fn put_secret(
        &self,
        tenant: &str,
        name: &str,
        sealed: &str,
        who: &str,
    ) -> Result<(), crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let mut tx = self.pool.begin_with(D::BEGIN).await.map_err(db)?;
            Query::new(
                "INSERT INTO steward_secrets (tenant, name, sealed, set_at, set_by, expires_at) \
                 VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT (tenant, name) DO UPDATE SET \
                 sealed = excluded.sealed, set_at = excluded.set_at, set_by = excluded.set_by, \
                 expires_at = NULL",
            )
            .bind(tenant)
            .bind(name)
            .bind(sealed)
            .bind(crate::control::now_text())
            .bind(who)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            self.audit_on(
                &mut tx,
                tenant,
                who,
                "secret.set",
                name,
                &serde_json::json!({}),
            )
            .await?;
            tx.commit().await.map_err(db)
        })
    }

    fn rotate_secret(
        &self,
        tenant: &str,
        name: &str,
        sealed: &str,
        previous: (&str, Option<&str>),
        until: &str,
        who: &str,
    ) -> Result<(), crate::control::ControlError> {
        use crate::control::db;
        let now = crate::control::now_text();
        self.block(async {
            let mut tx = self.pool.begin_with(D::BEGIN).await.map_err(db)?;
            Query::new("DELETE FROM steward_secrets WHERE tenant = ? AND name IN (?, ?)")
                .bind(tenant)
                .bind(name)
                .bind(previous.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let insert =
                "INSERT INTO steward_secrets (tenant, name, sealed, set_at, set_by, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?)";
            if let Some(old) = previous.1 {
                Query::new(insert)
                    .bind(tenant)
                    .bind(previous.0)
                    .bind(old)
                    .bind(&now)
                    .bind(who)
                    .bind(until)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            Query::new(insert)
                .bind(tenant)
                .bind(name)
                .bind(sealed)
                .bind(&now)
                .bind(who)
                .bind(Option::<String>::None)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let detail = serde_json::json!({ "previous_until": previous.1.map(|_| until) });
            self.audit_on(&mut tx, tenant, who, "secret.rotated", name, &detail)
                .await?;
            tx.commit().await.map_err(db)
        })
    }

    fn secrets(
        &self,
        tenant: &str,
    ) -> Result<Vec<crate::tenancy::SecretRow>, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            Query::new(
                "SELECT name, set_at, set_by, expires_at FROM steward_secrets \
                 WHERE tenant = ? ORDER BY name LIMIT 1000",
            )
            .bind(tenant)
            .fetch_all(&mut Pooled(&self.pool))
            .await
            .map_err(db)
        })
    }

    fn delete_secret(
        &self,
        tenant: &str,
        name: &str,
        who: &str,
    ) -> Result<bool, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let mut tx = self.pool.begin_with(D::BEGIN).await.map_err(db)?;
            let done = Query::new("DELETE FROM steward_secrets WHERE tenant = ? AND name = ?")
                .bind(tenant)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if done == 0 {
                return Ok(false);
            }
            self.audit_on(
                &mut tx,
                tenant,
                who,
                "secret.deleted",
                name,
                &serde_json::json!({}),
            )
            .await?;
            tx.commit().await.map_err(db)?;
            Ok(true)
        })
    }

    fn sealed_secrets(
        &self,
        tenant: &str,
        names: &[&str],
        now: &str,
    ) -> Result<Vec<(String, String)>, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let rows: Vec<(String, String)> = Query::new(
                "SELECT name, sealed FROM steward_secrets WHERE tenant = ? \
                 AND (expires_at IS NULL OR expires_at > ?) ORDER BY name",
            )
            .bind(tenant)
            .bind(now)
            .fetch_all(&mut Pooled(&self.pool))
            .await
            .map_err(db)?;
            Ok(rows
                .into_iter()
                .filter(|(name, _)| names.contains(&name.as_str()))
                .collect())
        })
    }
}
