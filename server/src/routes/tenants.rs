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
    /// The tenant's webhook signing secret (`whsec_...`), shown once (when
    /// the server keeps secrets, `STEWARD_SECRET_KEY`): its webhooks are
    /// signed with it, not with the server's.
    pub signing_secret: Option<String>,
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
    once_keeping(&app, "*admin", &headers, (&method, &uri, &bytes), async move {
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
            Ok(true) => {
                // Its own signing secret, when the server keeps secrets.
                let signing_secret = if app2.sealer.is_some() {
                    let admin = auth::Tenant {
                        tenant: body.id.clone(),
                        token: "admin".into(),
                        scopes: Vec::new(),
                    };
                    match rotated(&app2, &admin, 0).await {
                        Ok(s) => Some(s.secret),
                        Err(p) => return p.into_response(),
                    }
                } else {
                    None
                };
                created(StatusCode::CREATED, TenantBody { id: body.id, signing_secret })
            }
            Ok(false) => Problem::new(
                StatusCode::CONFLICT,
                "tenant_exists",
                format!("tenant `{}` exists", body.id),
            )
            .into_response(),
            Err(p) => p.into_response(),
        }
    }, Some("signing_secret"))
    .await
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Of `read`, `events:write`, `rulesets:deploy`, `approvals:decide`;
    /// all of them if absent.
    pub scopes: Option<Vec<String>>,
    /// How long it is valid (`90d`, `12h`); forever if absent.
    pub expires_in: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenBody {
    /// Shown once: only a hash of it is kept.
    pub token: String,
    pub id: String,
    pub scopes: Vec<String>,
    /// When it stops being valid (none: never).
    pub expires_at: Option<String>,
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
    let expires_at = match body
        .expires_in
        .as_deref()
        .map(steward::engine::decode::parse_duration)
    {
        None => None,
        Some(Some(ms)) if ms > 0 && ms <= 3650 * 86_400_000 => Some(
            (chrono::Utc::now() + chrono::Duration::milliseconds(ms))
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        ),
        Some(_) => {
            return Err(Problem::unprocessable(
                "invalid_field",
                "`expires_in` is a duration from `1s` to `3650d` (`90d`, `12h`)",
            ))
        }
    };
    let id = auth::random(9)?.replace(['-', '_'], "x");
    let secret = auth::random(32)?;
    let token = format!("{tenant}.{id}.{secret}");
    let hash = auth::digest(&token);
    let (t, i, s, e) = (
        tenant.clone(),
        id.clone(),
        scopes.clone(),
        expires_at.clone(),
    );
    app.db(move |db| {
        db.create_token(&t, &i, &hash, &s, e.as_deref())
            .map_err(Problem::from)
    })
    .await?;
    Ok(created(
        StatusCode::CREATED,
        TokenBody {
            token,
            id,
            scopes,
            expires_at,
        },
    ))
}
