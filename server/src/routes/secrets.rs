//! A tenant's secrets (write only: listed by name, never read back) and its
//! webhook signing secret (rotated with a grace period for the old one),
//! and its tokens (listed, revoked).

use super::*;
use steward_db::sealed::Sealer;

pub use steward_db::tenancy::{SIGNING, SIGNING_PREVIOUS};

fn sealer(app: &App) -> Result<&Sealer, Problem> {
    app.sealer.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_secret_key",
            "this server keeps no secrets: set STEWARD_SECRET_KEY (32 random bytes as base64) where `steward serve` runs",
        )
    })
}

/// A secret's name, as [`steward_db::tenancy::secret_name`] allows.
fn secret_name(name: &str) -> Result<(), Problem> {
    steward_db::tenancy::secret_name(name).map_err(|why| {
        let code = if name.starts_with(SIGNING) {
            "reserved_secret_name"
        } else {
            "invalid_secret_name"
        };
        Problem::unprocessable(code, why)
    })
}

/// A secret as listed: never its value.
#[derive(Serialize, ToSchema)]
pub struct SecretSummary {
    pub name: String,
    pub set_at: String,
    /// Who set it (`token ID`, `admin`).
    pub set_by: String,
    /// When it stops being used (the signing secret a rotation replaced).
    pub expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SecretList {
    pub data: Vec<SecretSummary>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// The value: kept sealed, never shown again.
    pub value: String,
}

#[utoipa::path(get, path = "/v1/secrets", security(("tenant" = ["read"])),
    responses(
        (status = 200, description = "The tenant's secrets, by name (never their values)", body = SecretList),
        answers::Unauthorized,
        answers::Forbidden,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn list_secrets(
    State(app): State<App>,
    who: Tenant,
) -> Result<Json<SecretList>, Problem> {
    who.need("read")?;
    let tenant = who.tenant.clone();
    let rows = app
        .db(move |db| db.secrets(&tenant).map_err(Problem::from))
        .await?;
    Ok(Json(SecretList {
        data: rows
            .into_iter()
            .map(|r| SecretSummary {
                name: r.name,
                set_at: r.set_at,
                set_by: r.set_by,
                expires_at: r.expires_at,
            })
            .collect(),
    }))
}

#[utoipa::path(put, path = "/v1/secrets/{name}", request_body = SecretValue, security(("tenant" = ["rulesets:deploy"])),
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Kept, sealed"),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn put_secret(
    State(app): State<App>,
    who: Tenant,
    Segments(name): Segments<String>,
    Body(body, _): Body<SecretValue>,
) -> Result<StatusCode, Problem> {
    who.need("rulesets:deploy")?;
    secret_name(&name)?;
    if body.value.is_empty() || body.value.len() > 8192 {
        return Err(Problem::unprocessable(
            "invalid_field",
            "`value` has 1 to 8192 bytes",
        ));
    }
    let sealed = sealer(&app)?
        .seal(&who.tenant, &name, &body.value)
        .map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_secret_key",
                e.to_string(),
            )
        })?;
    let (tenant, by) = (who.tenant.clone(), who.who());
    app.db(move |db| {
        db.put_secret(&tenant, &name, &sealed, &by)
            .map_err(Problem::from)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/secrets/{name}", security(("tenant" = ["rulesets:deploy"])),
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Conflict,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn delete_secret(
    State(app): State<App>,
    who: Tenant,
    Segments(name): Segments<String>,
) -> Result<StatusCode, Problem> {
    who.need("rulesets:deploy")?;
    secret_name(&name)?;
    let (tenant, by, n) = (who.tenant.clone(), who.who(), name.clone());
    if app
        .db(move |db| {
            // The program that runs names it: deleting it would leave its
            // webhooks without a credential (and the program no longer
            // checking); change the rules first.
            if let Some((_, sources)) = db.program_of(&tenant)?.and_then(|p| p.program) {
                let users = users_of_secret(&sources, &n);
                if !users.is_empty() {
                    return Err(Problem::conflict(
                        "secret_in_use",
                        format!(
                            "the secret `{n}` is named by the webhook header of {}: deploy rules without it first",
                            users.join(", ")
                        ),
                    ));
                }
            }
            db.delete_secret(&tenant, &n, &by).map_err(Problem::from)
        })
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("no secret `{name}`")))
    }
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// How long the secret replaced keeps signing beside the new one
    /// (`24h`, `7d`; default `24h`, at most `30d`; `0s`: it stops now).
    pub grace: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SigningSecret {
    /// The new signing secret (`whsec_...`), shown once: give it to the
    /// tenant's receivers.
    pub secret: String,
    /// Until when the secret it replaced still signs (none: there was none).
    pub previous_until: Option<String>,
}

/// A new `whsec_` secret: 32 random bytes.
pub(crate) fn new_signing_secret() -> Result<String, Problem> {
    let raw = auth::random(32)?;
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw)
        .map_err(|_| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "randomness"))?;
    Ok(format!(
        "whsec_{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
    ))
}

