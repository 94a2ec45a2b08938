//! Work that comes due: the first timer or approval deadline, claimed where workers share the
//! work, loaded with its stored continuation and resumed under the ruleset version that made it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use steward::boundary::Sources;
use steward::engine::store::{Approval, CancelKey, Due, StoreError, Timer, TimerKey};
use steward::engine::stored::StoredContinuation;
use steward::engine::Ruleset;

use crate::driver::{Driver, Query};
use crate::{parse_time, time_text, unavailable, SqlStore};

pub(crate) fn index(n: i64) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("step id {n} is out of range")))
}

/// A timer as `steward_timers` keeps it.
#[derive(sqlx::FromRow)]
pub(crate) struct TimerRow {
    pub(crate) tenant: String,
    pub(crate) rule: String,
    pub(crate) key: String,
    pub(crate) pos: i64,
    pub(crate) due: String,
    pub(crate) seq: i64,
    pub(crate) continuation: String,
}

/// An approval as `steward_approvals` keeps it while it waits.
#[derive(sqlx::FromRow)]
pub(crate) struct PendingApprovalRow {
    pub(crate) tenant: String,
    pub(crate) id: String,
    pub(crate) rule: String,
    pub(crate) key: String,
    pub(crate) pos: i64,
    pub(crate) role: String,
    pub(crate) requested_at: String,
    pub(crate) deadline: String,
    pub(crate) seq: i64,
    pub(crate) continuation: String,
}

/// What a stored continuation resumes as, or why it cannot.
pub(crate) enum Resumed {
    Ready(steward::engine::store::Continuation, Arc<Ruleset>),
    Cancelled(String),
}

pub(crate) fn parse_continuation(json: &str) -> Result<StoredContinuation, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("a stored continuation: {e}")))
}

/// The ruleset of a stored version, checked and compiled again from its
/// sources; `None` if it no longer checks, or is not the same program.
pub(crate) fn rebuild(digest: &str, sources: &str) -> Option<Arc<Ruleset>> {
    let sources: Sources = serde_json::from_str(sources).ok()?;
    let rules = sources.build().rules.ok()?;
    (rules.version == digest).then_some(rules)
}

/// The block an approval's `else` runs, in the ruleset it resumes under.
pub(crate) fn else_block(
    rules: &Ruleset,
    cont: &steward::engine::store::Continuation,
    pos: u32,
) -> Option<usize> {
    let rule = rules.rules.get(cont.rule)?;
    rule.block_steps
        .iter()
        .position(|b| b.step == pos && b.branch == steward::engine::program::Branch::Else)
}

impl<D: Driver> SqlStore<D> {
    /// What a stored continuation resumes as: under the version that
    /// suspended it, loaded from `steward_rulesets` the first time
    /// it is needed; or why it cannot.
    pub(crate) async fn resume(&self, c: &mut D::Conn, json: &str) -> Result<Resumed, StoreError> {
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

    pub(crate) async fn load_timer(
        &self,
        c: &mut D::Conn,
        row: TimerRow,
    ) -> Result<Due, StoreError> {
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

    pub(crate) async fn load_approval(
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

    /// The first due time (locked where workers share the work).
    pub(crate) fn first_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
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

    pub(crate) fn claim_due(&self, up_to: DateTime<Utc>) -> Result<Option<Due>, StoreError> {
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

    pub(crate) fn next_due_now(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        if let Some(hint) = *self.due_hint() {
            return Ok(hint);
        }
        let found = self.first_due()?;
        if self.in_batch() {
            *self.due_hint() = Some(found);
        }
        Ok(found)
    }

    pub(crate) fn due_now(&self, up_to: DateTime<Utc>) -> Result<Option<Due>, StoreError> {
        *self.due_hint() = None;
        self.claim_due(up_to)
    }
}
