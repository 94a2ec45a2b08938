//! What the HTTP API reads and writes besides the control plane: tenants
//! and their tokens, answers kept by `Idempotency-Key`, events, the
//! outbox, timers, work for people, approvals and the decisions asked for,
//! and approval links. Every query names the tenant first: a tenant sees
//! only its own rows.

use crate::control::ControlError;
use crate::driver::{Driver, Pooled, Query};
use crate::SqlStore;

/// A page of a list: after the row the cursor names, in the list's order.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The sort key of the last row of the page before (see each list).
    pub after: Option<String>,
    pub limit: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub id: String,
    pub event_type: String,
    pub occurred_at: String,
    pub key: Option<String>,
    pub payload: serde_json::Value,
    /// `pending`, `processed` or `rejected`.
    pub status: String,
    /// Why it was rejected.
    pub reason: Option<String>,
    pub received_at: String,
    pub processed_at: Option<String>,
    /// Its place in the order events arrived (the list's cursor).
    pub seq: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    /// The idempotency key: the webhook's `webhook-id`, the mail's
    /// `Message-ID`; the action's id in this API.
    pub id: String,
    pub rule: String,
    pub event: String,
    pub action: String,
    pub args: serde_json::Value,
    /// Where a webhook action is delivered.
    pub url: Option<String>,
    /// `pending`, `delivered`, `failed` (to be retried) or `dead`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub performed_at: String,
    pub finished_at: Option<String>,
}

/// What cancels a timer: an event of this type whose field has this value.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CancelRow {
    pub event_type: String,
    pub field: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerRow {
    /// `key~rule~step`.
    pub id: String,
    pub rule: String,
    pub key: String,
    pub step: i64,
    pub due: String,
    /// The event the rule was handling when it set the timer.
    pub event: Option<String>,
    pub cancelled_by: Vec<CancelRow>,
    /// The stored continuation (what the timer will run).
    pub continuation: Option<String>,
}

/// Whom a list of tasks or notifications is about: those for a person
/// (`assignee`), for a role, or both; everyone's when neither is given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Whom {
    pub assignee: Option<String>,
    pub role: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct TaskRow {
    pub id: String,
    pub rule: String,
    pub event: String,
    /// The role it is for (`create task ... for role NAME`), or none.
    pub role: Option<String>,
    /// The person it is for, a user id or an address (`for owner_id`), or none.
    pub assignee: Option<String>,
    pub title: String,
    pub due: Option<String>,
    /// `open` or `done`.
    pub status: String,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: String,
    pub rule: String,
    pub event: String,
    /// The role notified (`notify role NAME`), or none.
    pub role: Option<String>,
    /// The person notified, a user id or an address (mailed), or none.
    pub assignee: Option<String>,
    pub text: String,
    pub created_at: String,
}

/// A decision: who, how (`api`, `link`) and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionRow {
    /// `approved` or `rejected`.
    pub decision: String,
    pub by: String,
    pub via: String,
    pub comment: String,
    pub at: String,
    /// Whether the engine has run what the decision runs yet.
    pub taken: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRow {
    pub id: String,
    pub rule: String,
    pub key: String,
    pub role: String,
    /// The event the rule was handling when it asked.
    pub event: Option<String>,
    pub requested_at: String,
    pub deadline: String,
    /// `pending`, `approved`, `rejected`, `expired` (no decision by the
    /// deadline) or `cancelled` (superseded, or its rule went away).
    pub status: String,
    pub decision: Option<DecisionRow>,
    /// Why it ended without a decision.
    pub reason: Option<String>,
    /// When it stopped being pending.
    pub ended_at: Option<String>,
    /// The stored continuation (the API describes what deciding runs
    /// from it).
    pub continuation: Option<String>,
}

/// What asking for a decision came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    /// Recorded; the engine takes it in its next batch.
    Recorded(DecisionRow),
    /// Another decision was recorded first.
    Already(DecisionRow),
    /// The deadline has passed.
    Expired(String),
    /// It ended without a decision that can be taken now: cancelled
    /// (with why), or expired.
    Ended {
        status: String,
        reason: Option<String>,
    },
    NotFound,
}

/// What retrying an action came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retried {
    Queued(Box<OutboxRow>),
    /// Only a dead action is retried; this one is in this status.
    NotDead(String),
    NotFound,
}

/// A decision asked for over HTTP, for the engine to take.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DecisionRequest {
    pub tenant: String,
    pub approval: String,
    pub approved: bool,
    #[sqlx(rename = "decided_by")]
    pub by: String,
    pub via: String,
}

/// A stored answer to a creating POST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptAnswer {
    /// A digest of the request it answered (method, path and body).
    pub request: String,
    pub status: u16,
    pub body: String,
}

/// The HTTP API's reads and writes, on either store.
pub trait Api {
    /// Makes a tenant; false if it exists.
    fn create_tenant(&self, id: &str) -> Result<bool, ControlError>;
    fn tenant_exists(&self, id: &str) -> Result<bool, ControlError>;
    /// Keeps a token's hash and scopes, and when it expires (with an audit
    /// entry).
    fn create_token(
        &self,
        tenant: &str,
        id: &str,
        hash: &str,
        scopes: &[String],
        expires_at: Option<&str>,
    ) -> Result<(), ControlError>;
    /// A token's hash and scopes, unless it expired (or was revoked).
    fn token(&self, tenant: &str, id: &str) -> Result<Option<(String, Vec<String>)>, ControlError>;

