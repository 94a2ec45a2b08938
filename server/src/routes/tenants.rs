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

/// A tenant's quotas; each absent or null: no limit.
#[derive(Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct QuotasBody {
    /// Events accepted a second (`POST /v1/events`; 429 `rate_limited` with `Retry-After`).
    pub events_per_second: Option<i64>,
    /// Events stored (429 `quota_exceeded` until retention prunes old ones).
    pub events_stored: Option<i64>,
    /// Rulesets (429 `quota_exceeded` for a new one past it).
    pub rulesets: Option<i64>,
    /// API requests a minute, per token (429 `rate_limited` with `Retry-After`).
    pub requests_per_minute: Option<i64>,
    /// Webhooks and mails delivered an hour; past it, deliveries wait
    /// (pending, no attempt spent) until the hour allows them.
    pub actions_per_hour: Option<i64>,
}

impl From<steward_db::tenancy::Quotas> for QuotasBody {
    fn from(q: steward_db::tenancy::Quotas) -> QuotasBody {
        QuotasBody {
            events_per_second: q.events_per_second,
            events_stored: q.events_stored,
            rulesets: q.rulesets,
            requests_per_minute: q.requests_per_minute,
            actions_per_hour: q.actions_per_hour,
        }
    }
}

#[utoipa::path(put, path = "/v1/tenants/{tenant}/quotas", request_body = QuotasBody, security(("admin" = [])),
    params(("tenant" = String, Path)),
    responses(
        (status = 200, description = "The tenant's quotas now", body = QuotasBody),
        answers::BadRequest,
        answers::Unauthorized,
        answers::NotFound,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn set_quotas(
    State(app): State<App>,
    _: Admin,
    Segments(tenant): Segments<String>,
    Body(body, _): Body<QuotasBody>,
) -> Result<Json<QuotasBody>, Problem> {
    let limits = [
        ("events_per_second", body.events_per_second),
        ("events_stored", body.events_stored),
        ("rulesets", body.rulesets),
        ("requests_per_minute", body.requests_per_minute),
        ("actions_per_hour", body.actions_per_hour),
    ];
    if let Some((name, _)) = limits
        .iter()
        .find(|(_, v)| v.is_some_and(|v| !(1..=1_000_000_000).contains(&v)))
    {
        return Err(Problem::unprocessable(
            "invalid_field",
            format!("`{name}` is from 1 to 1,000,000,000, or null for no limit"),
        ));
    }
    let quotas = steward_db::tenancy::Quotas {
        events_per_second: body.events_per_second,
        events_stored: body.events_stored,
        rulesets: body.rulesets,
        requests_per_minute: body.requests_per_minute,
        actions_per_hour: body.actions_per_hour,
    };
    let t = tenant.clone();
    let found = app
        .db(move |db| {
            if !db.tenant_exists(&t).map_err(Problem::from)? {
                return Ok(false);
            }
            db.set_quotas(&t, &quotas, "admin").map_err(Problem::from)?;
            Ok(true)
        })
        .await?;
    if !found {
        return Err(Problem::not_found(format!("no tenant `{tenant}`")));
    }
    app.limits.forget(&tenant);
    Ok(Json(quotas.into()))
}

/// What a tenant stores now, of what its quotas count.
#[derive(Serialize, ToSchema)]
pub struct UsageBody {
    pub events_stored: i64,
    pub rulesets: i64,
}

#[derive(Serialize, ToSchema)]
pub struct TenantInfo {
    pub id: String,
    pub quotas: QuotasBody,
    pub usage: UsageBody,
}

#[utoipa::path(get, path = "/v1/tenant", security(("tenant" = ["read"])),
    responses(
        (status = 200, description = "This token's tenant: its quotas and what it uses now", body = TenantInfo),
        answers::Unauthorized,
        answers::Forbidden,
        crate::problem::answers::TooMany,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn get_tenant(
    State(app): State<App>,
    who: Tenant,
) -> Result<Json<TenantInfo>, Problem> {
    who.need("read")?;
    let tenant = who.tenant.clone();
    let (quotas, usage) = app
        .db(move |db| {
            let quotas = db.quotas(&tenant).map_err(Problem::from)?;
            let usage = db.usage(&tenant).map_err(Problem::from)?;
            Ok((quotas, usage))
        })
        .await?;
    Ok(Json(TenantInfo {
        id: who.tenant,
        quotas: quotas.into(),
        usage: UsageBody {
            events_stored: usage.events_stored,
            rulesets: usage.rulesets,
        },
    }))
}
