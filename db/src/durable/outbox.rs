//! The outbox: actions claimed for delivery, their attempts, what waits and what died.

use chrono::{DateTime, Utc};
use steward::engine::store::StoreError;

use crate::driver::{Driver, Pooled, Query};
use crate::{time_text, unavailable, SqlStore};

/// An action a delivery claim took, and when it was performed (the
/// claim's order).
#[derive(sqlx::FromRow)]
pub(crate) struct ClaimedDelivery {
    pub(crate) performed_at: String,
    #[sqlx(flatten)]
    pub(crate) delivery: Delivery,
}

/// An action not delivered, as `steward_actions` keeps it.
#[derive(sqlx::FromRow)]
pub(crate) struct UndeliveredRow {
    pub(crate) tenant: String,
    pub(crate) key: String,
    pub(crate) rule: String,
    pub(crate) action: String,
    pub(crate) status: String,
    pub(crate) attempts: i32,
    pub(crate) next_attempt_at: Option<String>,
    pub(crate) last_error: Option<String>,
}

/// An action of the outbox that was not delivered, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undelivered {
    pub tenant: String,
    pub key: String,
    pub rule: String,
    pub action: String,
    /// `pending`, `failed` (to be tried again at `next_attempt_at`) or `dead`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// An action of the outbox, to deliver.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Delivery {
    pub tenant: String,
    /// Its idempotency key (`stw_...`): the webhook's `webhook-id`, the
    /// mail's `Message-ID`.
    pub key: String,
    pub rule: String,
    pub action: String,
    /// Its arguments, as a JSON object.
    pub args: String,
    /// How many attempts were made before this one.
    pub attempts: i32,
    /// Where a webhook action goes (mail has none).
    pub url: Option<String>,
    /// A webhook's headers as its rule declared them (JSON,
    /// [`WebhookHeaders`]: secrets by name, never values).
    pub headers: Option<String>,
}

/// A webhook's headers as the outbox keeps them with the action: as its
/// rule declared them, and whose secrets they name (the tenant's, or `*`'s
/// for the program every tenant without its own runs). Read again at each
/// attempt, so a rotated secret is used from the next.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WebhookHeaders {
    pub secrets_of: String,
    pub headers: Vec<steward::check::WebhookHeader>,
}

/// What an attempt to deliver came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Failed with `error`; tried again at `retry_at`, or never (dead).
    Failed {
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
}

