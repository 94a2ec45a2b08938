//! A unit of work committed: the engine's changes to suspended work (timers, approvals, windows,
//! what rules remember, ticks), the event handled, and the actions it performed, in one transaction
//! (or deferred to the batch's, see `batches`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use steward::engine::store::{window_start, Change, Changes, StoreError, TimerKey};
use steward::engine::stored::{self, StoredValue};
use steward::engine::{Performed, Ruleset};

use super::approval_tenant;
use super::*;
use crate::driver::{Driver, Query};
use crate::{time_text, unavailable, SqlStore};

/// A continuation as the store keeps it (an error, not an empty text,
/// when it cannot be written).
pub(crate) fn continuation_json(
    rules: &Ruleset,
    cont: &steward::engine::store::Continuation,
) -> Result<String, sqlx::Error> {
    let stored = stored::store(rules, cont);
    serde_json::to_string(&stored).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// An action as its row of `steward_actions` is written.
pub(crate) struct ActionRow {
    pub(crate) tenant: String,
    pub(crate) key: String,
    pub(crate) rule: String,
    pub(crate) event: String,
    pub(crate) action: String,
    /// Its arguments, as a JSON object.
    pub(crate) args: String,
    pub(crate) at: String,
    /// Where a webhook action is delivered.
    pub(crate) url: Option<String>,
    /// Its headers (JSON), when it has some.
    pub(crate) headers: Option<String>,
    /// For `emit`: the id of the event emitted.
    pub(crate) emitted: Option<String>,
}

/// Only mail (`send`, a notification to an address, and the mail of an
/// approval asked) and webhooks leave Steward: the other actions are
/// records, done when written.
pub(crate) fn initial_status(a: &ActionRow, now: &str) -> (&'static str, Option<String>) {
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

impl<D: Driver> SqlStore<D> {
    pub(crate) async fn apply(&self, tx: &mut D::Conn, change: &Change) -> Result<(), sqlx::Error> {
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
                let tenant = approval_tenant(&d.approval);
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
    pub(crate) async fn put_timer<'a>(
        &self,
        tx: &mut D::Conn,
        t: &'a steward::engine::store::Timer,
    ) -> Result<(), sqlx::Error> {
        // What cancelled the timer it replaces goes; the timer is
        // replaced in place, its number taken in the same statement where
        // the database can, and on PostgreSQL the old cancels deleted in it
        // too (a data-modifying `WITH`): one round trip a timer.
        const FORGET: &str =
            "DELETE FROM steward_timer_cancels WHERE tenant = ? AND rule = ? AND key = ? AND pos = ?";
        let forget = |q: Query<'a>| {
            q.bind(&*t.key.tenant)
                .bind(&*t.key.rule)
                .bind(&*t.key.key)
                .bind(i64::from(t.key.pos))
        };
        if !D::DIALECT.modifying_ctes {
            // Only on SQLite: PostgreSQL forgets in the upsert's statement.
            forget(Query::new(FORGET)).execute(&mut *tx).await?;
        }
        let seq: Option<i64> = match D::DIALECT.seq.fetch {
            // Only on SQLite: PostgreSQL numbers the timer in its insert.
            Some(sql) => Some(Query::new(sql).scalar(&mut *tx).await?),
            None => None,
        };
        let upsert = format!(
            "INSERT INTO steward_timers (tenant, rule, key, pos, due, seq, continuation) \
             VALUES (?, ?, ?, ?, ?, {}, ?) ON CONFLICT (tenant, rule, key, pos) DO UPDATE SET \
             due = excluded.due, seq = excluded.seq, continuation = excluded.continuation",
            D::DIALECT.seq.inline
        );
        let insert = if D::DIALECT.modifying_ctes {
            // Only on PostgreSQL (a data-modifying WITH).
            forget(Query::new(format!("WITH gone AS ({FORGET}) {upsert}")))
        } else {
            // Only on SQLite.
            Query::new(upsert)
        };
        let insert = insert
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
    pub(crate) async fn cancel_timers(
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
    pub(crate) async fn put_approval(
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
            // Only on SQLite: a statement apart numbers the approval.
            Some(sql) => Query::new(sql).scalar(&mut *tx).await?,
            None => {
                // Only on PostgreSQL: the sequence's expression.
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
    pub(crate) async fn end_approval(
        &self,
        tx: &mut D::Conn,
        end: &steward::engine::store::ApprovalEnd,
    ) -> Result<(), sqlx::Error> {
        // An approval's id starts with its tenant.
        let tenant = approval_tenant(&end.id);
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
    pub(crate) async fn count_in_window(
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
            // Only on SQLite: PostgreSQL deletes in the mark's statement.
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
    pub(crate) async fn remember(
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

    pub(crate) async fn remove_timer(
        &self,
        tx: &mut D::Conn,
        k: &TimerKey,
    ) -> Result<(), sqlx::Error> {
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

    pub(crate) async fn commit_unit(
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
    pub(crate) async fn write_unit(
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
                 WHERE tenant = ? AND id = ? AND status NOT IN ('processed', 'rejected')",
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
            if status == "pending" {
                self.outbox_writes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
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

    /// Work for people: a `notify` is a notification row, a
    /// `create_task` a task row, in the unit's transaction.
    pub(crate) async fn record_work(
        &self,
        tx: &mut D::Conn,
        a: &ActionRow,
    ) -> Result<(), sqlx::Error> {
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

    pub(crate) fn commit_now(
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
