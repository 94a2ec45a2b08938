//! What the API answers with: the JSON bodies of rows, and their OpenAPI schemas. The store's row
//! types (`steward_db::api`, `steward_db::control`) stay free of both; each converts here.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct EventRow {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: String,
    pub key: Option<String>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// `pending`, `processed` or `rejected`.
    pub status: String,
    /// Why it was rejected.
    pub reason: Option<String>,
    pub received_at: String,
    pub processed_at: Option<String>,
    /// Its place in the order events arrived (the list's cursor).
    #[serde(skip)]
    pub seq: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct OutboxRow {
    /// The idempotency key: the webhook's `webhook-id`, the mail's
    /// `Message-ID`; the action's id in this API.
    pub id: String,
    pub rule: String,
    pub event: String,
    pub action: String,
    #[schema(value_type = Object)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CancelRow {
    pub event_type: String,
    pub field: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
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
    #[serde(skip)]
    pub continuation: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
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
    /// What approving would run (the actions of the `do` block; `maybe`
    /// where a condition decides, `later` in a timer's block).
    pub on_approve: Vec<String>,
    /// What rejecting (or the deadline passing) would run.
    pub on_reject: Vec<String>,
    /// The stored continuation (the API describes the blocks from it).
    #[serde(skip)]
    pub continuation: Option<String>,
}

/// A ruleset of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RulesetHead {
    pub name: String,
    pub version: i64,
    pub enabled: bool,
    pub updated_at: String,
}

/// An entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    /// A token (`token ID`), `admin`, or an approver's name.
    pub who: String,
    /// `ruleset.deployed`, `ruleset.rolled_back`, `ruleset.enabled`,
    /// `ruleset.disabled`, `ruleset.deleted`, `approval.approved`,
    /// `approval.rejected`, `action.retried`, `token.created`,
    /// `tenant.created`.
    pub what: String,
    /// What it was done to: a ruleset, an approval, an action, a token.
    pub subject: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

use steward_db::{api as store, control};

impl From<store::EventRow> for EventRow {
    fn from(r: store::EventRow) -> Self {
        EventRow {
            id: r.id,
            event_type: r.event_type,
            occurred_at: r.occurred_at,
            key: r.key,
            payload: r.payload,
            status: r.status,
            reason: r.reason,
            received_at: r.received_at,
            processed_at: r.processed_at,
            seq: r.seq,
        }
    }
}

impl From<store::OutboxRow> for OutboxRow {
    fn from(r: store::OutboxRow) -> Self {
        OutboxRow {
            id: r.id,
            rule: r.rule,
            event: r.event,
            action: r.action,
            args: r.args,
            url: r.url,
            status: r.status,
            attempts: r.attempts,
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at,
            performed_at: r.performed_at,
            finished_at: r.finished_at,
        }
    }
}

impl From<store::CancelRow> for CancelRow {
    fn from(r: store::CancelRow) -> Self {
        CancelRow {
            event_type: r.event_type,
            field: r.field,
            value: r.value,
        }
    }
}

impl From<store::TimerRow> for TimerRow {
    fn from(r: store::TimerRow) -> Self {
        TimerRow {
            id: r.id,
            rule: r.rule,
            key: r.key,
            step: r.step,
            due: r.due,
            event: r.event,
            cancelled_by: r.cancelled_by.into_iter().map(CancelRow::from).collect(),
            continuation: r.continuation,
        }
    }
}

impl From<store::TaskRow> for TaskRow {
    fn from(r: store::TaskRow) -> Self {
        TaskRow {
            id: r.id,
            rule: r.rule,
            event: r.event,
            role: r.role,
            assignee: r.assignee,
            title: r.title,
            due: r.due,
            status: r.status,
            created_at: r.created_at,
        }
    }
}

impl From<store::NotificationRow> for NotificationRow {
    fn from(r: store::NotificationRow) -> Self {
        NotificationRow {
            id: r.id,
            rule: r.rule,
            event: r.event,
            role: r.role,
            assignee: r.assignee,
            text: r.text,
            created_at: r.created_at,
        }
    }
}

impl From<store::DecisionRow> for DecisionRow {
    fn from(r: store::DecisionRow) -> Self {
        DecisionRow {
            decision: r.decision,
            by: r.by,
            via: r.via,
            comment: r.comment,
            at: r.at,
            taken: r.taken,
        }
    }
}

impl From<store::ApprovalRow> for ApprovalRow {
    /// What deciding runs is described by the route (`describe`), from
    /// the continuation.
    fn from(r: store::ApprovalRow) -> Self {
        ApprovalRow {
            id: r.id,
            rule: r.rule,
            key: r.key,
            role: r.role,
            event: r.event,
            requested_at: r.requested_at,
            deadline: r.deadline,
            status: r.status,
            decision: r.decision.map(DecisionRow::from),
            reason: r.reason,
            ended_at: r.ended_at,
            on_approve: Vec::new(),
            on_reject: Vec::new(),
            continuation: r.continuation,
        }
    }
}

impl From<control::RulesetHead> for RulesetHead {
    fn from(r: control::RulesetHead) -> Self {
        RulesetHead {
            name: r.name,
            version: r.version,
            enabled: r.enabled,
            updated_at: r.updated_at,
        }
    }
}

impl From<control::AuditEntry> for AuditEntry {
    fn from(r: control::AuditEntry) -> Self {
        AuditEntry {
            seq: r.seq,
            at: r.at,
            who: r.who,
            what: r.what,
            subject: r.subject,
            detail: r.detail,
        }
    }
}

/// Rows of the store as the API shows them.
pub(crate) fn all<T, U: From<T>>(rows: Vec<T>) -> Vec<U> {
    rows.into_iter().map(U::from).collect()
}