    fn kept_answer(&self, tenant: &str, key: &str) -> Result<Option<KeptAnswer>, ControlError>;
    /// Keeps an answer; false if one was kept first for the key.
    fn keep_answer(
        &self,
        tenant: &str,
        key: &str,
        answer: &KeptAnswer,
    ) -> Result<bool, ControlError>;

    /// Events of a tenant, in the order they arrived (cursor: `seq`).
    fn events(
        &self,
        tenant: &str,
        event_type: Option<&str>,
        status: Option<&str>,
        page: &Page,
    ) -> Result<Vec<EventRow>, ControlError>;
    fn event(&self, tenant: &str, id: &str) -> Result<Option<EventRow>, ControlError>;

    /// The outbox, oldest first (cursor: `performed_at key`).
    fn actions(
        &self,
        tenant: &str,
        status: Option<&str>,
        rule: Option<&str>,
        since: Option<&str>,
        page: &Page,
    ) -> Result<Vec<OutboxRow>, ControlError>;
    /// Puts a dead action back in the outbox, due now, with its attempts
    /// counted afresh.
    fn retry_action(&self, tenant: &str, id: &str, who: &str) -> Result<Retried, ControlError>;

    /// Pending timers, soonest first (cursor: `due rule key step`).
    fn timers(&self, tenant: &str, page: &Page) -> Result<Vec<TimerRow>, ControlError>;
    /// Tasks, oldest first (cursor: `created_at key`), for whom given.
    fn tasks(&self, tenant: &str, whom: &Whom, page: &Page) -> Result<Vec<TaskRow>, ControlError>;
    /// Notifications, oldest first (cursor: `created_at key`), for whom given.
    fn notifications(
        &self,
        tenant: &str,
        whom: &Whom,
        page: &Page,
    ) -> Result<Vec<NotificationRow>, ControlError>;

    /// Approvals: pending ones, or decided ones (`approved`, `rejected`),
    /// or all; by id.
    fn approvals(
        &self,
        tenant: &str,
        status: Option<&str>,
        page: &Page,
    ) -> Result<Vec<ApprovalRow>, ControlError>;
    fn approval_row(&self, tenant: &str, id: &str) -> Result<Option<ApprovalRow>, ControlError>;
    /// Records a decision, first come first served (a compare-and-set on
    /// the approval), with an audit entry.
    fn request_decision(
        &self,
        tenant: &str,
        approval: &str,
        approved: bool,
        by: &str,
        via: &str,
        comment: &str,
    ) -> Result<Decided, ControlError>;
    /// Decisions recorded and not yet taken by the engine.
    fn decision_requests(&self, limit: i64) -> Result<Vec<DecisionRequest>, ControlError>;
    /// Marks a decision taken (in the open batch, if any).
    fn took_decision(&self, tenant: &str, approval: &str) -> Result<(), ControlError>;

    /// Keeps an approval link's token hash, until `expires_at`.
    fn create_link(
        &self,
        tenant: &str,
        hash: &str,
        approval: &str,
        expires_at: &str,
    ) -> Result<(), ControlError>;
    /// The approval a link names, if the link is unused and unexpired:
    /// (approval, expires_at, used_at).
    fn link(
        &self,
        tenant: &str,
        hash: &str,
    ) -> Result<Option<(String, String, Option<String>)>, ControlError>;
    /// Uses a link up; false if it was used already.
    fn use_link(&self, tenant: &str, hash: &str) -> Result<bool, ControlError>;

    /// Sets who holds a role (with an audit entry).
    fn set_role(
        &self,
        tenant: &str,
        role: &str,
        emails: &[String],
        who: &str,
    ) -> Result<(), ControlError>;
    /// Every role of a tenant with its addresses, by name.
    fn roles(&self, tenant: &str) -> Result<Vec<(String, Vec<String>)>, ControlError>;
    /// The sources of one of a tenant's programs, by digest.
    fn program_sources(
        &self,
        tenant: &str,
        digest: &str,
    ) -> Result<Option<steward::boundary::Sources>, ControlError>;
}

