//! Tenants and their tokens (admin).

use super::*;

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
pub(crate) async fn create_tenant(
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
pub(crate) async fn create_token(
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
