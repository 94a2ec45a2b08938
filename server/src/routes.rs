//! The routes, each described for the OpenAPI document (`ApiDoc`).

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

// ---------------------------------------------------------------------------
// Lists

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

/// `?limit=` (1 to 500, default 50) and `?cursor=` (from `next_cursor`).
fn page(limit: Option<i64>, cursor: &Option<String>) -> Result<Page, Problem> {
    use base64::Engine as _;
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::bad_request(
            "invalid_query",
            format!("`limit` is {limit}; it must be from 1 to {MAX_LIMIT}"),
        ));
    }
    let after = match cursor.as_deref() {
        None | Some("") => None,
        Some(c) => {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| {
                    Problem::bad_request("invalid_cursor", "`cursor` is not one this API gave")
                })?;
            Some(String::from_utf8(bytes).map_err(|_| {
                Problem::bad_request("invalid_cursor", "`cursor` is not one this API gave")
            })?)
        }
    };
    Ok(Page {
        after,
        // One more than asked, to know whether there is a next page.
        limit: limit.saturating_add(1),
    })
}

/// A page of rows, and the cursor of the next one (if there are more).
fn paged<T>(mut rows: Vec<T>, page: &Page, key: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    use base64::Engine as _;
    let wanted = usize::try_from(page.limit.saturating_sub(1)).unwrap_or(0);
    if rows.len() <= wanted {
        return (rows, None);
    }
    rows.truncate(wanted);
    let next = rows
        .last()
        .map(|r| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key(r)));
    (rows, next)
}

macro_rules! page_of {
    ($name:ident, $row:ty) => {
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            pub data: Vec<$row>,
            /// Give it as `?cursor=` for the next page; null on the last.
            pub next_cursor: Option<String>,
        }
    };
}

page_of!(RulesetPage, RulesetHead);
page_of!(VersionPage, VersionSummary);
page_of!(EventPage, EventRow);
page_of!(ActionPage, OutboxRow);
page_of!(TimerPage, TimerRow);
page_of!(TaskPage, TaskRow);
page_of!(NotificationPage, NotificationRow);
page_of!(ApprovalPage, ApprovalRow);
page_of!(AuditPage, AuditEntry);

const SEP: char = '\u{1f}';

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 500, default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

// ---------------------------------------------------------------------------
// Operations

#[utoipa::path(get, path = "/healthz", responses(
        (status = 200, description = "The server and its database answer", body = Health),
        crate::problem::answers::Unavailable,
    ))]
async fn healthz(State(app): State<App>) -> Result<Json<Health>, Problem> {
    app.db(|db| db.program_generation().map_err(Problem::from))
        .await?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus metrics, the engine's included", content_type = "text/plain", body = String)))]
async fn metrics(State(app): State<App>) -> Response {
    let text = app
        .metrics
        .as_ref()
        .map(|render| render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "This API's OpenAPI document", body = Object)))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

// ---------------------------------------------------------------------------
// Idempotency-Key

/// Runs a creating request once per `Idempotency-Key`: a retry with the
/// same key and the same request gets the stored answer; the same key with
/// another request is 422. Answers of 5xx are not kept (a retry runs again).
async fn once<F>(
    app: &App,
    scope: &str,
    headers: &HeaderMap,
    request: (&Method, &Uri, &[u8]),
    run: F,
) -> Response
where
    F: std::future::Future<Output = Response>,
{
    let Some(key) = headers.get("idempotency-key") else {
        return run.await;
    };
    let Ok(key) = key.to_str().map(str::to_string) else {
        return Problem::bad_request("invalid_idempotency_key", "`Idempotency-Key` is not text")
            .into_response();
    };
    if key.is_empty() || key.len() > 255 {
        return Problem::bad_request(
            "invalid_idempotency_key",
            "`Idempotency-Key` must have 1 to 255 characters",
        )
        .into_response();
    }
    let (method, uri, body) = request;
    let digest = auth::digest(&format!(
        "{method} {}\n{}",
        uri.path(),
        String::from_utf8_lossy(body)
    ));
    let (sc, k) = (scope.to_string(), key.clone());
    let kept = app
        .db(move |db| db.kept_answer(&sc, &k).map_err(Problem::from))
        .await;
    match kept {
        Err(p) => return p.into_response(),
        Ok(Some(kept)) if kept.request == digest => {
            let status = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
            let kind = if status.is_success() {
                "application/json"
            } else {
                "application/problem+json"
            };
            let mut r = (status, kept.body).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return r;
        }
        Ok(Some(_)) => {
            return Problem::unprocessable(
                "idempotency_key_reused",
                format!("the Idempotency-Key `{key}` was used with another request"),
            )
            .into_response()
        }
        Ok(None) => {}
    }
    let response = run.await;
    if response.status().is_server_error() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::problem::MAX_BODY * 4).await {
        Ok(b) => b,
        Err(e) => {
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot keep the answer: {e}"),
            )
            .into_response()
        }
    };
    let answer = steward_db::api::KeptAnswer {
        request: digest,
        status: parts.status.as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let scope = scope.to_string();
    if let Err(p) = app
        .db(move |db| db.keep_answer(&scope, &key, &answer).map_err(Problem::from))
        .await
    {
        return p.into_response();
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

fn created<T: Serialize>(status: StatusCode, body: T) -> Response {
    (status, Json(body)).into_response()
}

// ---------------------------------------------------------------------------
// Tenants and tokens

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Letters, digits, `_` and `-`; 1 to 63.
    pub id: String,
}

#[derive(Serialize, ToSchema)]
pub struct TenantBody {
    pub id: String,
}

#[utoipa::path(post, path = "/v1/tenants", request_body = NewTenant, security(("admin" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 201, description = "Made", body = TenantBody),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Conflict,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn create_tenant(
    State(app): State<App>,
    _: Admin,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Body(body, bytes): Body<NewTenant>,
) -> Response {
    let app2 = app.clone();
    once(&app, "*admin", &headers, (&method, &uri, &bytes), async move {
        if !auth::valid_name(&body.id) || body.id == EVERY_TENANT {
            return Problem::unprocessable(
                "invalid_tenant",
                "a tenant id has 1 to 63 letters, digits, `_` or `-`, and starts with a letter or digit",
            )
            .into_response();
        }
        let id = body.id.clone();
        match app2
            .db(move |db| db.create_tenant(&id).map_err(Problem::from))
            .await
        {
            Ok(true) => created(StatusCode::CREATED, TenantBody { id: body.id }),
            Ok(false) => Problem::new(
                StatusCode::CONFLICT,
                "tenant_exists",
                format!("tenant `{}` exists", body.id),
            )
            .into_response(),
            Err(p) => p.into_response(),
        }
    })
    .await
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Of `read`, `events:write`, `rulesets:deploy`, `approvals:decide`;
    /// all of them if absent.
    pub scopes: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenBody {
    /// Shown once: only a hash of it is kept.
    pub token: String,
    pub id: String,
    pub scopes: Vec<String>,
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/tokens", request_body = NewToken, security(("admin" = [])),
    params(("tenant" = String, Path)),
    responses(
        (status = 201, description = "The token, shown once", body = TokenBody),
        answers::BadRequest,
        answers::Unauthorized,
        answers::NotFound,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn create_token(
    State(app): State<App>,
    _: Admin,
    Segments(tenant): Segments<String>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let body: NewToken = if body.iter().all(u8::is_ascii_whitespace) {
        NewToken::default()
    } else {
        parse_json(&body)?
    };
    let scopes = body
        .scopes
        .unwrap_or_else(|| auth::SCOPES.iter().map(|s| s.to_string()).collect());
    if let Some(bad) = scopes.iter().find(|s| !auth::SCOPES.contains(&s.as_str())) {
        return Err(Problem::unprocessable(
            "invalid_scope",
            format!(
                "no scope `{bad}`: the scopes are {}",
                auth::SCOPES.join(", ")
            ),
        ));
    }
    let t = tenant.clone();
    if !app
        .db(move |db| db.tenant_exists(&t).map_err(Problem::from))
        .await?
    {
        return Err(Problem::not_found(format!("no tenant `{tenant}`")));
    }
    let id = auth::random(9)?.replace(['-', '_'], "x");
    let secret = auth::random(32)?;
    let token = format!("{tenant}.{id}.{secret}");
    let hash = auth::digest(&token);
    let (t, i, s) = (tenant.clone(), id.clone(), scopes.clone());
    app.db(move |db| db.create_token(&t, &i, &hash, &s).map_err(Problem::from))
        .await?;
    Ok(created(
        StatusCode::CREATED,
        TokenBody { token, id, scopes },
    ))
}

// ---------------------------------------------------------------------------
// Rulesets

/// Rule files by name (`.stw`), with the Rhai scripts they read (`.rhai`,
/// by the path the rules give, relative to the file that names them).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Files {
    pub files: BTreeMap<String, String>,
}

/// Files to check, alone or as a ruleset of the tenant would be deployed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    pub files: BTreeMap<String, String>,
    /// Check them as this ruleset, with the tenant's other enabled
    /// rulesets (whose declarations they may use), as a deploy would.
    pub ruleset: Option<String>,
}

/// A diagnostic, as `steward check --format json` prints it.
#[derive(Serialize, ToSchema)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub end_line: u32,
    pub end_column: u32,
    /// `error` or `warning`.
    pub severity: String,
    pub code: String,
    pub message: String,
    pub label: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub labels: Vec<serde_json::Value>,
    pub help: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub fix: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct Diagnostics {
    #[schema(value_type = Vec<Diagnostic>)]
    pub diagnostics: serde_json::Value,
}

/// The request's scripts, for the checker.
struct FilesHost<'a>(&'a BTreeMap<String, String>);

