//! The routes, one module per resource, each handler described by its
//! `#[utoipa::path]`: `routes_and_document` mounts them with utoipa-axum's
//! `OpenApiRouter`, which collects the OpenAPI document from them (`ApiDoc`
//! adds the title, the security schemes and the schemas). Pagination and
//! `Idempotency-Key` are modules of their own.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use steward::boundary::Sources;
use steward::check::{Host, RhaiSourceError};
use steward::engine::{AutoDecide, Collect, Ruleset};
use steward_db::api::{Decided, Page, Retried, Whom};
use steward_db::control::{ControlError, Deployed, EVERY_TENANT};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::{self, Admin, Tenant};
use crate::problem::{answers, parse_json, Body, Params, Problem, Segments};
use crate::wire::{
    ApprovalRow, AuditEntry, DecisionRow, EventRow, NotificationRow, OutboxRow, RulesetHead,
    TaskRow, TimerRow,
};
use crate::App;

/// The routes, and the OpenAPI document collected from their handlers'
/// `#[utoipa::path]` descriptions (`ApiDoc` adds the title, the security
/// schemes and the schemas).
pub fn routes_and_document() -> (Router<App>, utoipa::openapi::OpenApi) {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    let (router, document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
        .routes(routes!(create_tenant))
        .routes(routes!(create_token))
        .routes(routes!(validate))
        .routes(routes!(dry_run))
        .routes(routes!(list_rulesets))
        .routes(routes!(deploy, get_ruleset, delete_ruleset))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(rollback))
        .routes(routes!(disable))
        .routes(routes!(enable))
        .routes(routes!(backtest))
        .routes(routes!(post_events, list_events))
        .routes(routes!(get_event))
        .routes(routes!(get_trace))
        .routes(routes!(list_actions))
        .routes(routes!(retry_action))
        .routes(routes!(list_timers))
        .routes(routes!(list_tasks))
        .routes(routes!(list_notifications))
        .routes(routes!(list_approvals))
        .routes(routes!(get_approval))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(create_link))
        .routes(routes!(crate::page::show, crate::page::decide))
        .routes(routes!(list_audit))
        .routes(routes!(list_roles))
        .routes(routes!(set_role))
        .routes(routes!(list_secrets))
        .routes(routes!(put_secret, delete_secret))
        .routes(routes!(rotate_signing))
        .routes(routes!(list_tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(admin_revoke_token))
        .routes(routes!(set_quotas))
        .routes(routes!(get_tenant))
        .split_for_parts();
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    (router, document)
}

pub fn routes() -> Router<App> {
    routes_and_document().0
}

/// The OpenAPI document, made once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| routes_and_document().1)
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
mod secrets;
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
pub use secrets::*;
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
    components(schemas(
        crate::problem::ProblemDoc, Health, NewTenant, TenantBody, NewToken, TokenBody, Files, Diagnostic,
        Diagnostics, DeployedBody, RulesetHead, RulesetPage, RulesetBody, VersionSummary,
        VersionPage, VersionBody, RollbackBody, ValidateBody, Envelope, Envelopes, Accepted, AcceptedPage,
        EventRow, EventPage, OutboxRow, ActionPage, TimerRow, TimerPage, TaskRow, TaskPage,
        NotificationRow, NotificationPage, ApprovalRow, ApprovalPage, DecisionRow,
        DecisionBody, LinkBody, DryRun, DryRunResult, Rejected, Backtest, ActionSummary,
        BacktestResult, AuditEntry, AuditPage, RoleBody, RoleRow, RoleList, crate::wire::CancelRow,
        SecretSummary, SecretList, SecretValue, Rotation, SigningSecret, TokenSummary, TokenList,
        QuotasBody, UsageBody, TenantInfo, RefusedDestination
    )),
    modifiers(&Security)
)]
pub struct ApiDoc;
