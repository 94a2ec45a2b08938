//! Steward's durable stores: the engine's [`Store`] contract kept in SQLite
//! (the embedded default) or PostgreSQL, with `sqlx` and versioned
//! migrations (`db/migrations/{sqlite,postgres}`).
//!
//! The two stores are two types, [`SqliteStore`] and [`PgStore`], each with
//! its own connection, transactions and SQL dialect (SQLite: WAL, one
//! writer, `BEGIN IMMEDIATE` for every unit; PostgreSQL: a sequence, and
//! `ON CONFLICT` everywhere); the code that maps the contract onto tables is
//! written once, by [`durable_store!`], for both. What the state means stays
//! in the engine's `runtime.rs`: a store only keeps it.
//!
//! Suspended work is kept in its stored form (`engine::stored`): a timer's or
//! an approval's continuation as JSON naming the ruleset version, the rule,
//! the block by its step id, the event and the `let`s. It resumes under the
//! version that made it; one whose version, rule or step is gone comes due
//! as [`Due::Cancelled`] with the reason.
//!
//! The store's methods are synchronous, as the engine's are: each runs its
//! queries to the end on the store's own single-threaded `tokio` runtime.

pub mod api;
pub mod capture;
pub mod console;
pub mod control;
pub mod driver;
pub mod links;
pub mod sealed;
pub mod tenancy;

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use driver::{Driver, Exec, Pooled, Query};
use steward::boundary::Sources;
use steward::engine::store::{
    window_start, Approval, CancelKey, Cause, Change, Changes, Decision, Due, StoreError, Timer,
    TimerKey,
};
use steward::engine::stored::{self, StoredContinuation, StoredValue, Versions};
use steward::engine::{Performed, Ruleset, Store};

/// An event's explain trace as kept: the trace as JSON, and how many rule
/// errors it holds (the console lists recent errors by it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTrace {
    pub tenant: String,
    pub event: String,
    pub trace: String,
    pub errors: usize,
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("the database's migrations failed: {0}")]
    Migrate(String),
    #[error("cannot start the database's runtime: {0}")]
    Runtime(String),
}

/// A time as the tables keep it: fixed width, to the nanosecond, sortable.
fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("`{text}` is not a time: {e}")))
}

fn unavailable(e: sqlx::Error) -> StoreError {
    match &e {
        // A serialization failure, or a deadlock between workers' locks.
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40001" | "40P01")) => {
            StoreError::Conflict(Cause::new(e))
        }
        // A row another worker or request inserted first (SQLite: 2067 and
        // 1555, a unique key or a primary key).
        sqlx::Error::Database(d)
            if matches!(d.code().as_deref(), Some("23505" | "2067" | "1555")) =>
        {
            StoreError::Duplicate(Cause::new(e))
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Unavailable(Cause::new(e)),
    }
}

/// A continuation as the store keeps it (an error, not an empty text,
/// when it cannot be written).
fn continuation_json(
    rules: &Ruleset,
    cont: &steward::engine::store::Continuation,
) -> Result<String, sqlx::Error> {
    let stored = stored::store(rules, cont);
    serde_json::to_string(&stored).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

fn index(n: i64) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("step id {n} is out of range")))
}

/// A timer as `steward_timers` keeps it.
#[derive(sqlx::FromRow)]
struct TimerRow {
    tenant: String,
    rule: String,
    key: String,
    pos: i64,
    due: String,
    seq: i64,
    continuation: String,
}

/// An approval as `steward_approvals` keeps it while it waits.
#[derive(sqlx::FromRow)]
struct PendingApprovalRow {
    tenant: String,
    id: String,
    rule: String,
    key: String,
    pos: i64,
    role: String,
    requested_at: String,
    deadline: String,
    seq: i64,
    continuation: String,
}

/// A pending event as a claim reads it.
#[derive(sqlx::FromRow)]
struct PendingRow {
    tenant: String,
    id: String,
    #[sqlx(rename = "type")]
    event_type: String,
    occurred_at: String,
    key: Option<String>,
    payload: String,
    handled: bool,
    previous: Option<String>,
}

/// An action a delivery claim took, and when it was performed (the
/// claim's order).
#[derive(sqlx::FromRow)]
struct ClaimedDelivery {
    performed_at: String,
    #[sqlx(flatten)]
    delivery: Delivery,
}

/// An action not delivered, as `steward_actions` keeps it.
#[derive(sqlx::FromRow)]
struct UndeliveredRow {
    tenant: String,
    key: String,
    rule: String,
    action: String,
    status: String,
    attempts: i32,
    next_attempt_at: Option<String>,
    last_error: Option<String>,
}

/// What a stored continuation resumes as, or why it cannot.
enum Resumed {
    Ready(steward::engine::store::Continuation, Arc<Ruleset>),
    Cancelled(String),
}

fn parse_continuation(json: &str) -> Result<StoredContinuation, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("a stored continuation: {e}")))
}

/// The ruleset of a stored version, checked and compiled again from its
/// sources; `None` if it no longer checks, or is not the same program.
fn rebuild(digest: &str, sources: &str) -> Option<Arc<Ruleset>> {
    let sources: Sources = serde_json::from_str(sources).ok()?;
    let rules = sources.build().rules.ok()?;
    (rules.version == digest).then_some(rules)
}

/// The block an approval's `else` runs, in the ruleset it resumes under.
fn else_block(
    rules: &Ruleset,
    cont: &steward::engine::store::Continuation,
    pos: u32,
) -> Option<usize> {
    let rule = rules.rules.get(cont.rule)?;
    rule.block_steps
        .iter()
        .position(|b| b.step == pos && b.branch == steward::engine::program::Branch::Else)
}

