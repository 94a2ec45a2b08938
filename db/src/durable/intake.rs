//! Events in: pushed as envelopes, claimed in order (per key, fairly among tenants), rejected.

use chrono::{DateTime, Utc};
use steward::engine::store::StoreError;

use crate::driver::{Driver, Exec, Pooled, Query};
use crate::{time_text, unavailable, SqlStore};

/// A pending event as a claim reads it.
#[derive(sqlx::FromRow)]
pub(crate) struct PendingRow {
    pub(crate) tenant: String,
    pub(crate) id: String,
    #[sqlx(rename = "type")]
    pub(crate) event_type: String,
    pub(crate) occurred_at: String,
    pub(crate) key: Option<String>,
    pub(crate) payload: String,
    pub(crate) handled: bool,
    pub(crate) previous: Option<String>,
}

/// An event waiting to be handled, as an envelope line.
#[derive(Clone, Debug)]
pub struct PendingEvent {
    pub tenant: String,
    pub id: String,
    pub line: String,
}

/// Why an envelope could not be pushed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    Envelope(String),
    #[error(transparent)]
    Store(StoreError),
}

/// The envelope of a pushed line, checked enough to store it: its payload
/// is checked against its schema when a worker handles it.
pub(crate) struct Envelope {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) event_type: String,
    pub(crate) occurred_at: DateTime<Utc>,
    pub(crate) key: Option<String>,
    pub(crate) payload: String,
    pub(crate) previous: Option<String>,
}

/// The most tenants one claim shares a batch among (the next claim goes on
/// with the tenants after them).
pub(crate) const FAIR_TENANTS: i64 = 16;

impl Envelope {
    fn parse(line: &str) -> Result<Envelope, PushError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw<'a> {
            id: String,
            tenant: String,
            #[serde(rename = "type")]
            event_type: String,
            occurred_at: String,
            #[serde(default)]
            key: Option<String>,
            #[serde(borrow)]
            payload: &'a serde_json::value::RawValue,
            #[serde(default, borrow)]
            previous: Option<&'a serde_json::value::RawValue>,
        }
        let raw: Raw = serde_json::from_str(line)
            .map_err(|e| PushError::Envelope(format!("not an envelope: {e}")))?;
        let occurred_at = DateTime::parse_from_rfc3339(&raw.occurred_at)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                PushError::Envelope(format!(
                    "occurred_at: `{}` is not an RFC 3339 time ({e})",
                    raw.occurred_at
                ))
            })?;
        if !raw.payload.get().trim_start().starts_with('{') {
            return Err(PushError::Envelope("payload: expected an object".into()));
        }
        let previous = raw.previous.map(|p| p.get()).filter(|p| *p != "null");
        if previous.is_some_and(|p| !p.trim_start().starts_with('{')) {
            return Err(PushError::Envelope("previous: expected an object".into()));
        }
        Ok(Envelope {
            id: raw.id,
            tenant: raw.tenant,
            event_type: raw.event_type,
            occurred_at,
            key: raw.key,
            payload: raw.payload.get().to_string(),
            previous: previous.map(str::to_string),
        })
    }
}

impl<D: Driver> SqlStore<D> {
    /// Inserts one envelope (a JSON line) as a pending event; false if
    /// the tenant already has an event of that id (it is kept as it was).
    pub(crate) fn push_now(&self, line: &str) -> Result<bool, PushError> {
        let e = Envelope::parse(line)?;
        self.block(async {
            let done = Query::new(format!(
                "INSERT INTO steward_events (tenant, id, type, occurred_at, key, payload, previous) \
                 VALUES (?, ?, ?, {}, ?, {}, {}) ON CONFLICT DO NOTHING",
                D::DIALECT.time_in, D::DIALECT.payload_in, D::DIALECT.payload_in
            ))
            .bind(&e.tenant)
            .bind(&e.id)
            .bind(&e.event_type)
            .bind(time_text(&e.occurred_at))
            .bind(&e.key)
            .bind(&e.payload)
            .bind(&e.previous)
            .execute(&mut Pooled(&self.pool))
            .await
            .map_err(|e| PushError::Store(unavailable(e)))?;
            Ok(done == 1)
        })
    }

    /// Up to `limit` pending events, as envelope lines for the
    /// engine's decoder; when `claim`, locked for this batch (see
    /// [`driver::Dialect::claim`]) and shared fairly among tenants: with
    /// several tenants waiting, up to [`FAIR_TENANTS`] of them, in
    /// turn from where the last claim stopped, get an equal share of
    /// the batch (each its oldest events), so one tenant's backlog
    /// delays another's next event by a batch at most.
    pub(crate) fn pending_events_now(
        &self,
        limit: i64,
        claim: bool,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        if !claim {
            return self.pending_of(None, limit, false);
        }
        let tenants = self.waiting_tenants()?;
        if tenants.len() <= 1 {
            return self.pending_of(None, limit, true);
        }
        let count = i64::try_from(tenants.len()).unwrap_or(1);
        let share = (limit.saturating_add(count - 1) / count).max(1);
        let mut out = Vec::new();
        for tenant in &tenants {
            out.extend(self.pending_of(Some(tenant), share, true)?);
        }
        if let Some(last) = tenants.last() {
            *self.next_tenant.lock().unwrap_or_else(|e| e.into_inner()) = last.clone();
        }
        Ok(out)
    }