pub(crate) fn json_or_text(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

/// The id of the event a stored continuation was suspended on.
pub(crate) fn continuation_event(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("event")?.get("id")?.as_str().map(str::to_string)
}

/// Splits a cursor `a b c` into its parts (`\u{1f}`-separated).
pub(crate) fn cursor_parts<const N: usize>(after: &Option<String>) -> [String; N] {
    let mut parts = after.as_deref().unwrap_or_default().split('\u{1f}');
    std::array::from_fn(|_| parts.next().unwrap_or_default().to_string())
}

/// An event as the API reads it ([`crate::driver::Dialect::event_cols`]).
#[derive(sqlx::FromRow)]
pub(crate) struct StoredEvent {
    id: String,
    #[sqlx(rename = "type")]
    event_type: String,
    occurred_at: String,
    key: Option<String>,
    payload: String,
    status: String,
    reason: Option<String>,
    received_at: String,
    processed_at: Option<String>,
    seq: i64,
}

/// An action of the outbox as the API reads it ([`ACTION_COLS`]).
#[derive(sqlx::FromRow)]
pub(crate) struct StoredAction {
    key: String,
    rule: String,
    event: String,
    action: String,
    args: String,
    url: Option<String>,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    next_attempt_at: Option<String>,
    performed_at: String,
    finished_at: Option<String>,
}

/// An approval's columns as the API reads them ([`APPROVAL_COLS`]).
#[derive(sqlx::FromRow)]
pub(crate) struct StoredApproval {
    id: String,
    rule: String,
    key: String,
    role: String,
    asked_at: String,
    deadline: String,
    continuation: String,
}

/// A decision asked for over HTTP ([`DECISION_COLS`]; all NULL where an
/// approval has none).
#[derive(sqlx::FromRow)]
pub(crate) struct StoredDecision {
    approved: Option<bool>,
    decided_by: Option<String>,
    via: Option<String>,
    comment: Option<String>,
    decided_at: Option<String>,
    taken_at: Option<String>,
}

/// A decision and the approval it decides.
#[derive(sqlx::FromRow)]
pub(crate) struct DecisionOf {
    pub(crate) approval: String,
    #[sqlx(flatten)]
    pub(crate) decision: StoredDecision,
}

/// A pending approval with the decision asked for it, if any.
#[derive(sqlx::FromRow)]
pub(crate) struct DecidedApproval {
    #[sqlx(flatten)]
    pub(crate) approval: StoredApproval,
    #[sqlx(flatten)]
    pub(crate) decision: StoredDecision,
}

/// An approval that ended: how, why and when, with its decision if any.
#[derive(sqlx::FromRow)]
pub(crate) struct EndedApproval {
    #[sqlx(flatten)]
    pub(crate) approval: StoredApproval,
    #[sqlx(flatten)]
    pub(crate) decision: StoredDecision,
    pub(crate) status: String,
    pub(crate) reason: Option<String>,
    pub(crate) ended_at: Option<String>,
}

/// The columns of [`StoredAction`].
pub(crate) const ACTION_COLS: &str = "key, rule, event, action, args, url, status, attempts, \
     last_error, next_attempt_at, performed_at, finished_at";

/// The columns of [`StoredApproval`], of the approvals `a` (pending or
/// ended).
pub(crate) const APPROVAL_COLS: &str =
    "a.id, a.rule, a.key, a.role, a.requested_at AS asked_at, a.deadline, a.continuation";

/// The columns of [`StoredDecision`], of the decisions `d`.
pub(crate) const DECISION_COLS: &str = "d.approved, d.decided_by, d.via, d.comment, \
     d.requested_at AS decided_at, d.taken_at";

/// The API written once for both stores.
impl<D: Driver> SqlStore<D> {
    pub(crate) fn event_of(
        r: crate::api::StoredEvent,
    ) -> Result<crate::api::EventRow, crate::control::ControlError> {
        Ok(crate::api::EventRow {
            id: r.id,
            event_type: r.event_type,
            occurred_at: r.occurred_at,
            key: r.key,
            payload: crate::api::json_or_text(r.payload),
            status: r.status,
            reason: r.reason,
            received_at: r.received_at,
            processed_at: r.processed_at,
            seq: r.seq,
        })
    }

    pub(crate) fn outbox_of(
        r: crate::api::StoredAction,
    ) -> Result<crate::api::OutboxRow, crate::control::ControlError> {
        Ok(crate::api::OutboxRow {
            id: r.key,
            rule: r.rule,
            event: r.event,
            action: r.action,
            args: crate::api::json_or_text(r.args),
            url: r.url,
            status: r.status,
            attempts: i64::from(r.attempts),
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at,
            performed_at: r.performed_at,
            finished_at: r.finished_at,
        })
    }

    /// An approval (a pending one, or one that ended), with how it stands.
    pub(crate) fn approval_of(
        r: crate::api::StoredApproval,
        status: Option<String>,
        decision: Option<crate::api::DecisionRow>,
        reason: Option<String>,
        ended_at: Option<String>,
    ) -> Result<crate::api::ApprovalRow, crate::control::ControlError> {
        let status = status.unwrap_or_else(|| {
            decision
                .as_ref()
                .map_or("pending".to_string(), |d| d.decision.clone())
        });
        Ok(crate::api::ApprovalRow {
            id: r.id,
            rule: r.rule,
            key: r.key,
            role: r.role,
            event: crate::api::continuation_event(&r.continuation),
            requested_at: r.asked_at,
            deadline: r.deadline,
            status,
            decision,
            reason,
            ended_at,
            continuation: Some(r.continuation),
        })
    }

    pub(crate) fn decision_of(
        d: crate::api::StoredDecision,
    ) -> Result<Option<crate::api::DecisionRow>, crate::control::ControlError> {
        let Some(approved) = d.approved else {
            return Ok(None);
        };
        Ok(Some(crate::api::DecisionRow {
            decision: if approved { "approved" } else { "rejected" }.to_string(),
            by: d.decided_by.unwrap_or_default(),
            via: d.via.unwrap_or_default(),
            comment: d.comment.unwrap_or_default(),
            at: d.decided_at.unwrap_or_default(),
            taken: d.taken_at.is_some(),
        }))
    }

    /// Approvals that ended (`steward_approvals_ended`), after
    /// `after`, with the decision that ended them, if any.
    async fn ended_approvals(
        &self,
        tenant: &str,
        id: Option<&str>,
        status: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<crate::api::ApprovalRow>, crate::control::ControlError> {
        use crate::control::db;
        let rows: Vec<crate::api::EndedApproval> = Query::new(format!(
            "SELECT {APPROVAL_COLS}, a.status, a.reason, a.ended_at, {DECISION_COLS} \
             FROM steward_approvals_ended a LEFT JOIN steward_decision_requests d \
             ON d.tenant = a.tenant AND d.approval = a.id \
             WHERE a.tenant = ? AND (? = '' OR a.id = ?) AND (? = '' OR a.status = ?) AND a.id > ? \
             ORDER BY a.id LIMIT ?"
        ))
        .bind(tenant)
        .bind(id.unwrap_or(""))
        .bind(id.unwrap_or(""))
        .bind(status)
        .bind(status)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut Pooled(&self.pool))
        .await
        .map_err(db)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(Self::approval_of(
                r.approval,
                Some(r.status),
                Self::decision_of(r.decision)?,
                r.reason,
                r.ended_at,
            )?);
        }
        Ok(out)
    }

    /// Timers from rows of rule, key, pos, due and continuation,
    /// each with what cancels it.
    pub(crate) async fn timer_rows(
        &self,
        tenant: &str,
        rows: Vec<(String, String, i64, String, String)>,
    ) -> Result<Vec<crate::api::TimerRow>, crate::control::ControlError> {
        use crate::control::db;
        let mut out = Vec::new();
        for (rule, key, pos, due, cont) in rows {
            let cancelled_by: Vec<crate::api::CancelRow> = Query::new(
                "SELECT event_type, field, value FROM steward_timer_cancels \
                 WHERE tenant = ? AND rule = ? AND key = ? AND pos = ? ORDER BY event_type, field, value",
            )
            .bind(tenant)
            .bind(&rule)
            .bind(&key)
            .bind(pos)
            .fetch_all(&mut Pooled(&self.pool))
            .await
            .map_err(db)?;
            out.push(crate::api::TimerRow {
                id: format!("{key}~{rule}~{pos}"),
                due,
                event: crate::api::continuation_event(&cont),
                rule,
                key,
                step: pos,
                cancelled_by,
                continuation: Some(cont),
            });
        }
        Ok(out)
    }

    async fn decision_on(
        &self,
        c: &mut D::Conn,
        tenant: &str,
        approval: &str,
    ) -> Result<Option<crate::api::DecisionRow>, crate::control::ControlError> {
        let row: Option<crate::api::StoredDecision> = Query::new(
            "SELECT approved, decided_by, via, comment, requested_at AS decided_at, taken_at \
             FROM steward_decision_requests WHERE tenant = ? AND approval = ?",
        )
        .bind(tenant)
        .bind(approval)
        .fetch_optional(&mut *c)
        .await
        .map_err(crate::control::db)?;
        match row {
            Some(r) => Self::decision_of(r),
            None => Ok(None),
        }
    }
}