/// Writes a unit's changes and actions, in the dialect of `$db`. Shared by
/// both stores (see the module's docs): the SQL is written with `?`
/// placeholders and `$sql` turns it into the dialect's.
impl<D: Driver> SqlStore<D> {
    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, Versions> {
        self.versions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a stored continuation resumes as: under the version that
    /// suspended it, loaded from `steward_rulesets` the first time
    /// it is needed; or why it cannot.
    async fn resume(&self, c: &mut D::Conn, json: &str) -> Result<Resumed, StoreError> {
        let stored = parse_continuation(json)?;
        let known = self.versions().get(&stored.version).is_some();
        if !known {
            let row: Option<String> =
                Query::new("SELECT sources FROM steward_programs WHERE digest = ? LIMIT 1")
                    .bind(&stored.version)
                    .scalar_optional(&mut *c)
                    .await
                    .map_err(unavailable)?;
            if let Some(rules) = row.and_then(|text| rebuild(&stored.version, &text)) {
                self.versions().insert(rules);
            }
        }
        Ok(match self.versions().resume(&stored) {
            Ok((rules, cont)) => Resumed::Ready(cont, rules),
            Err(why) => Resumed::Cancelled(why.to_string()),
        })
    }

    async fn load_timer(&self, c: &mut D::Conn, row: TimerRow) -> Result<Due, StoreError> {
        let TimerRow {
            tenant,
            rule,
            key,
            pos,
            due,
            continuation: json,
            ..
        } = row;
        let pos = index(pos)?;
        let due = parse_time(&due)?;
        let timer_key = TimerKey {
            tenant: Arc::from(tenant.as_str()),
            rule: Arc::from(rule.as_str()),
            key: Arc::from(key.as_str()),
            pos,
        };
        let cont = match self.resume(c, &json).await? {
            Resumed::Ready(cont, _) => cont,
            Resumed::Cancelled(reason) => {
                return Ok(Due::Cancelled {
                    timer: Some(timer_key),
                    approval: None,
                    reason,
                })
            }
        };
        let rows: Vec<(String, String, String)> = Query::new(
            "SELECT event_type, field, value FROM steward_timer_cancels \
             WHERE tenant = ? AND rule = ? AND key = ? AND pos = ?",
        )
        .bind(&tenant)
        .bind(&rule)
        .bind(&key)
        .bind(i64::from(pos))
        .fetch_all(&mut *c)
        .await
        .map_err(unavailable)?;
        let cancel = rows
            .into_iter()
            .map(|(event_type, field, value)| CancelKey {
                tenant: timer_key.tenant.clone(),
                event_type: Arc::from(event_type.as_str()),
                field: Arc::from(field.as_str()),
                value,
            })
            .collect();
        Ok(Due::Timer(Timer {
            key: timer_key,
            due,
            cancel,
            cont,
        }))
    }

    async fn load_approval(
        &self,
        c: &mut D::Conn,
        row: PendingApprovalRow,
    ) -> Result<Result<Approval, (String, String)>, StoreError> {
        let pos = index(row.pos)?;
        let id = row.id;
        let (cont, rules) = match self.resume(c, &row.continuation).await? {
            Resumed::Ready(cont, rules) => (cont, rules),
            Resumed::Cancelled(reason) => return Ok(Err((id, reason))),
        };
        let otherwise = else_block(&rules, &cont, pos);
        Ok(Ok(Approval {
            key: TimerKey {
                tenant: Arc::from(row.tenant.as_str()),
                rule: Arc::from(row.rule.as_str()),
                key: Arc::from(row.key.as_str()),
                pos,
            },
            role: Arc::from(row.role.as_str()),
            requested_at: parse_time(&row.requested_at)?,
            deadline: parse_time(&row.deadline)?,
            approve: cont.block,
            otherwise,
            cont,
            id,
        }))
    }

    async fn apply(&self, tx: &mut D::Conn, change: &Change) -> Result<(), sqlx::Error> {
        if !matches!(
            change,
            Change::WindowCount { .. }
                | Change::ClearWindow { .. }
                | Change::Remember { .. }
                | Change::NextTick { .. }
                | Change::Decision(_)
        ) {
            *self.due_hint() = None;
        }
        match change {
            Change::PutTimer(t) => self.put_timer(tx, t).await?,
            Change::RemoveTimer(k) => self.remove_timer(tx, k).await?,
            Change::CancelTimers(c) => self.cancel_timers(tx, c).await?,
            Change::PutApproval(a) => self.put_approval(tx, a).await?,
            Change::EndApproval(end) => self.end_approval(tx, end).await?,
            Change::Decision(d) => {
                let tenant = d.approval.split('/').next().unwrap_or("");
                Query::new(
                    "INSERT INTO steward_decisions (tenant, approval, approved, decided_by, decided_at) \
                     VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                )
                .bind(tenant)
                .bind(&d.approval)
                .bind(d.approved)
                .bind(&d.by)
                .bind(time_text(&d.at))
                .execute(&mut *tx)
                .await?;
            }
            Change::WindowCount {
                tenant,
                key,
                at,
                window_ms,
            } => {
                self.count_in_window(tx, tenant, key, *at, *window_ms)
                    .await?
            }
            Change::ClearWindow { tenant, key } => {
                Query::new("DELETE FROM steward_throttles WHERE tenant = ? AND key = ?")
                    .bind(&**tenant)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
            Change::Remember {
                tenant,
                key,
                fields,
            } => self.remember(tx, tenant, key, fields).await?,
            Change::NextTick { tenant, rule, at } => {
                Query::new(
                    "INSERT INTO steward_ticks (tenant, rule, next) VALUES (?, ?, ?) \
                     ON CONFLICT (tenant, rule) DO UPDATE SET next = excluded.next",
                )
                .bind(&**tenant)
                .bind(&**rule)
                .bind(time_text(at))
                .execute(&mut *tx)
                .await?;
            }
        }
        Ok(())
    }

    /// A timer, in place of one with its key, with what cancels it.
    async fn put_timer(
        &self,
        tx: &mut D::Conn,
        t: &steward::engine::store::Timer,
    ) -> Result<(), sqlx::Error> {
        // What cancelled the timer it replaces goes; the timer is
        // replaced in place (one statement, its number taken in it
        // where the database can).
        Query::new(
            "DELETE FROM steward_timer_cancels WHERE tenant = ? AND rule = ? AND key = ? AND pos = ?",
        )
        .bind(&*t.key.tenant)
        .bind(&*t.key.rule)
        .bind(&*t.key.key)
        .bind(i64::from(t.key.pos))
        .execute(&mut *tx)
        .await?;
        let seq: Option<i64> = match D::DIALECT.seq.fetch {
            Some(sql) => Some(Query::new(sql).scalar(&mut *tx).await?),
            None => None,
        };
        let sql = format!(
            "INSERT INTO steward_timers (tenant, rule, key, pos, due, seq, continuation) \
             VALUES (?, ?, ?, ?, ?, {}, ?) ON CONFLICT (tenant, rule, key, pos) DO UPDATE SET \
             due = excluded.due, seq = excluded.seq, continuation = excluded.continuation",
            D::DIALECT.seq.inline
        );
        let insert = Query::new(sql)
            .bind(&*t.key.tenant)
            .bind(&*t.key.rule)
            .bind(&*t.key.key)
            .bind(i64::from(t.key.pos))
            .bind(time_text(&t.due));
        let insert = match seq {
            Some(seq) => insert.bind(seq),
            None => insert,
        };
        insert
            .bind(continuation_json(&t.cont.rules, &t.cont)?)
            .execute(&mut *tx)
            .await?;
        for c in &t.cancel {
            Query::new(
                "INSERT INTO steward_timer_cancels \
                 (tenant, event_type, field, value, rule, key, pos) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(&*c.tenant)
            .bind(&*c.event_type)
            .bind(&*c.field)
            .bind(&c.value)
            .bind(&*t.key.rule)
            .bind(&*t.key.key)
            .bind(i64::from(t.key.pos))
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// Removes the timers an event cancels (`unless E on k`).
    async fn cancel_timers(
        &self,
        tx: &mut D::Conn,
        c: &steward::engine::store::CancelKey,
    ) -> Result<(), sqlx::Error> {
        let rows: Vec<(String, String, i64)> = Query::new(
            "SELECT rule, key, pos FROM steward_timer_cancels \
             WHERE tenant = ? AND event_type = ? AND field = ? AND value = ?",
        )
        .bind(&*c.tenant)
        .bind(&*c.event_type)
        .bind(&*c.field)
        .bind(&c.value)
        .fetch_all(&mut *tx)
        .await?;
        for (rule, key, pos) in rows {
            let key = TimerKey {
                tenant: c.tenant.clone(),
                rule: Arc::from(rule.as_str()),
                key: Arc::from(key.as_str()),
                pos: u32::try_from(pos).unwrap_or(u32::MAX),
            };
            self.remove_timer(tx, &key).await?;
        }
        Ok(())
    }

    /// An approval asked, in place of one with its id or its key.
    async fn put_approval(
        &self,
        tx: &mut D::Conn,
        a: &steward::engine::store::Approval,
    ) -> Result<(), sqlx::Error> {
        Query::new(
            "DELETE FROM steward_approvals \
             WHERE tenant = ? AND (id = ? OR (rule = ? AND key = ? AND pos = ?))",
        )
        .bind(&*a.key.tenant)
        .bind(&a.id)
        .bind(&*a.key.rule)
        .bind(&*a.key.key)
        .bind(i64::from(a.key.pos))
        .execute(&mut *tx)
        .await?;
        let seq: i64 = match D::DIALECT.seq.fetch {
            Some(sql) => Query::new(sql).scalar(&mut *tx).await?,
            None => {
                Query::new(format!("SELECT {}", D::DIALECT.seq.inline))
                    .scalar(&mut *tx)
                    .await?
            }
        };
        Query::new(
            "INSERT INTO steward_approvals \
             (tenant, id, rule, key, pos, role, requested_at, deadline, seq, continuation) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&*a.key.tenant)
        .bind(&a.id)
        .bind(&*a.key.rule)
        .bind(&*a.key.key)
        .bind(i64::from(a.key.pos))
        .bind(&*a.role)
        .bind(time_text(&a.requested_at))
        .bind(time_text(&a.deadline))
        .bind(seq)
        .bind(continuation_json(&a.cont.rules, &a.cont)?)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// An approval ended: kept with how and why among the ended, gone from the pending.
    async fn end_approval(
        &self,
        tx: &mut D::Conn,
        end: &steward::engine::store::ApprovalEnd,
    ) -> Result<(), sqlx::Error> {
        // An approval's id starts with its tenant.
        let tenant = end.id.split('/').next().unwrap_or_default();
        Query::new(
            "INSERT INTO steward_approvals_ended \
             (tenant, id, rule, key, role, requested_at, deadline, continuation, status, reason, ended_at) \
             SELECT tenant, id, rule, key, role, requested_at, deadline, continuation, ?, ?, ? \
             FROM steward_approvals WHERE tenant = ? AND id = ? ON CONFLICT DO NOTHING",
        )
        .bind(end.status)
        .bind(&end.reason)
        .bind(time_text(&end.at))
        .bind(tenant)
        .bind(&end.id)
        .execute(&mut *tx)
        .await?;
        Query::new("DELETE FROM steward_approvals WHERE tenant = ? AND id = ?")
            .bind(tenant)
            .bind(&end.id)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// One more mark in a throttle or count window (those before its start dropped).
    async fn count_in_window(
        &self,
        tx: &mut D::Conn,
        tenant: &str,
        key: &str,
        at: DateTime<Utc>,
        window_ms: i64,
    ) -> Result<(), sqlx::Error> {
        let start = time_text(&window_start(at, window_ms));
        // Retention deletes the mark once its window has
        // passed, measured from when it was written (not from
        // `at`, the engine's time: a backfill of old events
        // still counts them). Marks of one instant are numbered.
        let expires = steward::engine::value::add_ms(Utc::now(), window_ms)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let at = time_text(&at);
        const MARK: &str = "INSERT INTO steward_throttles (tenant, key, at, n, expires) \
             SELECT ?, ?, ?, COUNT(*), ? FROM steward_throttles WHERE tenant = ? AND key = ? AND at = ?";
        const BEFORE: &str =
            "DELETE FROM steward_throttles WHERE tenant = ? AND key = ? AND at <= ?";
        // The marks before the window go first: in the same
        // statement where the database allows it (the new mark's
        // instant is inside the window, so the count of its
        // instant is the same either way).
        let sql = if D::DIALECT.modifying_ctes {
            format!("WITH gone AS ({BEFORE}) {MARK}")
        } else {
            Query::new(BEFORE)
                .bind(tenant)
                .bind(key)
                .bind(&start)
                .execute(&mut *tx)
                .await?;
            MARK.to_string()
        };
        let sql = &sql;
        let mark = Query::new(sql);
        let mark = if D::DIALECT.modifying_ctes {
            mark.bind(tenant).bind(key).bind(&start)
        } else {
            mark
        };
        mark.bind(tenant)
            .bind(key)
            .bind(&at)
            .bind(time_text(&expires))
            .bind(tenant)
            .bind(key)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// The fields a rule remembers for a key (`previous`, `changed`).
    async fn remember(
        &self,
        tx: &mut D::Conn,
        tenant: &str,
        key: &str,
        fields: &[(Arc<str>, StoredValue)],
    ) -> Result<(), sqlx::Error> {
        let now = time_text(&Utc::now());
        for (field, value) in fields {
            let value =
                serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            Query::new(
                "INSERT INTO steward_memory (tenant, key, field, value, updated_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, key, field) \
                 DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(key)
            .bind(&**field)
            .bind(value)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    async fn remove_timer(&self, tx: &mut D::Conn, k: &TimerKey) -> Result<(), sqlx::Error> {
        for table in ["steward_timers", "steward_timer_cancels"] {
            Query::new(format!(
                "DELETE FROM {table} WHERE tenant = ? AND rule = ? AND key = ? AND pos = ?"
            ))
            .bind(&*k.tenant)
            .bind(&*k.rule)
            .bind(&*k.key)
            .bind(i64::from(k.pos))
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    async fn commit_unit(
        &self,
        changes: &Changes,
        actions: Vec<ActionRow>,
    ) -> Result<(), sqlx::Error> {
        let mut batch = self.tx.lock().await;
        if let Some(tx) = batch.as_mut() {
            // In a batch, the rows every unit writes (its event
            // handled, its actions) are written together at the
            // batch's commit; its changes to suspended work now.
            for change in &changes.changes {
                self.apply(tx, change).await?;
            }
            self.deferred().defer(changes, actions);
            return Ok(());
        }
        drop(batch);
        let mut tx = self.pool.begin_with(D::BEGIN).await?;
        self.write_unit(&mut tx, changes, actions).await?;
        tx.commit().await
    }

    /// Writes a unit's changes and actions on `tx` (the batch's
    /// transaction, or the unit's own).
    async fn write_unit(
        &self,
        tx: &mut D::Conn,
        changes: &Changes,
        actions: Vec<ActionRow>,
    ) -> Result<(), sqlx::Error> {
        if let Some((tenant, id)) = &changes.handled {
            Query::new(
                "INSERT INTO steward_handled (tenant, id, handled_at) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&**tenant)
            .bind(&**id)
            .bind(time_text(&Utc::now()))
            .execute(&mut *tx)
            .await?;
            Query::new(format!(
                "UPDATE steward_events SET status = 'processed', processed_at = {} \
                 WHERE tenant = ? AND id = ? AND status = 'pending'",
                D::DIALECT.now
            ))
            .bind(&**tenant)
            .bind(&**id)
            .execute(&mut *tx)
            .await?;
        }
        for change in &changes.changes {
            self.apply(tx, change).await?;
        }
        for a in actions {
            self.record_work(tx, &a).await?;
            let (status, finished) = initial_status(&a, &time_text(&Utc::now()));
            Query::new(
                "INSERT INTO steward_actions \
                 (tenant, key, rule, event, action, args, performed_at, url, headers, status, finished_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(a.tenant)
            .bind(a.key)
            .bind(a.rule)
            .bind(a.event)
            .bind(a.action)
            .bind(a.args)
            .bind(a.at)
            .bind(a.url)
            .bind(a.headers)
            .bind(status)
            .bind(finished)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// The first due time (locked where workers share the work).
    fn next_due_now(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            // The first of each not claimed by another worker's batch
            // (see `due`), locked for this one.
            let lock = D::DIALECT.claim.1;
            let timer: Option<String> = Query::new(format!(
                "SELECT due FROM steward_timers ORDER BY due, seq LIMIT 1 {lock}"
            ))
            .scalar_optional(c.get())
            .await
            .map_err(unavailable)?;
            let deadline: Option<String> = Query::new(format!(
                "SELECT deadline FROM steward_approvals ORDER BY deadline, seq LIMIT 1 {lock}"
            ))
            .scalar_optional(c.get())
            .await
            .map_err(unavailable)?;
            let first = match (timer, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            first.map(|t| parse_time(&t)).transpose()
        })
    }

    fn due_now(&self, up_to: DateTime<Utc>) -> Result<Option<Due>, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let up_to = time_text(&up_to);
            // Claimed: locked until the batch ends, skipped by the
            // other workers, so a timer fires once.
            let timer: Option<TimerRow> = Query::new(format!(
                "SELECT tenant, rule, key, pos, due, seq, continuation FROM steward_timers \
                 WHERE due <= ? ORDER BY due, seq LIMIT 1 {}",
                D::DIALECT.claim.1
            ))
            .bind(&up_to)
            .fetch_optional(c.get())
            .await
            .map_err(unavailable)?;
            let approval: Option<PendingApprovalRow> = Query::new(format!(
                "SELECT tenant, id, rule, key, pos, role, requested_at, deadline, seq, continuation \
                 FROM steward_approvals WHERE deadline <= ? ORDER BY deadline, seq LIMIT 1 {}",
                D::DIALECT.claim.1
            ))
            .bind(&up_to)
            .fetch_optional(c.get())
            .await
            .map_err(unavailable)?;
            let take_timer = match (&timer, &approval) {
                (Some(t), Some(a)) => (&t.due, t.seq) <= (&a.deadline, a.seq),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return Ok(None),
            };
            if take_timer {
                match timer {
                    Some(row) => self.load_timer(c.get(), row).await.map(Some),
                    None => Ok(None),
                }
            } else {
                let Some(row) = approval else {
                    return Ok(None);
                };
                Ok(Some(match self.load_approval(c.get(), row).await? {
                    Ok(a) => Due::Deadline(a),
                    Err((id, reason)) => Due::Cancelled {
                        timer: None,
                        approval: Some(id),
                        reason,
                    },
                }))
            }
        })
    }

    fn due_hint(&self) -> std::sync::MutexGuard<'_, Option<Option<DateTime<Utc>>>> {
        self.due_hint.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn in_batch(&self) -> bool {
        self.tx.try_lock().map_or(true, |slot| slot.is_some())
    }

    /// One attempt at [`Durable::deploy`], in one transaction.
    fn deferred(&self) -> std::sync::MutexGuard<'_, Deferred> {
        self.deferred.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes what the batch's units deferred, a few statements for
    /// the whole batch.
    async fn flush(&self, tx: &mut D::Conn) -> Result<(), sqlx::Error> {
        let Deferred {
            handled, actions, ..
        } = std::mem::take(&mut *self.deferred());
        let now = time_text(&Utc::now());
        // Each statement takes its rows as one JSON array bound as
        // one parameter, so its text is the same for any number of
        // rows (prepared once per connection, planned once).
        if !handled.is_empty() {
            let rows: Vec<[&str; 2]> = handled
                .iter()
                .map(|(tenant, id)| [tenant.as_str(), id.as_str()])
                .collect();
            let rows =
                serde_json::to_string(&rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            Query::new(format!(
                "INSERT INTO steward_handled (tenant, id, handled_at) {} ON CONFLICT DO NOTHING",
                D::DIALECT.rows.select(&["?"], 2)
            ))
            .bind(&now)
            .bind(&rows)
            .execute(&mut *tx)
            .await?;
            Query::new(format!(
                "UPDATE steward_events SET status = 'processed', processed_at = {} \
                 WHERE status = 'pending' AND (tenant, id) IN ({})",
                D::DIALECT.now,
                D::DIALECT.rows.select(&[], 2)
            ))
            .bind(&rows)
            .execute(&mut *tx)
            .await?;
        }
        for a in &actions {
            self.record_work(tx, a).await?;
        }
        if !actions.is_empty() {
            let rows: Vec<[Option<&str>; 11]> = actions
                .iter()
                .map(|a| {
                    let (status, finished) = initial_status(a, &now);
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
            let rows =
                serde_json::to_string(&rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            Query::new(format!(
                "INSERT INTO steward_actions \
                 (tenant, key, rule, event, action, args, performed_at, url, headers, status, finished_at) \
                 {} ON CONFLICT DO NOTHING",
                D::DIALECT.rows.select(&[], 11)
            ))
            .bind(&rows)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// Work for people: a `notify` is a notification row, a
    /// `create_task` a task row, in the unit's transaction.
    async fn record_work(&self, tx: &mut D::Conn, a: &ActionRow) -> Result<(), sqlx::Error> {
        let action = a.action.as_str();
        if let Some(id) = &a.emitted {
            // An event a rule emitted: handled in this batch, kept
            // with the events (its key is not known here).
            let args: serde_json::Value =
                serde_json::from_str(&a.args).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            Query::new(format!(
                "INSERT INTO steward_events (tenant, id, type, occurred_at, key, payload, status, processed_at) \
                 VALUES (?, ?, ?, {}, NULL, {}, 'processed', {}) ON CONFLICT DO NOTHING",
                D::DIALECT.time_in, D::DIALECT.payload_in, D::DIALECT.now
            ))
            .bind(&a.tenant)
            .bind(id)
            .bind(args.get("event_type").and_then(|t| t.as_str()).unwrap_or_default())
            .bind(&a.at)
            .bind(args.get("payload").unwrap_or(&serde_json::Value::Null).to_string())
            .execute(&mut *tx)
            .await?;
            return Ok(());
        }
        if action != "notify" && action != "create_task" {
            return Ok(());
        }
        let args: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&a.args).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let text = |name: &str| args.get(name).and_then(|v| v.as_str()).map(str::to_string);
        // A role or a person; a row with neither (arguments written
        // by an older build) is for no one: kept under the role "".
        let (role, assignee) = match (text("role"), text("assignee")) {
            (None, None) => (Some(String::new()), None),
            whom => whom,
        };
        let sql = if action == "notify" {
            "INSERT INTO steward_notifications (tenant, key, rule, event, role, assignee, text, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        } else {
            "INSERT INTO steward_tasks (tenant, key, rule, event, role, assignee, title, due, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        };
        let query = Query::new(sql)
            .bind(&a.tenant)
            .bind(&a.key)
            .bind(&a.rule)
            .bind(&a.event)
            .bind(role)
            .bind(assignee);
        let query = if action == "notify" {
            query.bind(text("text").unwrap_or_default())
        } else {
            query
                .bind(text("title").unwrap_or_default())
                .bind(text("due"))
        };
        let query = query.bind(&a.at);
        query.execute(&mut *tx).await.map(drop)
    }

    /// The connection queries run on: the open batch's transaction,
    /// else one of the pool's.
    async fn conn(&self) -> Result<Conn<'_, D::Db>, sqlx::Error> {
        let slot = self.tx.lock().await;
        match tokio::sync::MutexGuard::try_map(slot, Option::as_mut) {
            Ok(tx) => Ok(Conn::Batch(tx)),
            Err(slot) => {
                drop(slot);
                Ok(Conn::Pool(self.pool.acquire().await?))
            }
        }
    }

    /// Inserts one envelope (a JSON line) as a pending event; false if
    /// the tenant already has an event of that id (it is kept as it was).
    fn push_now(&self, line: &str) -> Result<bool, PushError> {
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
    fn pending_events_now(&self, limit: i64, claim: bool) -> Result<Vec<PendingEvent>, StoreError> {
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
    fn waiting_tenants(&self) -> Result<Vec<String>, StoreError> {
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
    fn pending_of(
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
    fn reject_now(&self, tenant: &str, id: &str, reason: &str) -> Result<(), StoreError> {
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
    fn event_counts_now(&self) -> Result<[i64; 3], StoreError> {
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

    /// The actions of the outbox, oldest first: (key, action, args).
    fn outbox_now(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            Query::new("SELECT key, action, args FROM steward_actions ORDER BY performed_at, key")
                .fetch_all(c.get())
                .await
                .map_err(unavailable)
        })
    }
}

impl<D: Driver> Durable for SqlStore<D> {
    fn push(&self, line: &str) -> Result<bool, PushError> {
        self.push_now(line)
    }
    fn pending_events(&self, limit: i64) -> Result<Vec<PendingEvent>, StoreError> {
        self.pending_events_now(limit, false)
    }
    fn claim_events(&self, limit: i64) -> Result<Vec<PendingEvent>, StoreError> {
        self.pending_events_now(limit, true)
    }
    fn shares_work(&self) -> bool {
        !D::DIALECT.claim.1.is_empty()
    }
    fn begin_batch(&self) -> Result<(), StoreError> {
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
    fn commit_batch(&self) -> Result<(), StoreError> {
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
    fn rollback_batch(&self) -> Result<(), StoreError> {
        *self.due_hint() = None;
        *self.deferred() = Deferred::default();
        self.block(async {
            match self.tx.lock().await.take() {
                Some(tx) => tx.rollback().await.map_err(unavailable),
                None => Ok(()),
            }
        })
    }
    fn use_rules(&mut self, rules: Arc<Ruleset>) {
        self.versions().insert(rules);
    }
    fn people_work(&self) -> Result<[i64; 2], StoreError> {
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
    fn prune(&self, before: DateTime<Utc>, limit: i64) -> Result<u64, StoreError> {
        let before_text = time_text(&before);
        let statements = [
            format!(
                "DELETE FROM steward_events WHERE (tenant, id) IN (SELECT tenant, id FROM steward_events \
                 WHERE status <> 'pending' AND processed_at < {} LIMIT ?)",
                D::DIALECT.time_in
            ),
            "DELETE FROM steward_handled WHERE (tenant, id) IN (SELECT tenant, id FROM steward_handled \
             WHERE handled_at < ? LIMIT ?)".to_string(),
            "DELETE FROM steward_actions WHERE (tenant, key) IN (SELECT tenant, key FROM steward_actions \
             WHERE status IN ('delivered', 'dead') AND finished_at < ? LIMIT ?)".to_string(),
            "DELETE FROM steward_traces WHERE (tenant, event) IN (SELECT tenant, event FROM steward_traces \
             WHERE created_at < ? LIMIT ?)".to_string(),
            "DELETE FROM steward_approvals_ended WHERE (tenant, id) IN (SELECT tenant, id \
             FROM steward_approvals_ended WHERE ended_at < ? LIMIT ?)".to_string(),
            // Window marks whose window has passed (keys not seen since).
            "DELETE FROM steward_throttles WHERE (tenant, key, at, n) IN (SELECT tenant, key, at, n \
             FROM steward_throttles WHERE expires < ? LIMIT ?)".to_string(),
        ];
        self.block(async {
            let mut gone = 0;
            for sql in &statements {
                let done = Query::new(sql.as_str())
                    .bind(&before_text)
                    .bind(limit)
                    .execute(&mut Pooled(&self.pool))
                    .await
                    .map_err(unavailable)?;
                gone += done;
            }
            Ok(gone)
        })
    }
    fn put_traces(&self, traces: &[StoredTrace]) -> Result<(), StoreError> {
        if traces.is_empty() {
            return Ok(());
        }
        let now = time_text(&Utc::now());
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            for chunk in traces.chunks(200) {
                let rows = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
                let mut q = Query::new(format!(
                    "INSERT INTO steward_traces (tenant, event, trace, errors, created_at) VALUES {rows} \
                     ON CONFLICT (tenant, event) DO UPDATE SET trace = excluded.trace, \
                     errors = excluded.errors, created_at = excluded.created_at"
                ));
                for t in chunk {
                    q = q
                        .bind(&t.tenant)
                        .bind(&t.event)
                        .bind(&t.trace)
                        .bind(i32::try_from(t.errors).unwrap_or(i32::MAX))
                        .bind(&now);
                }
                q.execute(c.get()).await.map_err(unavailable)?;
            }
            Ok(())
        })
    }
    fn trace(&self, tenant: &str, event: &str) -> Result<Option<String>, StoreError> {
        self.block(async {
            Query::new("SELECT trace FROM steward_traces WHERE tenant = ? AND event = ?")
                .bind(tenant)
                .bind(event)
                .scalar_optional(&mut Pooled(&self.pool))
                .await
                .map_err(unavailable)
        })
    }
    fn listen(&mut self) -> Result<(), StoreError> {
        self.block(self.driver.listen(&self.pool))
    }
    fn wait_for_work(&self, timeout: std::time::Duration) -> Result<bool, StoreError> {
        self.block(self.driver.wait(timeout))
    }
    fn tenants(&self) -> Result<Vec<String>, StoreError> {
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
    fn reject(&self, tenant: &str, id: &str, reason: &str) -> Result<(), StoreError> {
        self.reject_now(tenant, id, reason)
    }
    fn event_counts(&self) -> Result<[i64; 3], StoreError> {
        self.event_counts_now()
    }
    fn outbox(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.outbox_now()
    }
    fn lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.block(async {
            let done = Query::new(
                "INSERT INTO steward_leases (name, holder, expires_at) VALUES (?, ?, ?) \
                 ON CONFLICT (name) DO UPDATE \
                 SET holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE steward_leases.holder = excluded.holder OR steward_leases.expires_at < ?",
            )
            .bind(name)
            .bind(holder)
            .bind(time_text(&until))
            .bind(time_text(&now))
            .execute(&mut Pooled(&self.pool))
            .await
            .map_err(unavailable)?;
            Ok(done == 1)
        })
    }
    fn lease_holder(&self, name: &str) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        self.block(async {
            let row: Option<(String, String)> =
                Query::new("SELECT holder, expires_at FROM steward_leases WHERE name = ?")
                    .bind(name)
                    .fetch_optional(&mut Pooled(&self.pool))
                    .await
                    .map_err(unavailable)?;
            match row {
                Some((holder, expires_at)) => Ok(Some((holder, parse_time(&expires_at)?))),
                None => Ok(None),
            }
        })
    }
    fn claim_deliveries(
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
    fn attempted(&self, d: &Delivery, outcome: &Attempt) -> Result<(), StoreError> {
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
    fn waiting_deliveries(&self, now: DateTime<Utc>) -> Result<i64, StoreError> {
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
    fn undelivered(&self, limit: i64) -> Result<Vec<Undelivered>, StoreError> {
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
    fn delivery_counts(&self) -> Result<[i64; 4], StoreError> {
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
    fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.block(async {
            Query::new("DELETE FROM steward_leases WHERE name = ? AND holder = ?")
                .bind(name)
                .bind(holder)
                .execute(&mut Pooled(&self.pool))
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }
}

impl<D: Driver> Store for SqlStore<D> {
    fn is_handled(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
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

    fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        if let Some(hint) = *self.due_hint() {
            return Ok(hint);
        }
        let found = self.next_due_now()?;
        if self.in_batch() {
            *self.due_hint() = Some(found);
        }
        Ok(found)
    }

    fn due(&self, up_to: DateTime<Utc>) -> Result<Option<Due>, StoreError> {
        *self.due_hint() = None;
        self.due_now(up_to)
    }

    fn waiting_on(&self, key: &CancelKey) -> Result<usize, StoreError> {
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

    fn timer(&self, key: &TimerKey) -> Result<Option<Timer>, StoreError> {
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

    fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let row = Query::new("SELECT * FROM steward_approvals WHERE id = ?")
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

    fn approval_for(&self, key: &TimerKey) -> Result<Option<Approval>, StoreError> {
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

    fn pending_approvals(&self) -> Result<Vec<Approval>, StoreError> {
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

    fn decisions(&self) -> Result<Vec<Decision>, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let rows: Vec<(String, bool, String, String)> = Query::new(
                "SELECT approval, approved, decided_by, decided_at FROM steward_decisions \
                 ORDER BY decided_at, approval",
            )
            .fetch_all(c.get())
            .await
            .map_err(unavailable)?;
            rows.into_iter()
                .map(|(approval, approved, by, at)| {
                    Ok(Decision {
                        approval,
                        approved,
                        by,
                        at: parse_time(&at)?,
                    })
                })
                .collect()
        })
    }

    fn window_count(
        &self,
        tenant: &str,
        key: &str,
        window_ms: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let start = window_start(now, window_ms);
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            // Workers counting the same window wait for each other.
            if let Some(lock) = D::DIALECT.lock_key {
                Query::new(lock)
                    .bind(key)
                    .execute(c.get())
                    .await
                    .map_err(unavailable)?;
            }
            let n: i64 = Query::new(
                "SELECT COUNT(*) FROM steward_throttles WHERE tenant = ? AND key = ? AND at > ?",
            )
            .bind(tenant)
            .bind(key)
            .bind(time_text(&start))
            .scalar(c.get())
            .await
            .map_err(unavailable)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn remembered(
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

    fn next_tick(&self, tenant: &str, rule: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
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

    fn pending_timers(&self) -> Result<usize, StoreError> {
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            let n: i64 = Query::new("SELECT COUNT(*) FROM steward_timers")
                .scalar(c.get())
                .await
                .map_err(unavailable)?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    fn commit(
        &mut self,
        changes: &mut Changes,
        actions: &mut dyn Iterator<Item = Performed<'_>>,
    ) -> Result<(), StoreError> {
        let actions: Vec<_> = actions
            .map(|a| {
                let owned = a.to_action();
                Ok(ActionRow {
                    tenant: a.tenant.to_string(),
                    key: a.key.token(),
                    rule: a.rule.to_string(),
                    event: a.event.to_string(),
                    action: a.action.to_string(),
                    args: serde_json::Value::Object(owned.args).to_string(),
                    at: time_text(&a.at),
                    url: a.webhook.map(|w| w.url.clone()),
                    headers: match a.webhook {
                        Some(w) if !w.headers.is_empty() => Some(
                            serde_json::to_string(&WebhookHeaders {
                                secrets_of: a.secrets_of.to_string(),
                                headers: w.headers.clone(),
                            })
                            .map_err(|e| {
                                StoreError::Corrupt(format!("a webhook's headers: {e}"))
                            })?,
                        ),
                        _ => None,
                    },
                    // The id the engine gives the event (see
                    // `runtime.rs`, `emit`).
                    emitted: (&**a.action == "emit")
                        .then(|| format!("{}~{}~{}", a.key.event, a.rule, a.key.pos)),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let changes = &*changes;
        self.block(self.commit_unit(changes, actions))
            .map_err(unavailable)
    }
}

/// What a durable store does besides the engine's contract: events in
/// (pushed, waiting, rejected) and the outbox.
pub trait Durable: Store {
    /// Inserts one envelope (a JSON line) as a pending event; false if the
    /// tenant already has an event of that id (it is kept as it was).
    fn push(&self, line: &str) -> Result<bool, PushError>;
    /// Up to `limit` pending events, in the order they occurred, as envelope
    /// lines for the engine's decoder.
    fn pending_events(&self, limit: i64) -> Result<Vec<PendingEvent>, StoreError>;
    /// Claims up to `limit` pending events for the open batch, in the order
    /// they occurred, at most the first pending one of each `(tenant, key)`
    /// where workers share the work (PostgreSQL: locked with `FOR UPDATE
    /// SKIP LOCKED` until the batch ends, so no other worker takes them or
    /// a later event of their key).
    fn claim_events(&self, limit: i64) -> Result<Vec<PendingEvent>, StoreError>;
    /// Whether several workers can work on this database at once
    /// (PostgreSQL); else one works at a time, under the lease `worker`.
    fn shares_work(&self) -> bool;
    /// Opens a batch: until it is committed or rolled back, every read and
    /// every unit's commit runs in one transaction, so a batch's events,
    /// their results and their statuses are written together or not at all.
    fn begin_batch(&self) -> Result<(), StoreError>;
    fn commit_batch(&self) -> Result<(), StoreError>;
    fn rollback_batch(&self) -> Result<(), StoreError>;
    /// Makes `rules` known, so work suspended under it resumes without
    /// being built again from the store.
    fn use_rules(&mut self, rules: Arc<Ruleset>);
    /// How many notifications and tasks there are.
    fn people_work(&self) -> Result<[i64; 2], StoreError>;
    /// Forgets what finished before `before`: handled events (and their
    /// ids, so an id is remembered for as long as that), delivered and
    /// dead actions; up to `limit` rows of each, so a round stays short.
    /// Says how many rows went.
    fn prune(&self, before: DateTime<Utc>, limit: i64) -> Result<u64, StoreError>;
    /// Keeps explain traces, on the open batch's transaction if there is one.
    fn put_traces(&self, traces: &[StoredTrace]) -> Result<(), StoreError>;
    /// The stored trace of an event, as JSON.
    fn trace(&self, tenant: &str, event: &str) -> Result<Option<String>, StoreError>;
    /// Makes [`Durable::wait_for_work`] wake when events are inserted
    /// (PostgreSQL: `LISTEN steward_events`); without it, it only waits.
    fn listen(&mut self) -> Result<(), StoreError>;
    /// Waits up to `timeout`, less if events are inserted meanwhile (when
    /// listening): true if woken so.
    fn wait_for_work(&self, timeout: std::time::Duration) -> Result<bool, StoreError>;
    /// The tenants with events or schedules.
    fn tenants(&self) -> Result<Vec<String>, StoreError>;
    /// Marks an event rejected, with the reason.
    fn reject(&self, tenant: &str, id: &str, reason: &str) -> Result<(), StoreError>;
    /// How many events are pending, processed and rejected.
    fn event_counts(&self) -> Result<[i64; 3], StoreError>;
    /// The actions of the outbox, oldest first: (key, action, arguments).
    fn outbox(&self) -> Result<Vec<(String, String, String)>, StoreError>;
    /// Takes or renews the lease `name` for `holder` until `until`: true if
    /// `holder` has it now; false if another holder's lease has not expired
    /// by `now`.
    fn lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Who holds the lease `name`, and until when.
    fn lease_holder(&self, name: &str) -> Result<Option<(String, DateTime<Utc>)>, StoreError>;
    /// Gives the lease up (if `holder` has it).
    fn release(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// Claims up to `limit` actions of the outbox waiting to be delivered
    /// by `now` (pending, and not waiting for a retry), oldest first: each
    /// is held until `hold_until`, when it is due again unless its attempt
    /// was recorded (the worker delivering it died).
    fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Records an attempt: `Delivered`, or failed with the error and either
    /// when to try again or that no attempt is left (`dead`).
    fn attempted(&self, delivery: &Delivery, outcome: &Attempt) -> Result<(), StoreError>;
    /// How many actions wait to be delivered by `now`, or are being
    /// delivered (claimed).
    fn waiting_deliveries(&self, now: DateTime<Utc>) -> Result<i64, StoreError>;
    /// How many actions are in each state: pending, delivered, failed, dead.
    fn delivery_counts(&self) -> Result<[i64; 4], StoreError>;
    /// Up to `limit` actions not delivered (pending, failed and waiting for
    /// their next attempt, or dead), oldest first.
    fn undelivered(&self, limit: i64) -> Result<Vec<Undelivered>, StoreError>;
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
struct Envelope {
    id: String,
    tenant: String,
    event_type: String,
    occurred_at: DateTime<Utc>,
    key: Option<String>,
    payload: String,
    previous: Option<String>,
}

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

/// Where the engine keeps its state: `--database URL`, else the
/// environment's `DATABASE_URL`, else the SQLite file `./steward.db`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Sqlite(String),
    Postgres(String),
}

impl Target {
    /// `postgres://...` or `postgresql://...` for PostgreSQL; `sqlite://PATH`
    /// or a plain path for SQLite.
    pub fn parse(url: &str) -> Target {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Target::Postgres(url.to_string())
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            Target::Sqlite(path.to_string())
        }
    }

    /// The target `--database` names, else `DATABASE_URL`, else `./steward.db`.
    pub fn choose(database: Option<&str>) -> Target {
        match database {
            Some(url) => Target::parse(url),
            None => match std::env::var("DATABASE_URL") {
                Ok(url) if !url.is_empty() => Target::parse(&url),
                _ => Target::Sqlite("steward.db".to_string()),
            },
        }
    }

    /// Runs the migrations (creating the SQLite file if needed).
    pub fn migrate(&self) -> Result<(), OpenError> {
        let rt = runtime()?;
        match self {
            Target::Sqlite(path) => rt.block_on(driver::Sqlite::connect(path)).map(drop),
            Target::Postgres(url) => rt.block_on(driver::Postgres::connect(url)).map(drop),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Sqlite(path) => write!(f, "the SQLite file {path}"),
            // Credentials stay out of messages.
            Target::Postgres(url) => {
                let host = url.rsplit('@').next().unwrap_or(url);
                let host = host.split("://").last().unwrap_or(host);
                write!(f, "PostgreSQL at {host}")
            }
        }
    }
}

/// An action as its row of `steward_actions` is written.
struct ActionRow {
    tenant: String,
    key: String,
    rule: String,
    event: String,
    action: String,
    /// Its arguments, as a JSON object.
    args: String,
    at: String,
    /// Where a webhook action is delivered.
    url: Option<String>,
    /// Its headers (JSON), when it has some.
    headers: Option<String>,
    /// For `emit`: the id of the event emitted.
    emitted: Option<String>,
}

/// Only mail (`send`, a notification to an address, and the mail of an
/// approval asked) and webhooks leave Steward: the other actions are
/// records, done when written.
fn initial_status(a: &ActionRow, now: &str) -> (&'static str, Option<String>) {
    // An approval asked is delivered as mail to the role's holders, with
    // links (none held: delivered at once, with nothing sent).
    let mailed = || {
        serde_json::from_str(&a.args)
            .is_ok_and(|args| steward::engine::action::mailed_to(&a.action, &args).is_some())
    };
    if a.action == "send" || a.action == "approval_requested" || a.url.is_some() || mailed() {
        ("pending", None)
    } else {
        ("delivered", Some(now.to_string()))
    }
}

/// What a batch's units wrote that is written at the batch's commit: the
/// events handled and the actions, a few statements for the batch.
#[derive(Default)]
struct Deferred {
    handled: Vec<(String, String)>,
    seen: std::collections::HashSet<(String, String)>,
    actions: Vec<ActionRow>,
    /// The events the batch claimed, and whether each was handled then.
    claimed: std::collections::HashMap<(String, String), bool>,
}

impl Deferred {
    fn defer(&mut self, changes: &Changes, actions: Vec<ActionRow>) {
        if let Some((tenant, id)) = &changes.handled {
            let key = (tenant.to_string(), id.to_string());
            if self.seen.insert(key.clone()) {
                self.handled.push(key);
            }
        }
        self.actions.extend(actions);
    }

    fn claimed_as(&self, tenant: &str, id: &str) -> Option<bool> {
        if self.claimed.is_empty() {
            return None;
        }
        self.claimed
            .get(&(tenant.to_string(), id.to_string()))
            .copied()
    }

    fn has(&self, tenant: &str, id: &str) -> bool {
        !self.seen.is_empty() && self.seen.contains(&(tenant.to_string(), id.to_string()))
    }
}

/// A connection to run queries on: the open batch's transaction, or one
/// of the pool's.
enum Conn<'a, DB: sqlx::Database> {
    Batch(tokio::sync::MappedMutexGuard<'a, sqlx::Transaction<'static, DB>>),
    Pool(sqlx::pool::PoolConnection<DB>),
}

impl<DB: sqlx::Database> Conn<'_, DB> {
    fn get(&mut self) -> &mut DB::Connection {
        match self {
            Conn::Batch(tx) => tx,
            Conn::Pool(c) => c,
        }
    }
}

/// The engine's state in a database: SQLite (the embedded default: WAL
/// mode, one writer, every unit in a `BEGIN IMMEDIATE` transaction) or
/// PostgreSQL, by its [`Driver`].
pub struct SqlStore<D: Driver> {
    rt: tokio::runtime::Runtime,
    pool: sqlx::Pool<D::Db>,
    driver: D,
    tx: tokio::sync::Mutex<Option<sqlx::Transaction<'static, D::Db>>>,
    deferred: std::sync::Mutex<Deferred>,
    due_hint: std::sync::Mutex<Option<Option<DateTime<Utc>>>>,
    /// Where the next claim's round of tenants starts (fair share).
    next_tenant: std::sync::Mutex<String>,
    versions: std::sync::Mutex<Versions>,
}

/// The engine's state in a SQLite file.
pub type SqliteStore = SqlStore<driver::Sqlite>;
/// The engine's state in PostgreSQL.
pub type PgStore = SqlStore<driver::Postgres>;

fn runtime() -> Result<tokio::runtime::Runtime, OpenError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OpenError::Runtime(e.to_string()))
}

impl<D: Driver> SqlStore<D> {
    /// Opens the database at `target` (a SQLite file, created if needed; a
    /// PostgreSQL URL) and runs its migrations. `rules` is known from the
    /// start (see `use_rules`).
    pub fn open(target: &str, rules: Arc<Ruleset>) -> Result<SqlStore<D>, OpenError> {
        let rt = runtime()?;
        let pool = rt.block_on(D::connect(target))?;
        let mut versions = Versions::new();
        versions.insert(rules);
        Ok(SqlStore {
            rt,
            pool,
            driver: D::new(),
            tx: tokio::sync::Mutex::new(None),
            deferred: std::sync::Mutex::new(Deferred::default()),
            due_hint: std::sync::Mutex::new(None),
            next_tenant: std::sync::Mutex::new(String::new()),
            versions: std::sync::Mutex::new(versions),
        })
    }
}

impl<D: Driver> Drop for SqlStore<D> {
    /// What the driver holds (PostgreSQL's listener) gives its connection
    /// back on the store's runtime.
    fn drop(&mut self) {
        let _context = self.rt.enter();
        self.driver.close();
    }
}

/// The most tenants one claim shares a batch among (the next claim goes on
/// with the tenants after them).
const FAIR_TENANTS: i64 = 16;
