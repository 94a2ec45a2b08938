//! A batch: one transaction around many units; what they write to the events and the outbox is
//! deferred and written at the commit, a few statements for the whole batch.

use chrono::{DateTime, Utc};
use steward::engine::store::{Changes, StoreError};

use super::*;
use crate::driver::{Driver, Query};
use crate::{time_text, unavailable, SqlStore};

/// What a batch's units wrote that is written at the batch's commit: the
/// events handled and the actions, a few statements for the batch.
#[derive(Default)]
pub(crate) struct Deferred {
    pub(crate) handled: Vec<(String, String)>,
    pub(crate) seen: std::collections::HashSet<(String, String)>,
    pub(crate) actions: Vec<ActionRow>,
    /// The events the batch claimed, and whether each was handled then.
    pub(crate) claimed: std::collections::HashMap<(String, String), bool>,
}

/// A connection to run queries on: the open batch's transaction, or one
/// of the pool's.
pub(crate) enum Conn<'a, DB: sqlx::Database> {
    Batch(tokio::sync::MappedMutexGuard<'a, sqlx::Transaction<'static, DB>>),
    Pool(sqlx::pool::PoolConnection<DB>),
}

impl Deferred {
    pub(crate) fn defer(&mut self, changes: &Changes, actions: Vec<ActionRow>) {
        if let Some((tenant, id)) = &changes.handled {
            let key = (tenant.to_string(), id.to_string());
            if self.seen.insert(key.clone()) {
                self.handled.push(key);
            }
        }
        self.actions.extend(actions);
    }

    pub(crate) fn claimed_as(&self, tenant: &str, id: &str) -> Option<bool> {
        if self.claimed.is_empty() {
            return None;
        }
        self.claimed
            .get(&(tenant.to_string(), id.to_string()))
            .copied()
    }

    pub(crate) fn has(&self, tenant: &str, id: &str) -> bool {
        !self.seen.is_empty() && self.seen.contains(&(tenant.to_string(), id.to_string()))
    }
}

impl<DB: sqlx::Database> Conn<'_, DB> {
    pub(crate) fn get(&mut self) -> &mut DB::Connection {
        match self {
            Conn::Batch(tx) => tx,
            Conn::Pool(c) => c,
        }
    }
}

/// Rows bound as one JSON text (see [`crate::driver::JsonRows`]).
fn json_rows<T: serde::Serialize>(rows: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

impl<D: Driver> SqlStore<D> {
    pub(crate) fn due_hint(&self) -> std::sync::MutexGuard<'_, Option<Option<DateTime<Utc>>>> {
        self.due_hint.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn in_batch(&self) -> bool {
        self.tx.try_lock().map_or(true, |slot| slot.is_some())
    }

    /// One attempt at [`Durable::deploy`], in one transaction.
    pub(crate) fn deferred(&self) -> std::sync::MutexGuard<'_, Deferred> {
        self.deferred.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes what the batch's units deferred, a few statements for
    /// the whole batch.
    pub(crate) async fn flush(&self, tx: &mut D::Conn) -> Result<(), sqlx::Error> {
        let Deferred {
            handled, actions, ..
        } = std::mem::take(&mut *self.deferred());
        if handled.is_empty() && actions.is_empty() {
            return Ok(());
        }
        let now = time_text(&Utc::now());
        let handled_rows: Vec<[&str; 2]> = handled
            .iter()
            .map(|(tenant, id)| [tenant.as_str(), id.as_str()])
            .collect();
        let action_rows: Vec<[Option<&str>; 11]> = actions
            .iter()
            .map(|a| {
                let (status, finished) = initial_status(a, &now);
                if status == "pending" {
                    self.outbox_writes
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                [
                    Some(a.tenant.as_str()),
                    Some(a.key.as_str()),
                    Some(a.rule.as_str()),
                    Some(a.event.as_str()),
                    Some(a.action.as_str()),
                    Some(a.args.as_str()),
                    Some(a.at.as_str()),
                    a.url.as_deref(),
                    a.headers.as_deref(),
                    Some(status),
                    finished.map(|_| now.as_str()),
                ]
            })
            .collect();
        let handled_rows = json_rows(&handled_rows)?;
        let action_rows = json_rows(&action_rows)?;
        for a in &actions {
            self.record_work(tx, a).await?;
        }
        // Each statement takes its rows as one JSON array bound as one
        // parameter, so its text is the same for any number of rows
        // (prepared once per connection, planned once).
        let remember = format!(
            "INSERT INTO steward_handled (handled_at, tenant, id) {} ON CONFLICT DO NOTHING",
            D::DIALECT.rows.select(&["?"], 2)
        );
        // By the primary key: `status NOT IN (...)`, not `status =
        // 'pending'`, which the pending indexes' predicate matches, so the
        // planner (with statistics taken before a burst of inserts) read
        // every pending row of the tenant for each event through
        // `steward_events_pending_key`: up to 1 s a batch over a backlog of
        // 30,000, measured with auto_explain.
        let mark = format!(
            "UPDATE steward_events SET status = 'processed', processed_at = {} \
             WHERE status NOT IN ('processed', 'rejected') AND (tenant, id) IN ({})",
            D::DIALECT.now,
            D::DIALECT.rows.select(&[], 2)
        );
        let record = format!(
            "INSERT INTO steward_actions \
             (tenant, key, rule, event, action, args, performed_at, url, headers, status, finished_at) \
             {} ON CONFLICT DO NOTHING",
            D::DIALECT.rows.select(&[], 11)
        );
        if !handled.is_empty() {
            Query::new(remember)
                .bind(&now)
                .bind(&handled_rows)
                .execute(&mut *tx)
                .await?;
            Query::new(mark)
                .bind(&handled_rows)
                .execute(&mut *tx)
                .await?;
        }
        if !actions.is_empty() {
            Query::new(record)
                .bind(&action_rows)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// The connection queries run on: the open batch's transaction,
    /// else one of the pool's.
    pub(crate) async fn conn(&self) -> Result<Conn<'_, D::Db>, sqlx::Error> {
        let slot = self.tx.lock().await;
        match tokio::sync::MutexGuard::try_map(slot, Option::as_mut) {
            Ok(tx) => Ok(Conn::Batch(tx)),
            Err(slot) => {
                drop(slot);
                Ok(Conn::Pool(self.pool.acquire().await?))
            }
        }
    }

    pub(crate) fn begin_batch_now(&self) -> Result<(), StoreError> {
        self.block(async {
            let mut slot = self.tx.lock().await;
            if let Some(open) = slot.take() {
                open.rollback().await.map_err(unavailable)?;
            }
            *self.deferred() = Deferred::default();
            *self.due_hint() = None;
            *slot = Some(self.pool.begin_with(D::BEGIN).await.map_err(unavailable)?);
            Ok(())
        })
    }

    pub(crate) fn commit_batch_now(&self) -> Result<(), StoreError> {
        *self.due_hint() = None;
        self.block(async {
            match self.tx.lock().await.take() {
                Some(mut tx) => {
                    self.flush(&mut tx).await.map_err(unavailable)?;
                    tx.commit().await.map_err(unavailable)
                }
                None => Ok(()),
            }
        })
    }

    pub(crate) fn rollback_batch_now(&self) -> Result<(), StoreError> {
        *self.due_hint() = None;
        *self.deferred() = Deferred::default();
        self.block(async {
            match self.tx.lock().await.take() {
                Some(tx) => tx.rollback().await.map_err(unavailable),
                None => Ok(()),
            }
        })
    }
}
