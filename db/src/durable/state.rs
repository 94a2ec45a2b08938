//! The engine's reads of its state: what was handled, what waits on a key, a window's count,
//! what a rule remembers, a schedule's next tick, a timer or approval by key.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use steward::engine::store::{window_start, Approval, CancelKey, Due, StoreError, Timer, TimerKey};
use steward::engine::stored::StoredValue;

use super::approval_tenant;
use crate::driver::{Driver, Query};
use crate::{parse_time, time_text, unavailable, SqlStore};

impl<D: Driver> SqlStore<D> {
    pub(crate) fn is_handled_now(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        {
            let deferred = self.deferred();
            if deferred.has(tenant, id) {
                return Ok(true);
            }
            if let Some(handled) = deferred.claimed_as(tenant, id) {
                return Ok(handled);
            }
        }
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let found: i64 =
                Query::new("SELECT COUNT(*) FROM steward_handled WHERE tenant = ? AND id = ?")
                    .bind(tenant)
                    .bind(id)
                    .scalar(c.get())
                    .await
                    .map_err(unavailable)?;
            Ok(found > 0)
        })
    }

    pub(crate) fn waiting_on_now(&self, key: &CancelKey) -> Result<usize, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let n: i64 = Query::new(
                "SELECT COUNT(*) FROM steward_timer_cancels \
                 WHERE tenant = ? AND event_type = ? AND field = ? AND value = ?",
            )
            .bind(&*key.tenant)
            .bind(&*key.event_type)
            .bind(&*key.field)
            .bind(&key.value)
            .scalar(c.get())
            .await
            .map_err(unavailable)?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    pub(crate) fn timer_now(&self, key: &TimerKey) -> Result<Option<Timer>, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let row = Query::new(
                "SELECT tenant, rule, key, pos, due, seq, continuation FROM steward_timers \
                 WHERE tenant = ? AND rule = ? AND key = ? AND pos = ?",
            )
            .bind(&*key.tenant)
            .bind(&*key.rule)
            .bind(&*key.key)
            .bind(i64::from(key.pos))
            .fetch_optional(c.get())
            .await
            .map_err(unavailable)?;
            let Some(row) = row else {
                return Ok(None);
            };
            Ok(match self.load_timer(c.get(), row).await? {
                Due::Timer(t) => Some(t),
                Due::Deadline(_) | Due::Cancelled { .. } => None,
            })
        })
    }

    pub(crate) fn approval_now(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let row = Query::new("SELECT * FROM steward_approvals WHERE tenant = ? AND id = ?")
                .bind(approval_tenant(id))
                .bind(id)
                .fetch_optional(c.get())
                .await
                .map_err(unavailable)?;
            match row {
                Some(row) => Ok(self.load_approval(c.get(), row).await?.ok()),
                None => Ok(None),
            }
        })
    }

    pub(crate) fn approval_for_now(&self, key: &TimerKey) -> Result<Option<Approval>, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let row = Query::new(
                "SELECT * FROM steward_approvals WHERE tenant = ? AND rule = ? AND key = ? AND pos = ?",
            )
            .bind(&*key.tenant)
            .bind(&*key.rule)
            .bind(&*key.key)
            .bind(i64::from(key.pos))
            .fetch_optional(c.get())
            .await
            .map_err(unavailable)?;
            match row {
                Some(row) => Ok(self.load_approval(c.get(), row).await?.ok()),
                None => Ok(None),
            }
        })
    }

    pub(crate) fn pending_approvals_now(&self) -> Result<Vec<Approval>, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let rows = Query::new("SELECT * FROM steward_approvals ORDER BY requested_at, seq")
                .fetch_all(c.get())
                .await
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                if let Ok(a) = self.load_approval(c.get(), row).await? {
                    out.push(a);
                }
            }
            Ok(out)
        })
    }

    pub(crate) fn window_count_now(
        &self,
        tenant: &str,
        key: &str,
        window_ms: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let start = window_start(now, window_ms);
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let n: i64 = Query::new(D::DIALECT.window_count)
                .bind(tenant)
                .bind(key)
                .bind(time_text(&start))
                .scalar(c.get())
                .await
                .map_err(unavailable)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    pub(crate) fn remembered_now(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Vec<(Arc<str>, StoredValue)>, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let rows: Vec<(String, String)> =
                Query::new("SELECT field, value FROM steward_memory WHERE tenant = ? AND key = ?")
                    .bind(tenant)
                    .bind(key)
                    .fetch_all(c.get())
                    .await
                    .map_err(unavailable)?;
            rows.into_iter()
                .map(|(field, value)| {
                    let value: StoredValue = serde_json::from_str(&value).map_err(|e| {
                        StoreError::Corrupt(format!("the remembered `{field}` of `{key}`: {e}"))
                    })?;
                    Ok((Arc::from(field.as_str()), value))
                })
                .collect()
        })
    }

    pub(crate) fn next_tick_now(
        &self,
        tenant: &str,
        rule: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let next: Option<String> =
                Query::new("SELECT next FROM steward_ticks WHERE tenant = ? AND rule = ?")
                    .bind(tenant)
                    .bind(rule)
                    .scalar_optional(c.get())
                    .await
                    .map_err(unavailable)?;
            next.map(|t| parse_time(&t)).transpose()
        })
    }

    pub(crate) fn pending_timers_now(&self) -> Result<usize, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let n: i64 = Query::new("SELECT COUNT(*) FROM steward_timers")
                .scalar(c.get())
                .await
                .map_err(unavailable)?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }
}
