//! The routes, one module per resource, each handler described for the
//! OpenAPI document (`ApiDoc`, below, lists them); pagination and
//! `Idempotency-Key` are modules of their own.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use steward::boundary::Sources;
use steward::check::{Host, RhaiSourceError};
use steward::engine::{AutoDecide, Collect, Engine, MemoryStore, Ruleset};
use steward_db::api::{
    ApprovalRow, Decided, DecisionRow, EventRow, NotificationRow, OutboxRow, Page, Retried,
    TaskRow, TimerRow, Whom,
};
use steward_db::control::{AuditEntry, ControlError, Deployed, RulesetHead, EVERY_TENANT};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::{self, Admin, Tenant};
use crate::problem::{answers, parse_json, Body, Params, Problem, Segments};
use crate::App;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/tenants", post(create_tenant))
        .route("/v1/tenants/{tenant}/tokens", post(create_token))
        .route("/v1/validate", post(validate))
        .route("/v1/dry-run", post(dry_run))
        .route("/v1/rulesets", get(list_rulesets))
        .route(
            "/v1/rulesets/{name}",
            put(deploy).get(get_ruleset).delete(delete_ruleset),
        )
        .route("/v1/rulesets/{name}/versions", get(list_versions))
        .route("/v1/rulesets/{name}/versions/{version}", get(get_version))
        .route("/v1/rulesets/{name}/rollback", post(rollback))
        .route("/v1/rulesets/{name}/disable", post(disable))
        .route("/v1/rulesets/{name}/enable", post(enable))
        .route("/v1/rulesets/{name}/backtest", post(backtest))
        .route("/v1/events", post(post_events).get(list_events))
        .route("/v1/events/{id}", get(get_event))
        .route("/v1/events/{id}/trace", get(get_trace))
        .route("/v1/actions", get(list_actions))
        .route("/v1/actions/{id}/retry", post(retry_action))
        .route("/v1/timers", get(list_timers))
        .route("/v1/tasks", get(list_tasks))
        .route("/v1/notifications", get(list_notifications))
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/approvals/{id}", get(get_approval))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/approvals/{id}/reject", post(reject))
        .route("/v1/approvals/{id}/links", post(create_link))
        .route(
            "/approve/{token}",
            get(crate::page::show).post(crate::page::decide),
        )
        .route("/v1/audit", get(list_audit))
        .route("/v1/roles", get(list_roles))
        .route("/v1/roles/{role}", put(set_role))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found(uri: Uri) -> Problem {
    Problem::not_found(format!("no route {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}

mod approvals;
mod audit;
mod events;
mod idempotency;
mod ops;
mod pagination;
mod roles;
mod rulesets;
mod simulate;
mod tenants;
mod work;

pub use approvals::*;
pub use audit::*;
pub use events::*;
use idempotency::*;
pub use ops::*;
pub use pagination::*;
pub use roles::*;
pub use rulesets::*;
pub use simulate::*;
pub use tenants::*;
pub use work::*;

// ---------------------------------------------------------------------------
// The document

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what.to_string()))
                    .build(),
            )
        };
        components.add_security_scheme("admin", bearer("STEWARD_ADMIN_TOKEN"));
        components.add_security_scheme("tenant", bearer("A tenant's token (TENANT.ID.SECRET)"));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Steward", description = "Deploy and operate Steward rules: tenants and tokens, rulesets and their versions, events, the outbox, timers, approvals, dry runs and backtests, the audit log. Errors are RFC 9457 problem details with a stable `code`."),
    paths(
        healthz, metrics, openapi, create_tenant, create_token, validate, deploy, list_rulesets,
        get_ruleset, delete_ruleset, list_versions, get_version, rollback, disable, enable,
        backtest, post_events, list_events, get_event, get_trace, list_actions, retry_action,
        list_timers, list_tasks, list_notifications, list_approvals, get_approval, approve,
        reject, create_link, dry_run, list_audit, set_role, list_roles, crate::page::show, crate::page::decide
    ),
    components(schemas(
        crate::problem::ProblemDoc, Health, NewTenant, TenantBody, NewToken, TokenBody, Files, Diagnostic,
        Diagnostics, DeployedBody, RulesetHead, RulesetPage, RulesetBody, VersionSummary,
        VersionPage, VersionBody, RollbackBody, ValidateBody, Envelope, Envelopes, Accepted, AcceptedPage,
        EventRow, EventPage, OutboxRow, ActionPage, TimerRow, TimerPage, TaskRow, TaskPage,
        NotificationRow, NotificationPage, ApprovalRow, ApprovalPage, DecisionRow,
        DecisionBody, LinkBody, DryRun, DryRunResult, Rejected, Backtest, ActionSummary,
        BacktestResult, AuditEntry, AuditPage, RoleBody, RoleRow, RoleList, steward_db::api::CancelRow
    )),
    modifiers(&Security)
)]
pub struct ApiDoc;
