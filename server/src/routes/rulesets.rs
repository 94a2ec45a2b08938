//! Rulesets: validate, deploy, versions, rollback, enable and disable.

use std::collections::BTreeSet;

use super::*;

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
    /// Webhooks this server will never deliver (a refused address, or
    /// `localhost`, written in the URL): warnings, not errors.
    pub destinations: Vec<RefusedDestination>,
}

/// A webhook action whose URL this server will never deliver to, and why.
#[derive(Serialize, ToSchema)]
pub struct RefusedDestination {
    pub action: String,
    pub url: String,
    pub why: String,
}

/// The webhooks of `sources` (when they build) that this server will
/// never deliver, by action.
pub(crate) fn refused_destinations(app: &App, sources: &Sources) -> Vec<RefusedDestination> {
    let Ok(rules) = sources.build().rules else {
        return Vec::new();
    };
    let mut out: Vec<RefusedDestination> = rules
        .webhooks
        .iter()
        .filter_map(|(action, hook)| {
            app.destinations
                .never(&hook.url)
                .map(|why| RefusedDestination {
                    action: action.to_string(),
                    url: hook.url.clone(),
                    why,
                })
        })
        .collect();
    out.sort_by(|a, b| a.action.cmp(&b.action));
    out
}

/// The request's scripts, for the checker.
pub(crate) struct FilesHost<'a>(&'a BTreeMap<String, String>);

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

/// The names of the secrets `tenant` has set, which its rules' webhook
/// headers may name.
pub(crate) fn secret_names(
    db: &dyn crate::Backend,
    tenant: &str,
) -> Result<BTreeSet<String>, Problem> {
    Ok(db
        .secrets(tenant)
        .map_err(Problem::from)?
        .into_iter()
        .map(|s| s.name)
        .collect())
}

/// Checks the request's files alone: their sources (the rule files and
/// the scripts they read) and the diagnostics, as JSON; knowing the
/// tenant's `secrets` when given.
pub(crate) fn check_files(
    files: &BTreeMap<String, String>,
    secrets: Option<&BTreeSet<String>>,
) -> Result<(Sources, serde_json::Value, bool), Problem> {
    if files.is_empty() {
        return Err(Problem::unprocessable("no_files", "`files` has no file"));
    }
    let rules: Vec<(String, String)> = files
        .iter()
        .filter(|(name, _)| !name.ends_with(".rhai"))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    let host = FilesHost(files);
    let (sources, analysis) = match secrets {
        Some(secrets) => Sources::read(
            rules,
            &steward::boundary::Knowing {
                inner: &host,
                secrets,
            },
        ),
        None => Sources::read(rules, &host),
    };
    let json = steward::boundary::diagnostics_json(&analysis, &analysis.diagnostics);
    let ok = !analysis.has_errors();
    let value = serde_json::to_value(json).unwrap_or_default();
    Ok((sources, value, ok))
}

/// [`check_files`] on one of tokio's blocking threads: the checker (and a
/// Rhai script's compilation) never holds a thread that serves requests.
pub(crate) async fn checked(
    files: BTreeMap<String, String>,
    secrets: Option<BTreeSet<String>>,
) -> Result<(Sources, serde_json::Value, bool), Problem> {
    tokio::task::spawn_blocking(move || check_files(&files, secrets.as_ref()))
        .await
        .map_err(crate::work_stopped)?
}