impl Host for FilesHost<'_> {
    fn rhai_source(&self, file: &str, path: &str) -> Result<String, RhaiSourceError> {
        if path.starts_with('/') || path.split('/').any(|p| p == "..") {
            return Err(RhaiSourceError::Outside);
        }
        let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
        let full = if dir.is_empty() {
            path.to_string()
        } else {
            format!("{dir}/{path}")
        };
        self.0.get(&full).cloned().ok_or(RhaiSourceError::Missing)
    }
}

/// Checks the request's files alone: their sources (the rule files and
/// the scripts they read) and the diagnostics, as JSON.
fn check_files(
    files: &BTreeMap<String, String>,
) -> Result<(Sources, serde_json::Value, bool), Problem> {
    if files.is_empty() {
        return Err(Problem::unprocessable("no_files", "`files` has no file"));
    }
    let rules: Vec<(String, String)> = files
        .iter()
        .filter(|(name, _)| !name.ends_with(".rhai"))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    let (sources, analysis) = Sources::read(rules, &FilesHost(files));
    let json = steward::boundary::diagnostics_json(&analysis, &analysis.diagnostics);
    let ok = !analysis.has_errors();
    let value = serde_json::to_value(json).unwrap_or_default();
    Ok((sources, value, ok))
}

#[utoipa::path(post, path = "/v1/validate", request_body = ValidateBody, security(("tenant" = [])),
    responses(
        (status = 200, description = "The diagnostics (none: the files check)", body = Diagnostics),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn validate(
    State(app): State<App>,
    who: Tenant,
    Body(body, _): Body<ValidateBody>,
) -> Result<Json<Diagnostics>, Problem> {
    let (sources, diagnostics, _) = check_files(&body.files)?;
    let Some(name) = body.ruleset else {
        return Ok(Json(Diagnostics { diagnostics }));
    };
    if !auth::valid_name(&name) {
        return Err(Problem::unprocessable(
            "invalid_field",
            format!("`ruleset` `{name}` is not a ruleset name (letters, digits, `_`, `-`)"),
        ));
    }
    let tenant = who.tenant.clone();
    app.db(move |db| {
        let composed = db
            .program_with(&tenant, &name, &sources)
            .map_err(Problem::from)?;
        let diagnostics = steward_db::control::diagnose(&composed, &name);
        Ok(Json(Diagnostics {
            diagnostics: serde_json::to_value(diagnostics).unwrap_or_default(),
        }))
    })
    .await
}

#[derive(Serialize, ToSchema)]
pub struct DeployedBody {
    pub name: String,
    /// The ruleset's active version.
    pub version: i64,
    pub enabled: bool,
    /// The digest of the tenant's program now (none: no ruleset enabled).
    pub program: Option<String>,
    /// Timers and approvals cancelled, their rules no longer deployed.
    pub cancelled: Vec<String>,
}

fn deployed_body(name: &str, d: Deployed, enabled: bool) -> DeployedBody {
    DeployedBody {
        name: name.to_string(),
        version: d.version,
        enabled,
        program: d.digest,
        cancelled: d.cancelled,
    }
}

fn ruleset_name(name: &str) -> Result<(), Problem> {
    if auth::valid_name(name) {
        Ok(())
    } else {
        Err(Problem::not_found(format!("no ruleset `{name}`")))
    }
}

#[utoipa::path(put, path = "/v1/rulesets/{name}", request_body = Files, security(("tenant" = ["rulesets:deploy"])),
    params(("name" = String, Path)),
    responses(
        (status = 201, description = "A new version, deployed", body = DeployedBody),
        (status = 200, description = "The same program: no new version", body = DeployedBody),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn deploy(
    State(app): State<App>,
    who: Tenant,
    Segments(name): Segments<String>,
    Body(body, _): Body<Files>,
) -> Result<Response, Problem> {
    who.need("rulesets:deploy")?;
    ruleset_name(&name)?;
    // Checked with the tenant's other rulesets (the store refuses what
    // does not check, with the diagnostics).
    let (sources, _, _) = check_files(&body.files)?;
    let (tenant, n, by) = (who.tenant.clone(), name.clone(), who.who());
    let (d, enabled) = app
        .db(move |db| {
            {
                let d = db.deploy_ruleset(&tenant, &n, &sources, &by)?;
                let enabled = db.ruleset(&tenant, &n)?.is_none_or(|h| h.enabled);
                Ok::<_, ControlError>((d, enabled))
            }
            .map_err(Problem::from)
        })
        .await?;
    let status = if d.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(created(status, deployed_body(&name, d, enabled)))
}

#[utoipa::path(get, path = "/v1/rulesets", security(("tenant" = ["read"])), params(PageQuery),
    responses(
        (status = 200, description = "The tenant's rulesets", body = RulesetPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
async fn list_rulesets(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<PageQuery>,
) -> Result<Json<RulesetPage>, Problem> {
    who.need("read")?;
    let p = page(q.limit, &q.cursor)?;
    let (tenant, pp) = (who.tenant.clone(), p.clone());
    let rows = app
        .db(move |db| {
            db.rulesets(&tenant, pp.after.as_deref(), pp.limit)
                .map_err(Problem::from)
        })
        .await?;
    let (data, next_cursor) = paged(rows, &p, |r| r.name.clone());
    Ok(Json(RulesetPage { data, next_cursor }))
}

#[derive(Serialize, ToSchema)]
pub struct RulesetBody {
    pub name: String,
    pub version: i64,
    pub enabled: bool,
    pub updated_at: String,
    pub files: BTreeMap<String, String>,
}

#[utoipa::path(get, path = "/v1/rulesets/{name}", security(("tenant" = ["read"])), params(("name" = String, Path)),
    responses(
        (status = 200, description = "The active version and its files", body = RulesetBody),
        answers::Unauthorized,
        answers::NotFound,
        crate::problem::answers::Unavailable,
    ))]
async fn get_ruleset(
    State(app): State<App>,
    who: Tenant,
    Segments(name): Segments<String>,
) -> Result<Json<RulesetBody>, Problem> {
    who.need("read")?;
    ruleset_name(&name)?;
    let (tenant, n) = (who.tenant.clone(), name.clone());
    let found = app
        .db(move |db| {
            {
                let Some(head) = db.ruleset(&tenant, &n)? else {
                    return Ok(None);
                };
                let v = db.ruleset_version(&tenant, &n, head.version)?;
                Ok::<_, ControlError>(v.map(|v| (head, v)))
            }
            .map_err(Problem::from)
        })
        .await?;
    let Some((head, v)) = found else {
        return Err(Problem::not_found(format!("no ruleset `{name}`")));
    };
    Ok(Json(RulesetBody {
        name: head.name,
        version: head.version,
        enabled: head.enabled,
        updated_at: head.updated_at,
        files: v.sources.to_files(),
    }))
}

#[utoipa::path(delete, path = "/v1/rulesets/{name}", security(("tenant" = ["rulesets:deploy"])), params(("name" = String, Path)),
    responses(
        (status = 200, description = "Deleted; its rules' pending work cancelled", body = DeployedBody),
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn delete_ruleset(
    State(app): State<App>,
    who: Tenant,
    Segments(name): Segments<String>,
) -> Result<Json<DeployedBody>, Problem> {
    who.need("rulesets:deploy")?;
    ruleset_name(&name)?;
    let (tenant, n, by) = (who.tenant.clone(), name.clone(), who.who());
    let d = app
        .db(move |db| db.delete_ruleset(&tenant, &n, &by).map_err(Problem::from))
        .await?;
    Ok(Json(deployed_body(&name, d, false)))
}

#[derive(Serialize, ToSchema)]
pub struct VersionSummary {
    pub version: i64,
    /// The tenant's program's digest when it was deployed.
    pub program: String,
    pub deployed_at: String,
}

#[utoipa::path(get, path = "/v1/rulesets/{name}/versions", security(("tenant" = ["read"])),
    params(("name" = String, Path), PageQuery),
    responses(
        (status = 200, description = "Its versions, newest first", body = VersionPage),
        answers::BadRequest,
        answers::Unauthorized,
        answers::NotFound,
        crate::problem::answers::Unavailable,
    ))]
async fn list_versions(
    State(app): State<App>,
    who: Tenant,
    Segments(name): Segments<String>,
    Params(q): Params<PageQuery>,
) -> Result<Json<VersionPage>, Problem> {
    who.need("read")?;
    ruleset_name(&name)?;
    let p = page(q.limit, &q.cursor)?;
    let before = match &p.after {
        Some(a) => Some(a.parse::<i64>().map_err(|_| {
            Problem::bad_request("invalid_cursor", "`cursor` is not one this API gave")
        })?),
        None => None,
    };
    let (tenant, n, limit) = (who.tenant.clone(), name.clone(), p.limit);
    let rows = app
        .db(move |db| {
            db.ruleset_versions(&tenant, &n, before, limit)
                .map_err(Problem::from)
        })
        .await?;
    if rows.is_empty() && before.is_none() {
        return Err(Problem::not_found(format!("no ruleset `{name}`")));
    }
    let rows: Vec<VersionSummary> = rows
        .into_iter()
        .map(|v| VersionSummary {
            version: v.version,
            program: v.digest,
            deployed_at: v.deployed_at,
        })
        .collect();
    let (data, next_cursor) = paged(rows, &p, |v| v.version.to_string());
    Ok(Json(VersionPage { data, next_cursor }))
}

#[derive(Serialize, ToSchema)]
pub struct VersionBody {
    pub version: i64,
    pub program: String,
    pub deployed_at: String,
    pub files: BTreeMap<String, String>,
}

#[utoipa::path(get, path = "/v1/rulesets/{name}/versions/{version}", security(("tenant" = ["read"])),
    params(("name" = String, Path), ("version" = i64, Path)),
    responses(
        (status = 200, description = "The version and its files", body = VersionBody),
        answers::Unauthorized,
        answers::NotFound,
        crate::problem::answers::Unavailable,
    ))]