impl<D: Driver> crate::api::Api for SqlStore<D> {
    fn create_tenant(&self, id: &str) -> Result<bool, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let mut tx = self.pool.begin_with(D::BEGIN).await.map_err(db)?;
            let done = Query::new(
                "INSERT INTO steward_tenants (id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(crate::control::now_text())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let made = done == 1;
            if made {
                self.audit_on(
                    &mut tx,
                    id,
                    "admin",
                    "tenant.created",
                    id,
                    &serde_json::json!({}),
                )
                .await?;
            }
            tx.commit().await.map_err(db)?;
            Ok(made)
        })
    }

    fn tenant_exists(&self, id: &str) -> Result<bool, crate::control::ControlError> {
        self.block(async {
            let n: i64 = Query::new("SELECT COUNT(*) FROM steward_tenants WHERE id = ?")
                .bind(id)
                .scalar(&mut Pooled(&self.pool))
                .await
                .map_err(crate::control::db)?;
            Ok(n > 0)
        })
    }

    fn create_token(
        &self,
        tenant: &str,
        id: &str,
        hash: &str,
        scopes: &[String],
        expires_at: Option<&str>,
    ) -> Result<(), crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let mut tx = self.pool.begin_with(D::BEGIN).await.map_err(db)?;
            Query::new(
                "INSERT INTO steward_tokens (tenant, id, hash, scopes, created_at, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(tenant)
            .bind(id)
            .bind(hash)
            .bind(scopes.join(" "))
            .bind(crate::control::now_text())
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            self.audit_on(
                &mut tx,
                tenant,
                "admin",
                "token.created",
                id,
                &serde_json::json!({ "scopes": scopes, "expires_at": expires_at }),
            )
            .await?;
            tx.commit().await.map_err(db)
        })
    }

    fn token(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<(String, Vec<String>)>, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let row: Option<(String, String)> = Query::new(
                "SELECT hash, scopes FROM steward_tokens WHERE tenant = ? AND id = ? \
                 AND (expires_at IS NULL OR expires_at > ?)",
            )
            .bind(tenant)
            .bind(id)
            .bind(crate::control::now_text())
            .fetch_optional(&mut Pooled(&self.pool))
            .await
            .map_err(db)?;
            Ok(row.map(|(hash, scopes)| {
                (
                    hash,
                    scopes.split_whitespace().map(str::to_string).collect(),
                )
            }))
        })
    }

    fn kept_answer(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<crate::api::KeptAnswer>, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let row: Option<(String, i64, String)> = Query::new(
                "SELECT request, status, body FROM steward_idempotency WHERE tenant = ? AND key = ?",
            )
            .bind(tenant)
            .bind(key)
            .fetch_optional(&mut Pooled(&self.pool))
            .await
            .map_err(db)?;
            match row {
                Some((request, status, body)) => Ok(Some(crate::api::KeptAnswer {
                    request,
                    status: u16::try_from(status).unwrap_or(500),
                    body,
                })),
                None => Ok(None),
            }
        })
    }

    fn keep_answer(
        &self,
        tenant: &str,
        key: &str,
        answer: &crate::api::KeptAnswer,
    ) -> Result<bool, crate::control::ControlError> {
        self.block(async {
            // Answers are kept for a day.
            let old = chrono::Utc::now() - chrono::Duration::days(1);
            Query::new("DELETE FROM steward_idempotency WHERE tenant = ? AND created_at < ?")
                .bind(tenant)
                .bind(crate::time_text(&old))
                .execute(&mut Pooled(&self.pool))
                .await
                .map_err(crate::control::db)?;
            let done = Query::new(
                "INSERT INTO steward_idempotency (tenant, key, request, status, body, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(key)
            .bind(&answer.request)
            .bind(i64::from(answer.status))
            .bind(&answer.body)
            .bind(crate::control::now_text())
            .execute(&mut Pooled(&self.pool))
            .await
            .map_err(crate::control::db)?;
            Ok(done == 1)
        })
    }

    fn events(
        &self,
        tenant: &str,
        event_type: Option<&str>,
        status: Option<&str>,
        page: &crate::api::Page,
    ) -> Result<Vec<crate::api::EventRow>, crate::control::ControlError> {
        let after: i64 = page
            .after
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        self.block(async {
            let rows: Vec<crate::api::StoredEvent> = Query::new(format!(
                "SELECT {} FROM steward_events WHERE tenant = ? \
                 AND (? = '' OR type = ?) AND (? = '' OR status = ?) AND {} > ? \
                 ORDER BY {} LIMIT ?",
                D::DIALECT.event_cols,
                D::DIALECT.order,
                D::DIALECT.order
            ))
            .bind(tenant)
            .bind(event_type.unwrap_or(""))
            .bind(event_type.unwrap_or(""))
            .bind(status.unwrap_or(""))
            .bind(status.unwrap_or(""))
            .bind(after)
            .bind(page.limit)
            .fetch_all(&mut Pooled(&self.pool))
            .await
            .map_err(crate::control::db)?;
            rows.into_iter().map(Self::event_of).collect()
        })
    }

    fn event(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<crate::api::EventRow>, crate::control::ControlError> {
        self.block(async {
            let row: Option<crate::api::StoredEvent> = Query::new(format!(
                "SELECT {} FROM steward_events WHERE tenant = ? AND id = ?",
                D::DIALECT.event_cols
            ))
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut Pooled(&self.pool))
            .await
            .map_err(crate::control::db)?;
            row.map(Self::event_of).transpose()
        })
    }

    fn actions(
        &self,
        tenant: &str,
        status: Option<&str>,
        rule: Option<&str>,
        since: Option<&str>,
        page: &crate::api::Page,
    ) -> Result<Vec<crate::api::OutboxRow>, crate::control::ControlError> {
        let after = crate::api::cursor_parts::<2>(&page.after);
        self.block(async {
            let rows: Vec<crate::api::StoredAction> = Query::new(format!(
                "SELECT {ACTION_COLS} FROM steward_actions WHERE tenant = ? \
                 AND (? = '' OR status = ?) AND (? = '' OR rule = ?) AND performed_at >= ? \
                 AND (performed_at > ? OR (performed_at = ? AND key > ?)) \
                 ORDER BY performed_at, key LIMIT ?"
            ))
            .bind(tenant)
            .bind(status.unwrap_or(""))
            .bind(status.unwrap_or(""))
            .bind(rule.unwrap_or(""))
            .bind(rule.unwrap_or(""))
            .bind(since.unwrap_or(""))
            .bind(&after[0])
            .bind(&after[0])
            .bind(&after[1])
            .bind(page.limit)
            .fetch_all(&mut Pooled(&self.pool))
            .await
            .map_err(crate::control::db)?;
            rows.into_iter().map(Self::outbox_of).collect()
        })
    }

    fn retry_action(
        &self,
        tenant: &str,
        id: &str,
        who: &str,
    ) -> Result<crate::api::Retried, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let mut tx = self.pool.begin_with(D::BEGIN).await.map_err(db)?;
            let status: Option<String> = Query::new(format!(
                "SELECT status FROM steward_actions WHERE tenant = ? AND key = ? {}",
                D::DIALECT.lock
            ))
            .bind(tenant)
            .bind(id)
            .scalar_optional(&mut *tx)
            .await
            .map_err(db)?;
            match status.as_deref() {
                None => return Ok(crate::api::Retried::NotFound),
                Some("dead") => {}
                Some(other) => return Ok(crate::api::Retried::NotDead(other.to_string())),
            }
            Query::new(
                "UPDATE steward_actions SET status = 'pending', attempts = 0, next_attempt_at = NULL, \
                 finished_at = NULL WHERE tenant = ? AND key = ?",
            )
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            self.audit_on(&mut tx, tenant, who, "action.retried", id, &serde_json::json!({}))
                .await?;
            let row: crate::api::StoredAction = Query::new(format!(
                "SELECT {ACTION_COLS} FROM steward_actions \
                 WHERE tenant = ? AND key = ?"
            ))
            .bind(tenant)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let out = Self::outbox_of(row)?;
            tx.commit().await.map_err(db)?;
            Ok(crate::api::Retried::Queued(Box::new(out)))
        })
    }

    fn timers(
        &self,
        tenant: &str,
        page: &crate::api::Page,
    ) -> Result<Vec<crate::api::TimerRow>, crate::control::ControlError> {
        use crate::control::db;
        let after = crate::api::cursor_parts::<4>(&page.after);
        let after_pos: i64 = after[3].parse().unwrap_or(-1);
        self.block(async {
            let rows: Vec<(String, String, i64, String, String)> = Query::new(
                "SELECT rule, key, pos, due, continuation FROM steward_timers WHERE tenant = ? \
                 AND (due > ? OR (due = ? AND (rule > ? OR (rule = ? AND (key > ? OR (key = ? AND pos > ?)))))) \
                 ORDER BY due, rule, key, pos LIMIT ?",
            )
            .bind(tenant)
            .bind(&after[0])
            .bind(&after[0])
            .bind(&after[1])
            .bind(&after[1])
            .bind(&after[2])
            .bind(&after[2])
            .bind(after_pos)
            .bind(page.limit)
            .fetch_all(&mut Pooled(&self.pool))
            .await
            .map_err(db)?;
            self.timer_rows(tenant, rows).await
        })
    }

    fn tasks(
        &self,
        tenant: &str,
        whom: &crate::api::Whom,
        page: &crate::api::Page,
    ) -> Result<Vec<crate::api::TaskRow>, crate::control::ControlError> {
        use crate::control::db;
        let after = crate::api::cursor_parts::<2>(&page.after);
        self.block(async {
            Query::new(
                "SELECT key AS id, rule, event, role, assignee, title, due, status, created_at FROM steward_tasks \
                 WHERE tenant = ? AND (? IS NULL OR assignee = ?) AND (? IS NULL OR role = ?) \
                 AND (created_at > ? OR (created_at = ? AND key > ?)) \
                 ORDER BY created_at, key LIMIT ?",
            )
            .bind(tenant)
            .bind(&whom.assignee)
            .bind(&whom.assignee)
            .bind(&whom.role)
            .bind(&whom.role)
            .bind(&after[0])
            .bind(&after[0])
            .bind(&after[1])
            .bind(page.limit)
            .fetch_all(&mut Pooled(&self.pool))
            .await
            .map_err(db)
        })
    }

    fn notifications(
        &self,
        tenant: &str,
        whom: &crate::api::Whom,
        page: &crate::api::Page,
    ) -> Result<Vec<crate::api::NotificationRow>, crate::control::ControlError> {
        use crate::control::db;
        let after = crate::api::cursor_parts::<2>(&page.after);
        self.block(async {
            Query::new(
                "SELECT key AS id, rule, event, role, assignee, text, created_at FROM steward_notifications \
                 WHERE tenant = ? AND (? IS NULL OR assignee = ?) AND (? IS NULL OR role = ?) \
                 AND (created_at > ? OR (created_at = ? AND key > ?)) \
                 ORDER BY created_at, key LIMIT ?",
            )
            .bind(tenant)
            .bind(&whom.assignee)
            .bind(&whom.assignee)
            .bind(&whom.role)
            .bind(&whom.role)
            .bind(&after[0])
            .bind(&after[0])
            .bind(&after[1])
            .bind(page.limit)
            .fetch_all(&mut Pooled(&self.pool))
            .await
            .map_err(db)
        })
    }

    fn approvals(
        &self,
        tenant: &str,
        status: Option<&str>,
        page: &crate::api::Page,
    ) -> Result<Vec<crate::api::ApprovalRow>, crate::control::ControlError> {
        use crate::control::db;
        let after = crate::api::cursor_parts::<1>(&page.after);
        let status = status.unwrap_or("");
        self.block(async {
            // Pending ones are rows of steward_approvals (a decision
            // may be recorded and not yet taken); decided ones are
            // the decisions recorded over HTTP.
            let mut out = Vec::new();
            if status.is_empty() || status == "pending" {
                let rows: Vec<crate::api::DecidedApproval> = Query::new(format!(
                    "SELECT {APPROVAL_COLS}, {DECISION_COLS} \
                     FROM steward_approvals a LEFT JOIN steward_decision_requests d \
                     ON d.tenant = a.tenant AND d.approval = a.id \
                     WHERE a.tenant = ? AND a.id > ? ORDER BY a.id LIMIT ?"
                ))
                .bind(tenant)
                .bind(&after[0])
                .bind(page.limit)
                .fetch_all(&mut Pooled(&self.pool))
                .await
                .map_err(db)?;
                for r in rows {
                    out.push(Self::approval_of(
                        r.approval,
                        None,
                        Self::decision_of(r.decision)?,
                        None,
                        None,
                    )?);
                }
            }
            if status != "pending" {
                out.extend(
                    self.ended_approvals(tenant, None, status, &after[0], page.limit)
                        .await?,
                );
            }
            // Decided before ended approvals were kept: only their
            // decision is known.
            if status.is_empty() || status == "approved" || status == "rejected" {
                let rows: Vec<crate::api::DecisionOf> = Query::new(format!(
                    "SELECT d.approval, {DECISION_COLS} \
                     FROM steward_decision_requests d WHERE d.tenant = ? AND d.approval > ? \
                     AND d.taken_at IS NOT NULL AND (? = '' OR d.approved = ?) \
                     AND NOT EXISTS (SELECT 1 FROM steward_approvals_ended e \
                     WHERE e.tenant = d.tenant AND e.id = d.approval) ORDER BY d.approval LIMIT ?"
                ))
                .bind(tenant)
                .bind(&after[0])
                .bind(status)
                .bind(status == "approved")
                .bind(page.limit)
                .fetch_all(&mut Pooled(&self.pool))
                .await
                .map_err(db)?;
                for crate::api::DecisionOf {
                    approval: id,
                    decision,
                } in rows
                {
                    let decision = Self::decision_of(decision)?;
                    let mut parts = id.splitn(4, '/').skip(1);
                    let rule = parts.next().unwrap_or_default().to_string();
                    let event = parts.next().map(str::to_string);
                    out.push(crate::api::ApprovalRow {
                        id,
                        rule,
                        key: String::new(),
                        role: String::new(),
                        event,
                        requested_at: String::new(),
                        deadline: String::new(),
                        status: decision
                            .as_ref()
                            .map_or(String::new(), |d| d.decision.clone()),
                        decision,
                        reason: None,
                        ended_at: None,
                        continuation: None,
                    });
                }
                out.sort_by(|a, b| a.id.cmp(&b.id));
                out.truncate(usize::try_from(page.limit).unwrap_or(0));
            }
            Ok(out)
        })
    }

    fn approval_row(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<crate::api::ApprovalRow>, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let mut c = self.pool.acquire().await.map_err(db)?;
            let decision = self.decision_on(&mut c, tenant, id).await?;
            let row: Option<crate::api::StoredApproval> = Query::new(format!(
                "SELECT {APPROVAL_COLS} FROM steward_approvals a WHERE a.tenant = ? AND a.id = ?"
            ))
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *c)
            .await
            .map_err(db)?;
            drop(c);
            let Some(r) = row else {
                let ended = self.ended_approvals(tenant, Some(id), "", "", 1).await?;
                if let Some(row) = ended.into_iter().next() {
                    return Ok(Some(row));
                }
                return Ok(decision.map(|d| crate::api::ApprovalRow {
                    id: id.to_string(),
                    rule: id.split('/').nth(1).unwrap_or_default().to_string(),
                    key: String::new(),
                    role: String::new(),
                    event: id.split('/').nth(2).map(str::to_string),
                    requested_at: String::new(),
                    deadline: String::new(),
                    status: d.decision.clone(),
                    decision: Some(d),
                    reason: None,
                    ended_at: None,
                    continuation: None,
                }));
            };
            Ok(Some(Self::approval_of(r, None, decision, None, None)?))
        })
    }

    fn request_decision(
        &self,
        tenant: &str,
        approval: &str,
        approved: bool,
        by: &str,
        via: &str,
        comment: &str,
    ) -> Result<crate::api::Decided, crate::control::ControlError> {
        use crate::control::db;
        let mut tries = 0;
        loop {
            let done = self.block(async {
                let mut tx = self.pool.begin_with(D::BEGIN).await.map_err(db)?;
                if let Some(d) = self.decision_on(&mut tx, tenant, approval).await? {
                    return Ok(crate::api::Decided::Already(d));
                }
                let deadline: Option<String> = Query::new(format!(
                    "SELECT deadline FROM steward_approvals WHERE tenant = ? AND id = ? {}",
                    D::DIALECT.lock
                ))
                .bind(tenant)
                .bind(approval)
                .scalar_optional(&mut *tx)
                .await
                .map_err(db)?;
                let Some(deadline) = deadline else {
                    let ended: Option<(String, Option<String>)> = Query::new(
                        "SELECT status, reason FROM steward_approvals_ended WHERE tenant = ? AND id = ?",
                    )
                    .bind(tenant)
                    .bind(approval)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                    return Ok(match ended {
                        Some((status, reason)) => crate::api::Decided::Ended { status, reason },
                        None => crate::api::Decided::NotFound,
                    });
                };
                let now = crate::control::now_text();
                if deadline <= now {
                    return Ok(crate::api::Decided::Expired(deadline));
                }
                Query::new(
                    "INSERT INTO steward_decision_requests \
                     (tenant, approval, approved, decided_by, via, comment, requested_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(tenant)
                .bind(approval)
                .bind(approved)
                .bind(by)
                .bind(via)
                .bind(comment)
                .bind(&now)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                let what = if approved { "approval.approved" } else { "approval.rejected" };
                self.audit_on(
                    &mut tx,
                    tenant,
                    by,
                    what,
                    approval,
                    &serde_json::json!({ "via": via, "comment": comment }),
                )
                .await?;
                tx.commit().await.map_err(db)?;
                Ok(crate::api::Decided::Recorded(crate::api::DecisionRow {
                    decision: if approved { "approved" } else { "rejected" }.to_string(),
                    by: by.to_string(),
                    via: via.to_string(),
                    comment: comment.to_string(),
                    at: now,
                    taken: false,
                }))
            });
            match done {
                // Two decisions at once: the second finds the first.
                Err(crate::control::ControlError::Store(
                    steward::engine::store::StoreError::Conflict(_)
                    | steward::engine::store::StoreError::Duplicate(_),
                )) if tries < 5 => tries += 1,
                done => return done,
            }
        }
    }

    fn decision_requests(
        &self,
        limit: i64,
    ) -> Result<Vec<crate::api::DecisionRequest>, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let mut c = self.conn().await.map_err(db)?;
            Query::new(format!(
                "SELECT tenant, approval, approved, decided_by, via FROM steward_decision_requests \
                 WHERE taken_at IS NULL ORDER BY requested_at LIMIT ? {}",
                D::DIALECT.claim.1
            ))
            .bind(limit)
            .fetch_all(c.get())
            .await
            .map_err(db)
        })
    }

    fn took_decision(
        &self,
        tenant: &str,
        approval: &str,
    ) -> Result<(), crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let mut c = self.conn().await.map_err(db)?;
            Query::new(
                "UPDATE steward_decision_requests SET taken_at = ? WHERE tenant = ? AND approval = ?",
            )
            .bind(crate::control::now_text())
            .bind(tenant)
            .bind(approval)
            .execute(c.get())
            .await
            .map_err(db)?;
            Ok(())
        })
    }

    fn create_link(
        &self,
        tenant: &str,
        hash: &str,
        approval: &str,
        expires_at: &str,
    ) -> Result<(), crate::control::ControlError> {
        self.block(async {
            Query::new(
                "INSERT INTO steward_approval_links (tenant, hash, approval, expires_at) \
                 VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(hash)
            .bind(approval)
            .bind(expires_at)
            .execute(&mut Pooled(&self.pool))
            .await
            .map_err(crate::control::db)?;
            Ok(())
        })
    }

    fn link(
        &self,
        tenant: &str,
        hash: &str,
    ) -> Result<Option<(String, String, Option<String>)>, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            Query::new(
                "SELECT approval, expires_at, used_at FROM steward_approval_links \
                 WHERE tenant = ? AND hash = ?",
            )
            .bind(tenant)
            .bind(hash)
            .fetch_optional(&mut Pooled(&self.pool))
            .await
            .map_err(db)
        })
    }

    fn set_role(
        &self,
        tenant: &str,
        role: &str,
        emails: &[String],
        who: &str,
    ) -> Result<(), crate::control::ControlError> {
        use crate::control::db;
        let list = serde_json::json!(emails);
        self.block(async {
            let mut tx = self.pool.begin_with(D::BEGIN).await.map_err(db)?;
            Query::new(
                "INSERT INTO steward_roles (tenant, role, emails, updated_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (tenant, role) DO UPDATE SET emails = excluded.emails, \
                 updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(role)
            .bind(list.to_string())
            .bind(crate::control::now_text())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            self.audit_on(
                &mut tx,
                tenant,
                who,
                "role.set",
                role,
                &serde_json::json!({ "emails": list }),
            )
            .await?;
            tx.commit().await.map_err(db)
        })
    }

    fn roles(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, Vec<String>)>, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let rows: Vec<(String, String)> =
                Query::new("SELECT role, emails FROM steward_roles WHERE tenant = ? ORDER BY role")
                    .bind(tenant)
                    .fetch_all(&mut Pooled(&self.pool))
                    .await
                    .map_err(db)?;
            let mut out = Vec::new();
            for (role, emails) in rows {
                let emails = serde_json::from_str(&emails).map_err(|e| {
                    crate::control::ControlError::Store(
                        steward::engine::store::StoreError::Corrupt(format!(
                            "the holders of role `{role}`: {e}"
                        )),
                    )
                })?;
                out.push((role, emails));
            }
            Ok(out)
        })
    }

    fn program_sources(
        &self,
        tenant: &str,
        digest: &str,
    ) -> Result<Option<steward::boundary::Sources>, crate::control::ControlError> {
        let text: Option<String> = self.block(async {
            Query::new("SELECT sources FROM steward_programs WHERE tenant = ? AND digest = ?")
                .bind(tenant)
                .bind(digest)
                .scalar_optional(&mut Pooled(&self.pool))
                .await
                .map_err(crate::control::db)
        })?;
        text.map(|t| crate::control::parse_sources(&t, &format!("program `{digest}`")))
            .transpose()
    }

    fn use_link(&self, tenant: &str, hash: &str) -> Result<bool, crate::control::ControlError> {
        self.block(async {
            let done = Query::new(
                "UPDATE steward_approval_links SET used_at = ? \
                 WHERE tenant = ? AND hash = ? AND used_at IS NULL",
            )
            .bind(crate::control::now_text())
            .bind(tenant)
            .bind(hash)
            .execute(&mut Pooled(&self.pool))
            .await
            .map_err(crate::control::db)?;
            Ok(done == 1)
        })
    }
}
