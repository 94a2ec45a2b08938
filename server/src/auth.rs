//! Who is asking. The admin token (`STEWARD_ADMIN_TOKEN`) makes tenants
//! and their tokens; a tenant token (`TENANT.ID.SECRET`, of which only a
//! SHA-256 is stored) sees its tenant only, within its scopes. No token, or
//! a wrong one, is 401; a scope the token lacks is 403.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::problem::Problem;
use crate::App;

pub const SCOPES: [&str; 4] = [
    "read",
    "events:write",
    "rulesets:deploy",
    "approvals:decide",
];

/// A tenant's token, checked.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub tenant: String,
    /// The token's id (what the audit log names).
    pub token: String,
    pub scopes: Vec<String>,
}

impl Tenant {
    /// 403 unless the token has `scope`.
    pub fn need(&self, scope: &str) -> Result<(), Problem> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "this token does not have the scope `{scope}`"
            )))
        }
    }

    /// Who did it, for the audit log.
    pub fn who(&self) -> String {
        format!("token {}", self.token)
    }
}

/// The admin token, checked.
pub struct Admin;

fn bearer(parts: &Parts) -> Result<&str, Problem> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("no `Authorization: Bearer <token>` header"))?;
    let text = value
        .to_str()
        .map_err(|_| Problem::unauthorized("the `Authorization` header is not text"))?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .ok_or_else(|| {
            Problem::unauthorized("the `Authorization` header is not `Bearer <token>`")
        })?;
    Ok(token.trim())
}

/// SHA-256, as hex.
pub fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Equal, in a time that does not depend on where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `n` random bytes, as unpadded base64url.
pub fn random(n: usize) -> Result<String, Problem> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| {
        Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "no_randomness",
            format!("the system has no randomness to give: {e}"),
        )
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A tenant id (and a ruleset name): letters, digits, `_` and `-`, 1 to 63,
/// starting with a letter or digit.
pub fn valid_name(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && id.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl FromRequestParts<App> for Tenant {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?.to_string();
        let tenant = check_token(app, &token).await?;
        let quotas = crate::limits::quotas_of(app, &tenant.tenant).await?;
        crate::limits::requests_rate(
            &app.limits,
            &tenant.tenant,
            &tenant.token,
            quotas.requests_per_minute,
        )?;
        Ok(tenant)
    }
}

/// Whether `token` is the admin token (none configured: no).
pub(crate) fn is_admin(app: &App, token: &str) -> bool {
    app.admin_token
        .as_deref()
        .is_some_and(|admin| same(admin, token))
}

/// A tenant token (`TENANT.ID.SECRET`) checked against its stored hash.
pub(crate) async fn check_token(app: &App, token: &str) -> Result<Tenant, Problem> {
    {
        let wrong = || Problem::unauthorized("the token is not valid");
        let mut pieces = token.splitn(3, '.');
        let (Some(tenant), Some(id), Some(_)) = (pieces.next(), pieces.next(), pieces.next())
        else {
            return Err(wrong());
        };
        if !valid_name(tenant) || !valid_name(id) {
            return Err(wrong());
        }
        let (tenant, id) = (tenant.to_string(), id.to_string());
        let found = {
            let (tenant, id) = (tenant.clone(), id.clone());
            app.db(move |db| db.token(&tenant, &id).map_err(Problem::from))
                .await?
        };
        let Some((hash, scopes)) = found else {
            return Err(wrong());
        };
        if !same(&hash, &digest(token)) {
            return Err(wrong());
        }
        Ok(Tenant {
            tenant,
            token: id,
            scopes,
        })
    }
}

impl FromRequestParts<App> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        match &app.admin_token {
            Some(admin) if same(admin, token) => Ok(Admin),
            Some(_) => Err(Problem::unauthorized("the admin token is not valid")),
            None => Err(Problem::unauthorized(
                "no admin token is configured (set STEWARD_ADMIN_TOKEN where `steward serve` runs)",
            )),
        }
    }
}