async fn get_version(
    State(app): State<App>,
    who: Tenant,
    Segments((name, version)): Segments<(String, i64)>,
) -> Result<Json<VersionBody>, Problem> {
    who.need("read")?;
    ruleset_name(&name)?;
    let (tenant, n) = (who.tenant.clone(), name.clone());
    let v = app
        .db(move |db| {
            db.ruleset_version(&tenant, &n, version)
                .map_err(Problem::from)
        })
        .await?
        .ok_or_else(|| Problem::not_found(format!("ruleset `{name}` has no version {version}")))?;
    Ok(Json(VersionBody {
        version: v.version,
        program: v.digest,
        deployed_at: v.deployed_at,
        files: v.sources.to_files(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The version whose sources become a new version.
    pub version: i64,
}

#[utoipa::path(post, path = "/v1/rulesets/{name}/rollback", request_body = RollbackBody, security(("tenant" = ["rulesets:deploy"])),
    params(("name" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, description = "A new version with the old one's sources", body = DeployedBody),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn rollback(
    State(app): State<App>,
    who: Tenant,
    Segments(name): Segments<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Body(body, bytes): Body<RollbackBody>,
) -> Response {
    if let Err(p) = who
        .need("rulesets:deploy")
        .and_then(|()| ruleset_name(&name))
    {
        return p.into_response();
    }
    let scope = who.tenant.clone();
    let app2 = app.clone();
    once(
        &app,
        &scope,
        &headers,
        (&method, &uri, &bytes),
        async move {
            let (tenant, n, by) = (who.tenant.clone(), name.clone(), who.who());
            let done = app2
                .db(move |db| {
                    {
                        let d = db.rollback_ruleset(&tenant, &n, body.version, &by)?;
                        let enabled = db.ruleset(&tenant, &n)?.is_none_or(|h| h.enabled);
                        Ok::<_, ControlError>((d, enabled))
                    }
                    .map_err(Problem::from)
                })
                .await;
            match done {
                Ok((d, enabled)) => created(StatusCode::CREATED, deployed_body(&name, d, enabled)),
                Err(p) => p.into_response(),
            }
        },
    )
    .await
}

async fn switch(
    app: App,
    who: Tenant,
    name: String,
    on: bool,
) -> Result<Json<DeployedBody>, Problem> {
    who.need("rulesets:deploy")?;
    ruleset_name(&name)?;
    let (tenant, n, by) = (who.tenant.clone(), name.clone(), who.who());
    let d = app
        .db(move |db| {
            db.enable_ruleset(&tenant, &n, on, &by)
                .map_err(Problem::from)
        })
        .await?;
    Ok(Json(deployed_body(&name, d, on)))
}

#[utoipa::path(post, path = "/v1/rulesets/{name}/disable", security(("tenant" = ["rulesets:deploy"])), params(("name" = String, Path)),
    responses(
        (status = 200, description = "Disabled; its rules' pending work cancelled", body = DeployedBody),
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn disable(
    State(app): State<App>,
    who: Tenant,
    Segments(name): Segments<String>,
) -> Result<Json<DeployedBody>, Problem> {
    switch(app, who, name, false).await
}

#[utoipa::path(post, path = "/v1/rulesets/{name}/enable", security(("tenant" = ["rulesets:deploy"])), params(("name" = String, Path)),
    responses(
        (status = 200, description = "Enabled", body = DeployedBody),
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn enable(
    State(app): State<App>,
    who: Tenant,
    Segments(name): Segments<String>,
) -> Result<Json<DeployedBody>, Problem> {
    switch(app, who, name, true).await
}

// ---------------------------------------------------------------------------
// Events

/// The most events one request may carry.
pub const MAX_EVENTS: usize = 1000;

#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub id: String,
    /// `pending` (new), or the status of the event of that id already there.
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct AcceptedPage {
    pub data: Vec<Accepted>,
}

/// An envelope, as `steward replay` reads them (the tenant is the token's).
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339.
    pub occurred_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// The entity's values before the change this event reports, if the
    /// source knows them: what `previous` and `changed` read when nothing
    /// was remembered for the key yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub previous: Option<serde_json::Value>,
    /// If given, the token's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Envelopes {
    Many(Vec<Envelope>),
    One(Envelope),
}

#[utoipa::path(post, path = "/v1/events", request_body = Envelopes, security(("tenant" = ["events:write"])),
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 202, description = "Accepted; a duplicate id is accepted once", body = AcceptedPage),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::TooLarge,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn post_events(
    State(app): State<App>,
    who: Tenant,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Body(body, bytes): Body<serde_json::Value>,
) -> Response {
    if let Err(p) = who.need("events:write") {
        return p.into_response();
    }
    let scope = who.tenant.clone();
    let app2 = app.clone();
    once(
        &app,
        &scope,
        &headers,
        (&method, &uri, &bytes),
        async move {
            match accept(app2, who, body).await {
                Ok(r) => r,
                Err(p) => p.into_response(),
            }
        },
    )
    .await
}

/// One envelope or an array of them, a bad one named by its place.
fn envelopes(body: serde_json::Value) -> Result<Vec<Envelope>, Problem> {
    let parse = |v: serde_json::Value, at: String| -> Result<Envelope, Problem> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." {
                String::new()
            } else {
                format!(".{path}")
            };
            Problem::bad_request(
                "invalid_field",
                format!("the body at `{at}{path}`: {}", e.into_inner()),
            )
        })
    };
    match body {
        serde_json::Value::Array(items) => {
            if items.len() > MAX_EVENTS {
                return Err(Problem::too_large(format!(
                    "{} events in one request; at most {MAX_EVENTS}",
                    items.len()
                )));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| parse(v, format!("[{i}]")))
                .collect()
        }
        one => Ok(vec![parse(one, String::new())?]),
    }
}

async fn accept(app: App, who: Tenant, body: serde_json::Value) -> Result<Response, Problem> {
    let envelopes = envelopes(body)?;
    let mut lines = Vec::new();
    for (i, mut e) in envelopes.into_iter().enumerate() {
        match &e.tenant {
            Some(t) if *t != who.tenant => {
                return Err(Problem::unprocessable(
                    "wrong_tenant",
                    format!(
                        "event [{i}] `{}` is of tenant `{t}`, not this token's",
                        e.id
                    ),
                ))
            }
            _ => e.tenant = Some(who.tenant.clone()),
        }
        let line = serde_json::to_string(&e)
            .map_err(|err| Problem::bad_request("invalid_field", format!("event [{i}]: {err}")))?;
        lines.push((e.id, line));
    }
    let tenant = who.tenant.clone();
    let data = app
        .db(move |db| {
            let mut out = Vec::new();
            for (i, (id, line)) in lines.iter().enumerate() {
                match db.push_line(line) {
                    Ok(true) => out.push(Accepted {
                        id: id.clone(),
                        status: "pending".into(),
                    }),
                    Ok(false) => {
                        let status = db
                            .event(&tenant, id)
                            .map_err(Problem::from)?
                            .map_or("pending".to_string(), |e| e.status);
                        out.push(Accepted {
                            id: id.clone(),
                            status,
                        })
                    }
                    Err(steward_db::PushError::Envelope(why)) => {
                        return Err(Problem::bad_request(
                            "invalid_envelope",
                            format!("event [{i}] `{id}`: {why}"),
                        ))
                    }
                    Err(steward_db::PushError::Store(e)) => return Err(e.into()),
                }
            }
            Ok(out)
        })
        .await?;
    Ok(created(StatusCode::ACCEPTED, AcceptedPage { data }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// `pending`, `processed` or `rejected`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn one_of(what: &str, value: &Option<String>, allowed: &[&str]) -> Result<(), Problem> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(Problem::bad_request(
            "invalid_query",
            format!("`{what}` is `{v}`; it is one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

#[utoipa::path(get, path = "/v1/events", security(("tenant" = ["read"])), params(EventsQuery),
    responses(
        (status = 200, description = "Events, in the order they arrived", body = EventPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
async fn list_events(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<EventsQuery>,
) -> Result<Json<EventPage>, Problem> {
    who.need("read")?;
    one_of("status", &q.status, &["pending", "processed", "rejected"])?;
    let p = page(q.limit, &q.cursor)?;
    let (tenant, pp) = (who.tenant.clone(), p.clone());
    let rows = app
        .db(move |db| {
            db.events(&tenant, q.event_type.as_deref(), q.status.as_deref(), &pp)
                .map_err(Problem::from)
        })
        .await?;
    let (data, next_cursor) = paged(rows, &p, |e| e.seq.to_string());
    Ok(Json(EventPage { data, next_cursor }))
}

#[utoipa::path(get, path = "/v1/events/{id}", security(("tenant" = ["read"])), params(("id" = String, Path)),
    responses(
        (status = 200, description = "The event, its status and why it was rejected", body = EventRow),
        answers::Unauthorized,
        answers::NotFound,
        crate::problem::answers::Unavailable,
    ))]
async fn get_event(
    State(app): State<App>,
    who: Tenant,
    Segments(id): Segments<String>,
) -> Result<Json<EventRow>, Problem> {
    who.need("read")?;
    let (tenant, i) = (who.tenant.clone(), id.clone());
    app.db(move |db| db.event(&tenant, &i).map_err(Problem::from))
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no event `{id}`")))
}

#[utoipa::path(get, path = "/v1/events/{id}/trace", security(("tenant" = ["read"])), params(("id" = String, Path)),
    responses(
        (status = 200, description = "The explain trace: rules considered and matched, each condition's value and the fields it read, the actions and errors", body = Object),
        answers::Unauthorized,
        answers::NotFound,
        crate::problem::answers::Unavailable,
    ))]
async fn get_trace(
    State(app): State<App>,
    who: Tenant,
    Segments(id): Segments<String>,
) -> Result<Response, Problem> {
    who.need("read")?;
    let (tenant, i) = (who.tenant.clone(), id.clone());
    let trace = app
        .db(move |db| db.stored_trace(&tenant, &i).map_err(Problem::from))
        .await?
        .ok_or_else(|| {
            Problem::not_found(format!(
                "no trace of event `{id}` (no such event, not handled yet, or pruned)"
            ))
        })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], trace).into_response())
}

