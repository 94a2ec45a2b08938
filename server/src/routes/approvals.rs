//! Approvals: listed, decided, and links to decide them.

use super::*;

/// What a stored continuation (a timer's or an approval's) runs, from the
/// program that made it (`steward::boundary::continuation_actions`).
/// `None` if it does not resume.
pub(crate) fn continuation_actions(
    db: &dyn crate::Backend,
    programs: &crate::Programs,
    tenant: &str,
    text: &str,
) -> Option<(Vec<String>, Vec<String>)> {
    let stored = serde_json::from_str::<steward::engine::stored::StoredContinuation>(text).ok()?;
    let rules = programs.get(&stored.version, || {
        db.program_sources(tenant, &stored.version).ok().flatten()
    })?;
    steward::boundary::continuation_actions(&rules, &stored)
}

/// The approvals as the API shows them, with what approving and rejecting
/// each pending one would run, from the program that asked.
pub(crate) fn describe_approvals(
    db: &dyn crate::Backend,
    programs: &crate::Programs,
    tenant: &str,
    rows: Vec<steward_db::api::ApprovalRow>,
) -> Vec<ApprovalRow> {
    rows.into_iter()
        .map(|row| {
            let mut row = ApprovalRow::from(row);
            if let Some(text) = row.continuation.take() {
                if let Some((approve, reject)) = continuation_actions(db, programs, tenant, &text) {
                    row.on_approve = approve;
                    row.on_reject = reject;
                }
            }
            row
        })
        .collect()
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
pub(crate) async fn list_approvals(
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
            let rows = db
                .approvals(&tenant, q.status.as_deref(), &pp)
                .map_err(Problem::from)?;
            Ok(describe_approvals(db, &programs, &tenant, rows))
        })
        .await?;
    let (mut data, next_cursor) = paged(rows, &p, |a| a.id.clone());
    for a in &mut data {
        a.id = crate::ids::approval(&a.id);
    }
    Ok(Json(ApprovalPage {
        data: crate::wire::all(data),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/approvals/{id}", security(("tenant" = ["read"])), params(("id" = String, Path, description = "The approval's id as listed (`apr_...`), as it is")),
    responses(
        (status = 200, description = "The approval", body = ApprovalRow),
        answers::Unauthorized,
        answers::NotFound,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn get_approval(
    State(app): State<App>,
    who: Tenant,
    Segments(id): Segments<String>,
) -> Result<Json<ApprovalRow>, Problem> {
    who.need("read")?;
    let (tenant, i) = (who.tenant.clone(), crate::ids::approval_from_path(&id));
    let programs = app.programs.clone();
    app.db(move |db| {
        let row = db.approval_row(&tenant, &i).map_err(Problem::from)?;
        Ok(row.and_then(|row| {
            let mut row = describe_approvals(db, &programs, &tenant, vec![row])
                .into_iter()
                .next()?;
            row.id = crate::ids::approval(&row.id);
            Some(row)
        }))
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
        Decided::Recorded(d) => Ok(d.into()),
        Decided::Already(d) => Err(Problem::new(
            StatusCode::CONFLICT,
            "already_decided",
            format!("approval `{id}` was {} by {} first", d.decision, d.by),
        )
        .with(
            "decision",
            serde_json::to_value(DecisionRow::from(d)).unwrap_or_default(),
        )),
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
pub(crate) async fn decide_route(
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
pub(crate) async fn approve(
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
pub(crate) async fn reject(
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
pub(crate) async fn create_link(
    State(app): State<App>,
    who: Tenant,
    Segments(id): Segments<String>,
) -> Result<Response, Problem> {
    who.need("approvals:decide")?;
    let id = crate::ids::approval_from_path(&id);
    let link = crate::page::make_link(&app, &who.tenant, &id).await?;
    Ok(created(StatusCode::CREATED, link))
}