impl<D: Driver> SqlStore<D> {
    /// The actions of the outbox, oldest first: (key, action, args).
    pub(crate) fn outbox_now(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            Query::new("SELECT key, action, args FROM steward_actions ORDER BY performed_at, key")
                .fetch_all(c.get())
                .await
                .map_err(unavailable)
        })
    }

    pub(crate) fn people_work_now(&self) -> Result<[i64; 2], StoreError> {
        self.block(async {
            let mut out = [0; 2];
            for (slot, table) in out
                .iter_mut()
                .zip(["steward_notifications", "steward_tasks"])
            {
                *slot = Query::new(format!("SELECT COUNT(*) FROM {table}"))
                    .scalar(&mut Pooled(&self.pool))
                    .await
                    .map_err(unavailable)?;
            }
            Ok(out)
        })
    }

    pub(crate) fn claim_deliveries_now(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.block(async {
            // In a transaction that takes the write lock first (on
            // SQLite `BEGIN IMMEDIATE`, which waits its turn): as one
            // statement, its read could start before a batch's
            // commit and its write then fail at once ("database is
            // locked"), under a steady stream of batches.
            let mut tx = self.pool.begin_with(D::BEGIN).await.map_err(unavailable)?;
            let mut rows: Vec<ClaimedDelivery> = Query::new(format!(
                "UPDATE steward_actions SET next_attempt_at = ? \
                 WHERE (tenant, key) IN (SELECT tenant, key FROM steward_actions \
                 WHERE status IN ('pending', 'failed') \
                 AND (next_attempt_at IS NULL OR next_attempt_at <= ?) \
                 ORDER BY performed_at, key LIMIT ? {}) \
                 RETURNING tenant, key, rule, action, args, attempts, performed_at, url, headers",
                D::DIALECT.claim.1
            ))
            .bind(time_text(&hold_until))
            .bind(time_text(&now))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            rows.sort_by(|a, b| {
                (&a.performed_at, &a.delivery.key).cmp(&(&b.performed_at, &b.delivery.key))
            });
            Ok(rows.into_iter().map(|r| r.delivery).collect())
        })
    }

    pub(crate) fn attempted_now(&self, d: &Delivery, outcome: &Attempt) -> Result<(), StoreError> {
        let (status, error, next) = match outcome {
            Attempt::Delivered => ("delivered", None, None),
            Attempt::Failed {
                error,
                retry_at: Some(t),
            } => ("failed", Some(error.as_str()), Some(time_text(t))),
            Attempt::Failed {
                error,
                retry_at: None,
            } => ("dead", Some(error.as_str()), None),
        };
        let finished = (status != "failed").then(|| time_text(&Utc::now()));
        self.block(async {
            Query::new(
                "UPDATE steward_actions SET status = ?, attempts = attempts + 1, \
                 last_error = COALESCE(?, last_error), next_attempt_at = ?, finished_at = ? \
                 WHERE tenant = ? AND key = ?",
            )
            .bind(status)
            .bind(error)
            .bind(next)
            .bind(finished)
            .bind(&d.tenant)
            .bind(&d.key)
            .execute(&mut Pooled(&self.pool))
            .await
            .map_err(unavailable)?;
            Ok(())
        })
    }

    pub(crate) fn waiting_deliveries_now(&self, now: DateTime<Utc>) -> Result<i64, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            Query::new(
                "SELECT COUNT(*) FROM steward_actions WHERE status = 'pending' \
                 OR (status = 'failed' AND next_attempt_at <= ?)",
            )
            .bind(time_text(&now))
            .scalar(c.get())
            .await
            .map_err(unavailable)
        })
    }

    pub(crate) fn undelivered_now(&self, limit: i64) -> Result<Vec<Undelivered>, StoreError> {
        self.block(async {
            let rows: Vec<UndeliveredRow> = Query::new(
                "SELECT tenant, key, rule, action, status, attempts, next_attempt_at, last_error \
                 FROM steward_actions WHERE status IN ('pending', 'failed', 'dead') \
                 ORDER BY performed_at, key LIMIT ?",
            )
            .bind(limit)
            .fetch_all(&mut Pooled(&self.pool))
            .await
            .map_err(unavailable)?;
            rows.into_iter()
                .map(|r| {
                    let UndeliveredRow {
                        tenant,
                        key,
                        rule,
                        action,
                        status,
                        attempts,
                        next_attempt_at: next,
                        last_error,
                    } = r;
                    // A failed action's next attempt; a pending one's
                    // column holds a claim's hold, not an attempt.
                    let next_attempt_at = match (status.as_str(), next) {
                        ("failed", Some(t)) => Some(
                            DateTime::parse_from_rfc3339(&t)
                                .map(|t| t.with_timezone(&Utc))
                                .map_err(|e| {
                                    StoreError::Corrupt(format!("a next attempt time `{t}`: {e}"))
                                })?,
                        ),
                        _ => None,
                    };
                    Ok(Undelivered {
                        tenant,
                        key,
                        rule,
                        action,
                        status,
                        attempts,
                        next_attempt_at,
                        last_error,
                    })
                })
                .collect()
        })
    }

    pub(crate) fn delivery_counts_now(&self) -> Result<[i64; 4], StoreError> {
        self.block(async {
            let mut out = [0; 4];
            for (slot, status) in out
                .iter_mut()
                .zip(["pending", "delivered", "failed", "dead"])
            {
                *slot = Query::new("SELECT COUNT(*) FROM steward_actions WHERE status = ?")
                    .bind(status)
                    .scalar(&mut Pooled(&self.pool))
                    .await
                    .map_err(unavailable)?;
            }
            Ok(out)
        })
    }
}