// ---------------------------------------------------------------------------
// Work in flight

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActionsQuery {
    /// `pending`, `delivered`, `failed` or `dead`.
    pub status: Option<String>,
    pub rule: Option<String>,
    /// RFC 3339: performed at or after.
    pub since: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/actions", security(("tenant" = ["read"])), params(ActionsQuery),
    responses(
        (status = 200, description = "The outbox, oldest first, with attempts and last errors", body = ActionPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
async fn list_actions(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<ActionsQuery>,
) -> Result<Json<ActionPage>, Problem> {
    who.need("read")?;
    one_of(
        "status",
        &q.status,
        &["pending", "delivered", "failed", "dead"],
    )?;
    let since = match &q.since {
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| Problem::bad_request("invalid_query", format!("`since` `{s}`: {e}")))?
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        ),
        None => None,
    };
    let p = page(q.limit, &q.cursor)?;
    let (tenant, pp) = (who.tenant.clone(), p.clone());
    let rows = app
        .db(move |db| {
            db.actions(
                &tenant,
                q.status.as_deref(),
                q.rule.as_deref(),
                since.as_deref(),
                &pp,
            )
            .map_err(Problem::from)
        })
        .await?;
    let (data, next_cursor) = paged(rows, &p, |a| format!("{}{SEP}{}", a.performed_at, a.id));
    Ok(Json(ActionPage { data, next_cursor }))
}

#[utoipa::path(post, path = "/v1/actions/{id}/retry", security(("tenant" = ["events:write"])),
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 202, description = "Back in the outbox, due now", body = OutboxRow),
        answers::BadRequest,
        answers::Unprocessable,
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Conflict,
        crate::problem::answers::Unavailable,
    ))]