    /// Up to [`FAIR_TENANTS`] tenants with pending events, in turn
    /// after the last claim's (a skip scan of the pending index:
    /// one lookup a tenant, whatever their backlogs).
    pub(crate) fn waiting_tenants(&self) -> Result<Vec<String>, StoreError> {
        let after = self
            .next_tenant
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let skip = |from: &str, n: i64| {
            let from = from.to_string();
            async move {
                let mut c = self.conn().await.map_err(unavailable)?;
                Query::new(format!(
                    "WITH RECURSIVE t(tenant, n) AS ( \
                     SELECT (SELECT tenant FROM steward_events {by} WHERE status = 'pending' AND tenant > ? \
                     ORDER BY tenant LIMIT 1), 1 \
                     UNION ALL \
                     SELECT (SELECT e.tenant FROM steward_events e {by} WHERE e.status = 'pending' \
                     AND e.tenant > t.tenant ORDER BY e.tenant LIMIT 1), t.n + 1 \
                     FROM t WHERE t.tenant IS NOT NULL AND t.n < ?) \
                     SELECT tenant FROM t WHERE tenant IS NOT NULL",
                    by = D::DIALECT.by_tenant
                ))
                .bind(from)
                .bind(n)
                .scalars(c.get())
                .await
                .map_err(unavailable)
            }
        };
        let mut tenants: Vec<String> = self.block(skip(&after, FAIR_TENANTS))?;
        let room = FAIR_TENANTS - i64::try_from(tenants.len()).unwrap_or(FAIR_TENANTS);
        if room > 0 && !after.is_empty() {
            // Round the turn from the first tenant.
            for t in self.block(skip("", room))? {
                if t.as_str() > after.as_str() || tenants.contains(&t) {
                    break;
                }
                tenants.push(t);
            }
        }
        Ok(tenants)
    }

    /// Up to `limit` pending events (of `tenant` only, if given), in
    /// the order they occurred.
    pub(crate) fn pending_of(
        &self,
        tenant: Option<&str>,
        limit: i64,
        claim: bool,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        let (only, lock) = if claim { D::DIALECT.claim } else { ("", "") };
        let (by, of_tenant) = if tenant.is_some() {
            let column = D::DIALECT.fair_tenant.replace("{}", "e.tenant");
            (D::DIALECT.by_tenant, format!("AND {column} = ?"))
        } else {
            ("", String::new())
        };
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let plan = D::DIALECT.claim_plan.filter(|_| claim);
            if let Some((set, _)) = plan {
                c.get().script(set).await.map_err(unavailable)?;
            }
            // Whether each was handled comes with the claim, so the
            // engine's lookups for the claimed events cost no round
            // trip (a claimed row is locked: only this batch can
            // handle it now).
            let sql = format!(
                "SELECT tenant, id, type, {} AS occurred_at, key, {} AS payload, \
                 EXISTS (SELECT 1 FROM steward_handled h WHERE h.tenant = e.tenant AND h.id = e.id) AS handled, \
                 {} AS previous \
                 FROM steward_events e {by} WHERE status = 'pending' {of_tenant} {only} \
                 ORDER BY e.occurred_at, e.{} LIMIT ? {lock}",
                D::DIALECT.time_out, D::DIALECT.payload_out, D::DIALECT.previous_out, D::DIALECT.order
            );
            let query = Query::new(sql);
            let query = match tenant {
                Some(t) => query.bind(t),
                None => query,
            };
            let rows: Vec<PendingRow> = query
                .bind(limit)
                .fetch_all(c.get())
                .await
                .map_err(unavailable)?;
            if let Some((_, reset)) = plan {
                c.get().script(reset).await.map_err(unavailable)?;
            }
            rows.into_iter()
                .map(|r| {
                    let PendingRow { tenant, id, event_type, occurred_at, key, payload, handled, previous } = r;
                    if claim {
                        self.deferred().claimed.insert((tenant.clone(), id.clone()), handled);
                    }
                    let payload: serde_json::Value = serde_json::from_str(&payload)
                        .map_err(|e| StoreError::Corrupt(format!("the payload of `{id}`: {e}")))?;
                    let previous: Option<serde_json::Value> = previous
                        .map(|p| serde_json::from_str(&p))
                        .transpose()
                        .map_err(|e| StoreError::Corrupt(format!("the previous values of `{id}`: {e}")))?;
                    let mut line = serde_json::json!({
                        "id": id,
                        "tenant": tenant,
                        "type": event_type,
                        "occurred_at": occurred_at,
                        "key": key,
                        "payload": payload,
                    });
                    if let (Some(previous), Some(map)) = (previous, line.as_object_mut()) {
                        map.insert("previous".into(), previous);
                    }
                    Ok(PendingEvent {
                        tenant,
                        id,
                        line: line.to_string(),
                    })
                })
                .collect()
        })
    }

    /// Marks an event rejected, with the reason.
    pub(crate) fn reject_now(
        &self,
        tenant: &str,
        id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            Query::new(format!(
                "UPDATE steward_events SET status = 'rejected', reason = ?, processed_at = {} \
                 WHERE tenant = ? AND id = ?",
                D::DIALECT.now
            ))
            .bind(reason)
            .bind(tenant)
            .bind(id)
            .execute(c.get())
            .await
            .map_err(unavailable)?;
            Ok(())
        })
    }

    /// How many events are pending, processed and rejected.
    pub(crate) fn event_counts_now(&self) -> Result<[i64; 3], StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let mut out = [0; 3];
            for (slot, status) in out.iter_mut().zip(["pending", "processed", "rejected"]) {
                *slot = Query::new("SELECT COUNT(*) FROM steward_events WHERE status = ?")
                    .bind(status)
                    .scalar(c.get())
                    .await
                    .map_err(unavailable)?;
            }
            Ok(out)
        })
    }

    pub(crate) fn tenants_now(&self) -> Result<Vec<String>, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            Query::new(
                "SELECT tenant FROM steward_events GROUP BY tenant \
                 UNION SELECT tenant FROM steward_ticks GROUP BY tenant",
            )
            .scalars(c.get())
            .await
            .map_err(unavailable)
        })
    }
}