#[utoipa::path(post, path = "/v1/secrets/webhook-signing/rotate", request_body = Rotation, security(("tenant" = ["rulesets:deploy"])),
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer (without the secret)")),
    responses(
        (status = 201, description = "A new signing secret, shown once; the one it replaced signs beside it until `previous_until`", body = SigningSecret),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn rotate_signing(
    State(app): State<App>,
    who: Tenant,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Body(body, bytes): Body<Rotation>,
) -> Response {
    if let Err(p) = who.need("rulesets:deploy") {
        return p.into_response();
    }
    let grace = match body
        .grace
        .as_deref()
        .map(steward::engine::decode::parse_duration)
    {
        None => 86_400_000,
        Some(Some(ms)) if (0..=30 * 86_400_000).contains(&ms) => ms,
        Some(_) => {
            return Problem::unprocessable(
                "invalid_field",
                "`grace` is a duration from `0s` to `30d` (`24h`, `7d`)",
            )
            .into_response()
        }
    };
    let scope = who.tenant.clone();
    let app2 = app.clone();
    once_keeping(
        &app,
        &scope,
        &headers,
        (&method, &uri, &bytes),
        async move {
            rotated(&app2, &who, grace)
                .await
                .map_or_else(|p| p.into_response(), |b| created(StatusCode::CREATED, b))
        },
        Some("secret"),
    )
    .await
}

/// Makes a new signing secret for `who`'s tenant, keeping the current one
/// (sealed again under its new name) for `grace_ms`.
pub(crate) async fn rotated(
    app: &App,
    who: &Tenant,
    grace_ms: i64,
) -> Result<SigningSecret, Problem> {
    let sealer = sealer(app)?.clone();
    let secret = new_signing_secret()?;
    let until = (chrono::Utc::now() + chrono::Duration::milliseconds(grace_ms))
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let (tenant, by, s, u) = (who.tenant.clone(), who.who(), secret.clone(), until.clone());
    let had = app
        .db(move |db| {
            let seal = |name: &str, value: &str| {
                sealer.seal(&tenant, name, value).map_err(|e| {
                    Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no_secret_key",
                        e.to_string(),
                    )
                })
            };
            let now = steward_db::control::now_text();
            let current = db
                .sealed_secrets(&tenant, &[SIGNING], &now)
                .map_err(Problem::from)?;
            let previous = match current.first() {
                Some((_, sealed)) if grace_ms > 0 => {
                    let value = sealer.open(&tenant, SIGNING, sealed).map_err(|e| {
                        Problem::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "secret_unreadable",
                            e.to_string(),
                        )
                    })?;
                    Some(seal(SIGNING_PREVIOUS, &value)?)
                }
                _ => None,
            };
            let new = seal(SIGNING, &s)?;
            db.rotate_secret(
                &tenant,
                SIGNING,
                &new,
                (SIGNING_PREVIOUS, previous.as_deref()),
                &u,
                &by,
            )
            .map_err(Problem::from)?;
            Ok(previous.is_some())
        })
        .await?;
    Ok(SigningSecret {
        secret,
        previous_until: had.then_some(until),
    })
}

/// A token as listed: never the token or its hash.
#[derive(Serialize, ToSchema)]
pub struct TokenSummary {
    pub id: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    pub data: Vec<TokenSummary>,
}

#[utoipa::path(get, path = "/v1/tokens", security(("tenant" = ["read"])),
    responses(
        (status = 200, description = "The tenant's tokens (never the tokens themselves)", body = TokenList),
        answers::Unauthorized,
        answers::Forbidden,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn list_tokens(
    State(app): State<App>,
    who: Tenant,
) -> Result<Json<TokenList>, Problem> {
    who.need("read")?;
    let tenant = who.tenant.clone();
    let rows = app
        .db(move |db| db.tokens(&tenant).map_err(Problem::from))
        .await?;
    Ok(Json(TokenList {
        data: rows
            .into_iter()
            .map(|t| TokenSummary {
                id: t.id,
                scopes: t.scopes,
                created_at: t.created_at,
                expires_at: t.expires_at,
            })
            .collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", security(("tenant" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Revoked: it no longer signs in, and its console sessions end"),
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn revoke_token(
    State(app): State<App>,
    who: Tenant,
    Segments(id): Segments<String>,
) -> Result<StatusCode, Problem> {
    // A token revokes itself; another only with every scope.
    if id != who.token
        && !auth::SCOPES
            .iter()
            .all(|s| who.scopes.iter().any(|h| h == s))
    {
        return Err(Problem::forbidden(
            "a token revokes itself, or others with every scope",
        ));
    }
    revoke(&app, &who.tenant, &id, &who.who()).await
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/tokens/{id}", security(("admin" = [])),
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses(
        (status = 204, description = "Revoked"),
        answers::Unauthorized,
        answers::NotFound,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn admin_revoke_token(
    State(app): State<App>,
    _: Admin,
    Segments((tenant, id)): Segments<(String, String)>,
) -> Result<StatusCode, Problem> {
    revoke(&app, &tenant, &id, "admin").await
}

async fn revoke(app: &App, tenant: &str, id: &str, who: &str) -> Result<StatusCode, Problem> {
    let (t, i, w) = (tenant.to_string(), id.to_string(), who.to_string());
    if app
        .db(move |db| db.revoke_token(&t, &i, &w).map_err(Problem::from))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("no token `{id}`")))
    }
}

/// The webhook actions of `sources` (as `action apply_price`) whose headers
/// name the secret `name`.
fn users_of_secret(sources: &steward::boundary::Sources, name: &str) -> Vec<String> {
    let built = sources.build();
    let mut users: Vec<String> = built
        .analysis
        .program
        .actions
        .values()
        .filter(|a| {
            a.webhook
                .as_ref()
                .is_some_and(|w| w.headers.iter().any(|h| h.secret.as_deref() == Some(name)))
        })
        .map(|a| format!("action `{}`", a.name))
        .collect();
    users.sort();
    users
}