async fn retry_action(
    State(app): State<App>,
    who: Tenant,
    Segments(id): Segments<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(p) = who.need("events:write") {
        return p.into_response();
    }
    let scope = who.tenant.clone();
    let app2 = app.clone();
    once(&app, &scope, &headers, (&method, &uri, &[]), async move {
        let (tenant, i, by) = (who.tenant.clone(), id.clone(), who.who());
        match app2
            .db(move |db| db.retry_action(&tenant, &i, &by).map_err(Problem::from))
            .await
        {
            Ok(Retried::Queued(row)) => created(StatusCode::ACCEPTED, *row),
            Ok(Retried::NotDead(status)) => Problem::new(
                StatusCode::CONFLICT,
                "not_dead",
                format!("action `{id}` is {status}; only a dead action is retried"),
            )
            .into_response(),
            Ok(Retried::NotFound) => {
                Problem::not_found(format!("no action `{id}`")).into_response()
            }
            Err(p) => p.into_response(),
        }
    })
    .await
}

#[utoipa::path(get, path = "/v1/timers", security(("tenant" = ["read"])), params(PageQuery),
    responses(
        (status = 200, description = "Pending timers, soonest first, with what would cancel them", body = TimerPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
async fn list_timers(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<PageQuery>,
) -> Result<Json<TimerPage>, Problem> {
    who.need("read")?;
    let p = page(q.limit, &q.cursor)?;
    let (tenant, pp) = (who.tenant.clone(), p.clone());
    let rows = app
        .db(move |db| db.timers(&tenant, &pp).map_err(Problem::from))
        .await?;
    let (mut data, next_cursor) = paged(rows, &p, |t| {
        format!("{}{SEP}{}{SEP}{}{SEP}{}", t.due, t.rule, t.key, t.step)
    });
    for t in &mut data {
        t.id = crate::ids::timer(&t.id);
    }
    Ok(Json(TimerPage { data, next_cursor }))
}

/// Whom a list of tasks or notifications is about.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkQuery {
    /// Only those for this person (a user id or an address), as written.
    pub assignee: Option<String>,
    /// Only those for this role.
    pub role: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl WorkQuery {
    fn whom(&self) -> Whom {
        Whom {
            assignee: self.assignee.clone(),
            role: self.role.clone(),
        }
    }
}

#[utoipa::path(get, path = "/v1/tasks", security(("tenant" = ["read"])), params(WorkQuery),
    responses(
        (status = 200, description = "Tasks, oldest first", body = TaskPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
async fn list_tasks(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<WorkQuery>,
) -> Result<Json<TaskPage>, Problem> {
    who.need("read")?;
    let p = page(q.limit, &q.cursor)?;
    let (tenant, pp, whom) = (who.tenant.clone(), p.clone(), q.whom());
    let rows = app
        .db(move |db| db.tasks(&tenant, &whom, &pp).map_err(Problem::from))
        .await?;
    let (data, next_cursor) = paged(rows, &p, |t| format!("{}{SEP}{}", t.created_at, t.id));
    Ok(Json(TaskPage { data, next_cursor }))
}

#[utoipa::path(get, path = "/v1/notifications", security(("tenant" = ["read"])), params(WorkQuery),
    responses(
        (status = 200, description = "Notifications, oldest first", body = NotificationPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
async fn list_notifications(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<WorkQuery>,
) -> Result<Json<NotificationPage>, Problem> {
    who.need("read")?;
    let p = page(q.limit, &q.cursor)?;
    let (tenant, pp, whom) = (who.tenant.clone(), p.clone(), q.whom());
    let rows = app
        .db(move |db| db.notifications(&tenant, &whom, &pp).map_err(Problem::from))
        .await?;
    let (data, next_cursor) = paged(rows, &p, |n| format!("{}{SEP}{}", n.created_at, n.id));
    Ok(Json(NotificationPage { data, next_cursor }))
}

// ---------------------------------------------------------------------------
// Approvals

/// What a block of a rule runs, as action names: `maybe X` where a
/// condition decides, `later X` in a timer's block, `ask R: X` in another
/// approval's.
fn block_actions(
    rule: &steward::engine::program::Rule,
    block: usize,
    prefix: &str,
    out: &mut Vec<String>,
) {
    use steward::engine::program::Op;
    fn walk(
        rule: &steward::engine::program::Rule,
        ops: &[Op],
        prefix: &str,
        out: &mut Vec<String>,
        depth: u32,
    ) {
        if depth > 16 {
            return;
        }
        for op in ops {
            match op {
                Op::Let(_) => {}
                Op::Act(a) => match &a.emit {
                    Some((event_type, _)) => out.push(format!("{prefix}emit {event_type}")),
                    None => out.push(format!("{prefix}{}", a.action)),
                },
                Op::If {
                    branches,
                    otherwise,
                } => {
                    let maybe = format!("{prefix}maybe ");
                    for (_, ops) in branches {
                        walk(rule, ops, &maybe, out, depth + 1);
                    }
                    walk(rule, otherwise, &maybe, out, depth + 1);
                }
                Op::Timer(t) => {
                    if let Some(ops) = rule.blocks.get(t.block) {
                        walk(rule, ops, &format!("{prefix}later "), out, depth + 1);
                    }
                }
                Op::Every(i) => {
                    let block = rule.repeats.get(*i).and_then(|r| rule.blocks.get(r.block));
                    if let Some(ops) = block {
                        walk(rule, ops, &format!("{prefix}each tick "), out, depth + 1);
                    }
                }
                Op::Approval(a) => out.push(format!("{prefix}ask {}", a.role)),
                Op::Stop => {}
            }
        }
    }
    if let Some(ops) = rule.blocks.get(block) {
        walk(rule, ops, prefix, out, 0);
    }
}

/// Fills in what approving and rejecting each pending approval would run,
/// from the program that asked.
fn describe_approvals(
    db: &dyn crate::Backend,
    programs: &crate::Programs,
    tenant: &str,
    rows: &mut [ApprovalRow],
) {
    use steward::engine::program::{BlockRef, Branch};
    for row in rows.iter_mut() {
        let Some(text) = row.continuation.take() else {
            continue;
        };
        let Ok(stored) = serde_json::from_str::<steward::engine::stored::StoredContinuation>(&text)
        else {
            continue;
        };
        let Some(rules) = programs.get(&stored.version, || {
            db.program_sources(tenant, &stored.version).ok().flatten()
        }) else {
            continue;
        };
        let Some(rule) = rules.rules.iter().find(|r| *r.name == *stored.rule) else {
            continue;
        };
        let find = |b: BlockRef| rule.block_steps.iter().position(|x| *x == b);
        if let Some(i) = find(stored.block) {
            block_actions(rule, i, "", &mut row.on_approve);
        }
        let otherwise = BlockRef {
            step: stored.block.step,
            branch: Branch::Else,
        };
        if let Some(i) = find(otherwise) {
            block_actions(rule, i, "", &mut row.on_reject);
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalsQuery {
    /// `pending`, `approved`, `rejected`, `expired` or `cancelled`; all if
    /// absent.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/approvals", security(("tenant" = ["read"])), params(ApprovalsQuery),
    responses(
        (status = 200, description = "Approvals, by id", body = ApprovalPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
async fn list_approvals(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<ApprovalsQuery>,
) -> Result<Json<ApprovalPage>, Problem> {
    who.need("read")?;
    one_of(
        "status",
        &q.status,
        &["pending", "approved", "rejected", "expired", "cancelled"],
    )?;
    let p = page(q.limit, &q.cursor)?;
    let (tenant, pp) = (who.tenant.clone(), p.clone());
    let programs = app.programs.clone();
    let rows = app
        .db(move |db| {
            let mut rows = db
                .approvals(&tenant, q.status.as_deref(), &pp)
                .map_err(Problem::from)?;
            describe_approvals(db, &programs, &tenant, &mut rows);
            Ok(rows)
        })
        .await?;
    let (mut data, next_cursor) = paged(rows, &p, |a| a.id.clone());
    for a in &mut data {
        a.id = crate::ids::approval(&a.id);
    }
    Ok(Json(ApprovalPage { data, next_cursor }))
}

#[utoipa::path(get, path = "/v1/approvals/{id}", security(("tenant" = ["read"])), params(("id" = String, Path, description = "The approval's id as listed (`apr_...`), as it is")),
    responses(
        (status = 200, description = "The approval", body = ApprovalRow),
        answers::Unauthorized,
        answers::NotFound,
        crate::problem::answers::Unavailable,
    ))]
async fn get_approval(
    State(app): State<App>,
    who: Tenant,
    Segments(id): Segments<String>,
) -> Result<Json<ApprovalRow>, Problem> {
    who.need("read")?;
    let (tenant, i) = (who.tenant.clone(), crate::ids::approval_from_path(&id));
    let programs = app.programs.clone();
    app.db(move |db| {
        let mut row = db.approval_row(&tenant, &i).map_err(Problem::from)?;
        if let Some(row) = row.as_mut() {
            describe_approvals(db, &programs, &tenant, std::slice::from_mut(row));
            row.id = crate::ids::approval(&row.id);
        }
        Ok(row)
    })
    .await?
    .map(Json)
    .ok_or_else(|| Problem::not_found(format!("no approval `{id}`")))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Who decides.
    pub by: String,
    #[serde(default)]
    pub comment: String,
}

/// Records a decision: 202, or 409 with the one recorded first, or 410
/// after the deadline.
pub async fn decide(
    app: &App,
    tenant: &str,
    id: &str,
    approved: bool,
    by: &str,
    via: &str,
    comment: &str,
) -> Result<DecisionRow, Problem> {
    if by.trim().is_empty() {
        return Err(Problem::unprocessable("invalid_field", "`by` is empty"));
    }
    let (t, i, b, v, c) = (
        tenant.to_string(),
        id.to_string(),
        by.to_string(),
        via.to_string(),
        comment.to_string(),
    );
    match app
        .db(move |db| {
            db.request_decision(&t, &i, approved, &b, &v, &c)
                .map_err(Problem::from)
        })
        .await?
    {
        Decided::Recorded(d) => Ok(d),
        Decided::Already(d) => Err(Problem::new(
            StatusCode::CONFLICT,
            "already_decided",
            format!("approval `{id}` was {} by {} first", d.decision, d.by),
        )
        .with("decision", serde_json::to_value(&d).unwrap_or_default())),
        Decided::Expired(deadline) => Err(Problem::new(
            StatusCode::GONE,
            "expired",
            format!("approval `{id}`'s deadline passed at {deadline}"),
        )),
        Decided::Ended { status, reason } => Err(Problem::new(
            StatusCode::CONFLICT,
            "not_pending",
            match reason {
                Some(why) => format!("approval `{id}` is {status}: {why}"),
                None => format!("approval `{id}` is {status}"),
            },
        )),
        Decided::NotFound => Err(Problem::not_found(format!("no approval `{id}`"))),
    }
}

#[allow(clippy::too_many_arguments)]
async fn decide_route(
    app: App,
    who: Tenant,
    id: String,
    approved: bool,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: DecisionBody,
    bytes: axum::body::Bytes,
) -> Response {
    if let Err(p) = who.need("approvals:decide") {
        return p.into_response();
    }
    let scope = who.tenant.clone();
    let app2 = app.clone();
    once(
        &app,
        &scope,
        &headers,
        (&method, &uri, &bytes),
        async move {
            match decide(
                &app2,
                &who.tenant,
                &id,
                approved,
                &body.by,
                "api",
                &body.comment,
            )
            .await
            {
                Ok(d) => created(StatusCode::ACCEPTED, d),
                Err(p) => p.into_response(),
            }
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/approvals/{id}/approve", request_body = DecisionBody, security(("tenant" = ["approvals:decide"])),
    params(("id" = String, Path, description = "The approval's id as listed (`apr_...`), as it is"), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 202, description = "Recorded; the engine runs the approved block", body = DecisionRow),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Conflict,
        answers::Gone,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn approve(
    State(app): State<App>,
    who: Tenant,
    Segments(id): Segments<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Body(body, bytes): Body<DecisionBody>,
) -> Response {
    let id = crate::ids::approval_from_path(&id);
    decide_route(app, who, id, true, method, uri, headers, body, bytes).await
}

#[utoipa::path(post, path = "/v1/approvals/{id}/reject", request_body = DecisionBody, security(("tenant" = ["approvals:decide"])),
    params(("id" = String, Path, description = "The approval's id as listed (`apr_...`), as it is"), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 202, description = "Recorded; the engine runs the `else` block", body = DecisionRow),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Conflict,
        answers::Gone,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn reject(
    State(app): State<App>,
    who: Tenant,
    Segments(id): Segments<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Body(body, bytes): Body<DecisionBody>,
) -> Response {
    let id = crate::ids::approval_from_path(&id);
    decide_route(app, who, id, false, method, uri, headers, body, bytes).await
}

#[derive(Serialize, ToSchema)]
pub struct LinkBody {
    /// Opens a page that shows the approval and asks; only its button
    /// decides. Single use; shown once (only a hash is kept).
    pub url: String,
    pub expires_at: String,
}

#[utoipa::path(post, path = "/v1/approvals/{id}/links", security(("tenant" = ["approvals:decide"])),
    params(("id" = String, Path, description = "The approval's id as listed (`apr_...`), as it is")),
    responses(
        (status = 201, description = "A link, valid until the deadline", body = LinkBody),
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        crate::problem::answers::Unavailable,
    ))]
async fn create_link(
    State(app): State<App>,
    who: Tenant,
    Segments(id): Segments<String>,
) -> Result<Response, Problem> {
    who.need("approvals:decide")?;
    let id = crate::ids::approval_from_path(&id);
    let link = crate::page::make_link(&app, &who.tenant, &id).await?;
    Ok(created(StatusCode::CREATED, link))
}

// ---------------------------------------------------------------------------
// Dry runs and backtests

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRun {
    /// Rule files to run; the tenant's active program if absent.
    pub files: Option<BTreeMap<String, String>>,
    pub events: Vec<Envelope>,
    /// Run the virtual clock on to this time (RFC 3339), firing timers.
    pub until: Option<String>,
    /// `approve` or `reject` every approval at once; else they stay pending.
    pub approvals: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DryRunResult {
    /// The actions that would run, in order.
    #[schema(value_type = Vec<Object>)]
    pub actions: Vec<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<serde_json::Value>,
    /// Events that would be rejected, with the reason.
    pub rejected: Vec<Rejected>,
}

#[derive(Serialize, ToSchema)]
pub struct Rejected {
    pub id: String,
    pub reason: String,
}

/// The tenant's program as it runs: its own, else the tenant `*`'s.
fn active_program(
    db: &dyn crate::Backend,
    programs: &crate::Programs,
    tenant: &str,
) -> Result<Arc<Ruleset>, Problem> {
    let row = match db.program_of(tenant).map_err(Problem::from)? {
        Some(row) => Some(row),
        None => db.program_of(EVERY_TENANT).map_err(Problem::from)?,
    };
    match row.and_then(|r| r.program) {
        Some((digest, sources)) => programs.get(&digest, || Some(sources)).ok_or_else(|| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "program_broken",
                "the tenant's stored program does not build",
            )
        }),
        None => steward::engine::compile(&steward::check::analyze(&[], &steward::check::NoFiles))
            .map(Arc::new)
            .map_err(|_| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the standard library does not check",
                )
            }),
    }
}

fn program_of(files: &BTreeMap<String, String>) -> Result<Arc<Ruleset>, Problem> {
    let (sources, diagnostics, ok) = check_files(files)?;
    if !ok {
        return Err(
            Problem::unprocessable("rules_invalid", "the rules do not check")
                .with("diagnostics", diagnostics),
        );
    }
    sources.build().rules.map_err(|e| {
        Problem::unprocessable("rules_invalid", format!("the rules do not compile: {e}"))
    })
}

/// Runs events through `rules` on a virtual clock and a store in memory.
fn simulate(
    rules: Arc<Ruleset>,
    lines: &[(String, String)],
    until: Option<chrono::DateTime<chrono::Utc>>,
    decide: AutoDecide,
) -> Result<(Collect, Vec<Rejected>), Problem> {
    let mut engine = Engine::new(rules.clone(), MemoryStore::new());
    engine.auto_decide = decide;
    let mut sink = Collect::default();
    let mut rejected = Vec::new();
    for (id, line) in lines {
        match steward::engine::decode_event(rules.shapes(), line) {
            Err(why) => rejected.push(Rejected {
                id: id.clone(),
                reason: why.to_string(),
            }),
            Ok(event) => {
                if let Err(why) = engine.handle(event, &mut sink) {
                    rejected.push(Rejected {
                        id: id.clone(),
                        reason: why.to_string(),
                    });
                }
            }
        }
    }
    if let Some(t) = until {
        engine
            .advance_to(t, &mut sink)
            .map_err(|e| Problem::unprocessable("invalid_field", format!("`until`: {e}")))?;
    }
    Ok((sink, rejected))
}

fn time_arg(
    what: &str,
    text: &Option<String>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Problem> {
    text.as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| {
                    Problem::unprocessable("invalid_field", format!("`{what}` `{t}`: {e}"))
                })
        })
        .transpose()
}

#[utoipa::path(post, path = "/v1/dry-run", request_body = DryRun, security(("tenant" = ["read"])),
    responses(
        (status = 200, description = "What would run; nothing is stored or sent", body = DryRunResult),
        answers::BadRequest,
        answers::Unauthorized,
        answers::TooLarge,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn dry_run(
    State(app): State<App>,
    who: Tenant,
    Body(body, _): Body<DryRun>,
) -> Result<Json<DryRunResult>, Problem> {
    who.need("read")?;
    if body.events.len() > MAX_EVENTS {
        return Err(Problem::too_large(format!(
            "{} events in one request; at most {MAX_EVENTS}",
            body.events.len()
        )));
    }
    let until = time_arg("until", &body.until)?;
    let decide = match body.approvals.as_deref() {
        None | Some("none") => AutoDecide::None,
        Some("approve") => AutoDecide::Approve,
        Some("reject") => AutoDecide::Reject,
        Some(other) => {
            return Err(Problem::unprocessable(
                "invalid_field",
                format!("`approvals` is `{other}`; it is `approve`, `reject` or `none`"),
            ))
        }
    };
    let mut lines = Vec::new();
    for mut e in body.events {
        e.tenant = Some(who.tenant.clone());
        let line = serde_json::to_string(&e).unwrap_or_default();
        lines.push((e.id, line));
    }
    let tenant = who.tenant.clone();
    let files = body.files;
    let programs = app.programs.clone();
    app.db(move |db| {
        let rules = match &files {
            Some(files) => program_of(files)?,
            None => active_program(db, &programs, &tenant)?,
        };
        let (sink, rejected) = simulate(rules, &lines, until, decide)?;
        Ok(Json(DryRunResult {
            actions: sink
                .actions
                .iter()
                .map(steward::boundary::action_json)
                .collect(),
            errors: sink
                .errors
                .iter()
                .map(steward::boundary::rule_error_json)
                .collect(),
            rejected,
        }))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Backtest {
    /// The candidate files of this ruleset.
    pub files: BTreeMap<String, String>,
    /// Events that occurred at or after this time (RFC 3339).
    pub from: Option<String>,
    /// ... and before this one.
    pub to: Option<String>,
}

/// An action, as backtests compare them (keys differ between versions).
#[derive(Serialize, ToSchema, Clone)]
pub struct ActionSummary {
    pub rule: String,
    pub event: String,
    pub action: String,
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct ActionSummaryKey(String, String, String, String);

#[derive(Serialize, ToSchema)]
pub struct BacktestResult {
    /// Stored events replayed.
    pub events: usize,
    /// What the candidate would do that the active version does not.
    pub added: Vec<ActionSummary>,
    /// What the active version does that the candidate would not.
    pub removed: Vec<ActionSummary>,
    pub unchanged: usize,
}

/// The most stored events one backtest replays.
pub const MAX_BACKTEST_EVENTS: usize = 20_000;

#[utoipa::path(post, path = "/v1/rulesets/{name}/backtest", request_body = Backtest, security(("tenant" = ["read"])),
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The difference in actions between the candidate and the active version, over the tenant's stored events", body = BacktestResult),
        answers::BadRequest,
        answers::Unauthorized,
        answers::NotFound,
        answers::TooLarge,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn backtest(
    State(app): State<App>,
    who: Tenant,
    Segments(name): Segments<String>,
    Body(body, _): Body<Backtest>,
) -> Result<Json<BacktestResult>, Problem> {
    who.need("read")?;
    ruleset_name(&name)?;
    let from = time_arg("from", &body.from)?;
    let to = time_arg("to", &body.to)?;
    let (candidate, _, _) = check_files(&body.files)?;
    let tenant = who.tenant.clone();
    let programs = app.programs.clone();
    app.db(move |db| {
        let active = active_program(db, &programs, &tenant)?;
        // The candidate program: the tenant's enabled rulesets, this one
        // replaced (or added).
        let composed = db
            .program_with(&tenant, &name, &candidate)
            .map_err(Problem::from)?;
        let candidate = match composed.build().rules {
            Ok(rules) => rules,
            Err(steward::boundary::BuildError::Invalid(_)) => {
                return Err(Problem::unprocessable(
                    "rules_invalid",
                    "the candidate does not check with the tenant's other rulesets",
                )
                .with(
                    "diagnostics",
                    serde_json::to_value(steward_db::control::diagnose(&composed, &name))
                        .unwrap_or_default(),
                ))
            }
        };
        // The stored events in the range, in the order they arrived.
        let mut lines = Vec::new();
        let mut page = Page { after: None, limit: 500 };
        loop {
            let rows = db.events(&tenant, None, None, &page).map_err(Problem::from)?;
            let Some(last) = rows.last() else { break };
            page.after = Some(last.seq.to_string());
            for e in rows {
                let Ok(at) = chrono::DateTime::parse_from_rfc3339(&e.occurred_at) else {
                    continue;
                };
                let at = at.with_timezone(&chrono::Utc);
                if from.is_some_and(|f| at < f) || to.is_some_and(|t| at >= t) {
                    continue;
                }
                let envelope = serde_json::json!({
                    "id": e.id, "tenant": tenant, "type": e.event_type,
                    "occurred_at": e.occurred_at, "key": e.key, "payload": e.payload,
                });
                lines.push((e.id, envelope.to_string()));
                if lines.len() > MAX_BACKTEST_EVENTS {
                    return Err(Problem::too_large(format!(
                        "more than {MAX_BACKTEST_EVENTS} stored events in the range; narrow `from` and `to`"
                    )));
                }
            }
        }
        let summary = |sink: &Collect| -> Vec<ActionSummary> {
            let mut v: Vec<ActionSummary> = sink
                .actions
                .iter()
                .map(|a| ActionSummary {
                    rule: a.rule.to_string(),
                    event: a.event.to_string(),
                    action: a.action.to_string(),
                    args: serde_json::Value::Object(a.args.clone()),
                })
                .collect();
            v.sort_by_key(|a| ActionSummaryKey(a.rule.clone(), a.event.clone(), a.action.clone(), a.args.to_string()));
            v
        };
        let (old, _) = simulate(active, &lines, to, AutoDecide::None)?;
        let (new, _) = simulate(candidate, &lines, to, AutoDecide::None)?;
        let (old, new) = (summary(&old), summary(&new));
        let mut removed = Vec::new();
        let mut added = Vec::new();
        let mut unchanged = 0;
        let (mut i, mut j) = (0, 0);
        let key = |a: &ActionSummary| ActionSummaryKey(a.rule.clone(), a.event.clone(), a.action.clone(), a.args.to_string());
        while i < old.len() || j < new.len() {
            match (old.get(i), new.get(j)) {
                (Some(a), Some(b)) if key(a) == key(b) => {
                    unchanged += 1;
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if key(a) < key(b) => {
                    removed.push(a.clone());
                    i += 1;
                }
                (Some(_), Some(b)) => {
                    added.push(b.clone());
                    j += 1;
                }
                (Some(a), None) => {
                    removed.push(a.clone());
                    i += 1;
                }
                (None, Some(b)) => {
                    added.push(b.clone());
                    j += 1;
                }
                (None, None) => break,
            }
        }
        Ok(Json(BacktestResult {
            events: lines.len(),
            added,
            removed,
            unchanged,
        }))
    })
    .await
}

// ---------------------------------------------------------------------------
// Roles

/// Who holds a role: the addresses an approval asked of it is mailed to,
/// each mail with its own link.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    pub emails: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RoleRow {
    pub role: String,
    pub emails: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RoleList {
    pub data: Vec<RoleRow>,
    /// Always null: a tenant's roles come in one page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(put, path = "/v1/roles/{role}", request_body = RoleBody, security(("tenant" = ["rulesets:deploy"])),
    params(("role" = String, Path)),
    responses(
        (status = 200, description = "Set", body = RoleRow),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
async fn set_role(
    State(app): State<App>,
    who: Tenant,
    Segments(role): Segments<String>,
    Body(body, _): Body<RoleBody>,
) -> Result<Json<RoleRow>, Problem> {
    who.need("rulesets:deploy")?;
    if !auth::valid_name(&role) {
        return Err(Problem::not_found(format!("no role `{role}`")));
    }
    if body.emails.len() > 100 {
        return Err(Problem::unprocessable(
            "invalid_field",
            "at most 100 addresses a role",
        ));
    }
    for e in &body.emails {
        if e.parse::<lettre::Address>().is_err() {
            return Err(Problem::unprocessable(
                "invalid_field",
                format!("`{e}` is not a mail address"),
            ));
        }
    }
    let (tenant, r, emails, by) = (
        who.tenant.clone(),
        role.clone(),
        body.emails.clone(),
        who.who(),
    );
    app.db(move |db| {
        db.set_role(&tenant, &r, &emails, &by)
            .map_err(Problem::from)
    })
    .await?;
    Ok(Json(RoleRow {
        role,
        emails: body.emails,
    }))
}

#[utoipa::path(get, path = "/v1/roles", security(("tenant" = ["read"])),
    responses(
        (status = 200, description = "The tenant's roles and who holds them", body = RoleList),
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
async fn list_roles(State(app): State<App>, who: Tenant) -> Result<Json<RoleList>, Problem> {
    who.need("read")?;
    let tenant = who.tenant.clone();
    let rows = app
        .db(move |db| db.roles(&tenant).map_err(Problem::from))
        .await?;
    Ok(Json(RoleList {
        data: rows
            .into_iter()
            .map(|(role, emails)| RoleRow { role, emails })
            .collect(),
        next_cursor: None,
    }))
}

// ---------------------------------------------------------------------------
// Audit

#[utoipa::path(get, path = "/v1/audit", security(("tenant" = ["read"])), params(PageQuery),
    responses(
        (status = 200, description = "Who did what, when; newest first", body = AuditPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
async fn list_audit(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<PageQuery>,
) -> Result<Json<AuditPage>, Problem> {
    who.need("read")?;
    let p = page(q.limit, &q.cursor)?;
    let before = match &p.after {
        Some(a) => Some(a.parse::<i64>().map_err(|_| {
            Problem::bad_request("invalid_cursor", "`cursor` is not one this API gave")
        })?),
        None => None,
    };
    let (tenant, limit) = (who.tenant.clone(), p.limit);
    let rows = app
        .db(move |db| db.audit_log(&tenant, before, limit).map_err(Problem::from))
        .await?;
    let (data, next_cursor) = paged(rows, &p, |e| e.seq.to_string());
    Ok(Json(AuditPage { data, next_cursor }))
}

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