#[utoipa::path(post, path = "/v1/validate", request_body = ValidateBody, security(("tenant" = [])),
    responses(
        (status = 200, description = "The diagnostics (none: the files check)", body = Diagnostics),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn validate(
    State(app): State<App>,
    who: Tenant,
    Body(body, _): Body<ValidateBody>,
) -> Result<Json<Diagnostics>, Problem> {
    let tenant = who.tenant.clone();
    let secrets = app.db(move |db| secret_names(db, &tenant)).await?;
    let (sources, diagnostics, _) = checked(body.files, Some(secrets.clone())).await?;
    let Some(name) = body.ruleset else {
        let app = app.clone();
        let destinations =
            tokio::task::spawn_blocking(move || refused_destinations(&app, &sources))
                .await
                .map_err(crate::work_stopped)?;
        return Ok(Json(Diagnostics {
            diagnostics,
            destinations,
        }));
    };
    if !auth::valid_name(&name) {
        return Err(Problem::unprocessable(
            "invalid_field",
            format!("`ruleset` `{name}` is not a ruleset name (letters, digits, `_`, `-`)"),
        ));
    }
    let tenant = who.tenant.clone();
    let app2 = app.clone();
    app.db(move |db| {
        let composed = db
            .program_with(&tenant, &name, &sources)
            .map_err(Problem::from)?;
        let diagnostics = steward_db::control::diagnose(&composed, &name, Some(&secrets));
        Ok(Json(Diagnostics {
            diagnostics: serde_json::to_value(diagnostics).unwrap_or_default(),
            destinations: refused_destinations(&app2, &composed),
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
    /// Webhooks of the program this server will never deliver (warnings).
    pub destinations: Vec<RefusedDestination>,
}

pub(crate) fn deployed_body(name: &str, d: Deployed, enabled: bool) -> DeployedBody {
    DeployedBody {
        name: name.to_string(),
        version: d.version,
        enabled,
        program: d.digest,
        cancelled: d.cancelled,
        destinations: Vec::new(),
    }
}

pub(crate) fn ruleset_name(name: &str) -> Result<(), Problem> {
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
        crate::problem::answers::TooMany,
    ))]
pub(crate) async fn deploy(
    State(app): State<App>,
    who: Tenant,
    Segments(name): Segments<String>,
    Body(body, _): Body<Files>,
) -> Result<Response, Problem> {
    who.need("rulesets:deploy")?;
    ruleset_name(&name)?;
    // Checked with the tenant's other rulesets (the store refuses what
    // does not check, with the diagnostics).
    let (sources, _, _) = checked(body.files, None).await?;
    let quotas = crate::limits::quotas_of(&app, &who.tenant).await?;
    let (tenant, n, by) = (who.tenant.clone(), name.clone(), who.who());
    let app2 = app.clone();
    let (d, enabled, refused) = app
        .db(move |db| {
            crate::limits::ruleset_room(db, &quotas, &tenant, &n)?;
            let (d, enabled) = {
                let d = db.deploy_ruleset(&tenant, &n, &sources, &by)?;
                let enabled = db.ruleset(&tenant, &n)?.is_none_or(|h| h.enabled);
                Ok::<_, ControlError>((d, enabled))
            }
            .map_err(Problem::from)?;
            let composed = db
                .program_with(&tenant, &n, &sources)
                .map_err(Problem::from)?;
            Ok((d, enabled, refused_destinations(&app2, &composed)))
        })
        .await?;
    let status = if d.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut body = deployed_body(&name, d, enabled);
    body.destinations = refused;
    Ok(created(status, body))
}

#[utoipa::path(get, path = "/v1/rulesets", security(("tenant" = ["read"])), params(PageQuery),
    responses(
        (status = 200, description = "The tenant's rulesets", body = RulesetPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn list_rulesets(
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
    Ok(Json(RulesetPage {
        data: crate::wire::all(data),
        next_cursor,
    }))
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
pub(crate) async fn get_ruleset(
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
pub(crate) async fn delete_ruleset(
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
pub(crate) async fn list_versions(
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
    Ok(Json(VersionPage {
        data: crate::wire::all(data),
        next_cursor,
    }))
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
pub(crate) async fn get_version(
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
pub(crate) async fn rollback(
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

pub(crate) async fn switch(
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
pub(crate) async fn disable(
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
pub(crate) async fn enable(
    State(app): State<App>,
    who: Tenant,
    Segments(name): Segments<String>,
) -> Result<Json<DeployedBody>, Problem> {
    switch(app, who, name, true).await
}
