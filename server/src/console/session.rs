//! Who is looking. A token (a tenant's, or the admin's and then a tenant
//! to look at) becomes a session: a random secret in an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure` when the console is served over
//! https), of which the store keeps only a SHA-256. Every request finds the
//! session and, for a tenant token, the token again: deleting the token or
//! signing out ends it. The token's scopes apply to every page and form.
//!
//! Every form carries the session's CSRF token, and a POST whose `Origin`
//! (or `Sec-Fetch-Site`) says it came from another site is refused.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use steward_db::console::Session;
use steward_db::control::EVERY_TENANT;

use super::ui::{self, Fail};
use crate::auth;
use crate::problem::Problem;
use crate::App;

const COOKIE: &str = "steward_session";
/// How long a session lasts.
const HOURS: i64 = 12;

/// A signed-in browser, tenant chosen or not.
#[derive(Clone, Debug)]
pub struct Signed {
    hash: String,
    pub session: Session,
    /// Signed in with the admin token.
    pub admin: bool,
    pub scopes: Vec<String>,
}

/// A signed-in browser looking at a tenant: what every page takes.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub tenant: String,
    /// Who the audit log names: `token ID`, or `admin`.
    pub who: String,
    pub scopes: Vec<String>,
    pub csrf: String,
    pub admin: bool,
}

impl Viewer {
    pub fn can(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// A 403 page unless the session's token has `scope`.
    pub fn need(&self, scope: &str) -> Result<(), Fail> {
        if self.can(scope) {
            Ok(())
        } else {
            Err(Fail::Page(
                StatusCode::FORBIDDEN,
                format!(
                    "Your token does not have the scope `{scope}`: ask for a token that has it."
                ),
            ))
        }
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

impl FromRequestParts<App> for Signed {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let secret = cookie_value(&parts.headers).ok_or(Fail::SignIn)?;
        let hash = auth::digest(&secret);
        let now = steward_db::control::now_text();
        let (h, a) = (hash.clone(), app.admin_token.is_some());
        let found = app
            .db(move |db| {
                let Some(session) = db.session(&h, &now).map_err(Problem::from)? else {
                    return Ok(None);
                };
                // A tenant token's scopes, read again: a deleted token ends
                // its sessions.
                let scopes = match (&session.token, &session.tenant) {
                    (Some(token), Some(tenant)) => db
                        .token(tenant, token)
                        .map_err(Problem::from)?
                        .map(|(_, scopes)| scopes),
                    (None, _) if a => Some(auth::SCOPES.iter().map(|s| s.to_string()).collect()),
                    _ => None,
                };
                Ok(scopes.map(|scopes| (session, scopes)))
            })
            .await?;
        let (session, scopes) = found.ok_or(Fail::SignIn)?;
        // A tenant token's requests through the console count against its
        // rate as its API requests do (429, a page saying when to come back).
        if let (Some(token), Some(tenant)) = (&session.token, &session.tenant) {
            let quotas = crate::limits::quotas_of(app, tenant).await?;
            crate::limits::requests_rate(&app.limits, tenant, token, quotas.requests_per_minute)?;
        }
        Ok(Signed {
            hash,
            admin: session.token.is_none(),
            session,
            scopes,
        })
    }
}

impl FromRequestParts<App> for Viewer {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let signed = Signed::from_request_parts(parts, app).await?;
        let tenant = signed.session.tenant.clone().ok_or(Fail::ChooseTenant)?;
        if !signed.scopes.iter().any(|s| s == "read") {
            return Err(Fail::Page(
                StatusCode::FORBIDDEN,
                "Your token does not have the scope `read`, which the console needs to show anything.".into(),
            ));
        }
        Ok(Viewer {
            who: match &signed.session.token {
                Some(token) => format!("token {token}"),
                None => "admin".to_string(),
            },
            tenant,
            scopes: signed.scopes,
            csrf: signed.session.csrf,
            admin: signed.admin,
        })
    }
}

/// Whether a state-changing request came from this site: its `Origin`
/// names the host it was sent to, or (no `Origin`) the browser says it is
/// same-origin. A request with neither (not a browser) still needs the
/// CSRF token.
fn same_site(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        Some(Ok(origin)) => {
            let rest = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            matches!((rest, host), (Some(rest), Some(host)) if rest == host)
        }
        Some(Err(_)) => false,
        None => !matches!(
            headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
            Some("cross-site" | "same-site")
        ),
    }
}

/// A posted form of a signed-in viewer, its CSRF token and origin checked:
/// the fields in the order they came.
pub struct Posted(pub Viewer, pub Fields);

/// A form's fields, in order (a name may repeat).
#[derive(Clone, Debug, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed; `None` if absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name`, as sent.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The most a form may hold (a ruleset's files included).
const MAX_FORM: usize = 2 * 1024 * 1024;

async fn fields(req: Request) -> Result<Fields, Fail> {
    let bytes = axum::body::to_bytes(req.into_body(), MAX_FORM)
        .await
        .map_err(|_| {
            Fail::Page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is too large.".into(),
            )
        })?;
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .map(Fields)
        .map_err(|e| {
            Fail::Page(
                StatusCode::BAD_REQUEST,
                format!("The form could not be read: {e}."),
            )
        })
}

/// A form sent from this site carrying the session's CSRF token.
async fn checked_form(req: Request, csrf: &str) -> Result<Fields, Fail> {
    if !same_site(req.headers()) {
        return Err(Fail::Page(
            StatusCode::FORBIDDEN,
            "This form was sent from another site, and was refused.".into(),
        ));
    }
    let fields = fields(req).await?;
    if !auth::same(fields.get("csrf").unwrap_or(""), csrf) {
        return Err(Fail::Page(
            StatusCode::FORBIDDEN,
            "This form's security token is missing or stale: reload the page and try again.".into(),
        ));
    }
    Ok(fields)
}

impl FromRequest<App> for Posted {
    type Rejection = Fail;

    async fn from_request(req: Request, app: &App) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, app).await?;
        let fields = checked_form(Request::from_parts(parts, body), &viewer.csrf).await?;
        Ok(Posted(viewer, fields))
    }
}

fn sign_in_form(problem: Option<&str>) -> maud::Markup {
    html! {
        main.signin id="main" {
            h1 { "Sign in to Steward" }
            @if let Some(p) = problem {
                p.notice.bad role="alert" { (p) }
            }
            form.card method="post" action="/sign-in" {
                div.field {
                    label for="token" { "Token" }
                    input #token type="password" name="token" autocomplete="current-password" required aria-describedby="token-help";
                }
                p.muted #token-help { "A tenant's token (" code { "TENANT.ID.SECRET" } "), or the admin token, then a tenant to look at." }
                button type="submit" { "Sign in" }
            }
        }
    }
}

pub async fn sign_in_page() -> Response {
    ui::bare("Sign in", sign_in_form(None)).into_response()
}

/// Signs in: a tenant token, or the admin token (then a tenant is chosen).
pub async fn sign_in(State(app): State<App>, req: Request) -> Response {
    if !same_site(req.headers()) {
        return Fail::Page(
            StatusCode::FORBIDDEN,
            "This form was sent from another site, and was refused.".into(),
        )
        .into_response();
    }
    let fields = match fields(req).await {
        Ok(f) => f,
        Err(fail) => return fail.into_response(),
    };
    let token = fields.get("token").unwrap_or("").to_string();
    let refused = |why: &str| {
        let mut r = ui::bare("Sign in", sign_in_form(Some(why))).into_response();
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r
    };
    let (tenant, token_id) = if auth::is_admin(&app, &token) {
        (None, None)
    } else {
        match auth::check_token(&app, &token).await {
            Ok(t) => (Some(t.tenant), Some(t.token)),
            Err(p) if p.status == 401 => return refused("That token is not valid."),
            Err(p) => return Fail::from(p).into_response(),
        }
    };
    let (secret, csrf) = match (auth::random(32), auth::random(24)) {
        (Ok(s), Ok(c)) => (s, c),
        (Err(p), _) | (_, Err(p)) => return Fail::from(p).into_response(),
    };
    let expires = chrono::Utc::now() + chrono::Duration::hours(HOURS);
    let session = Session {
        tenant,
        token: token_id,
        csrf,
        expires_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    };
    let hash = auth::digest(&secret);
    let chosen = session.tenant.is_some();
    if let Err(p) = app
        .db(move |db| db.open_session(&hash, &session).map_err(Problem::from))
        .await
    {
        return Fail::from(p).into_response();
    }
    let secure = if app.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        HOURS * 3600
    );
    let to = if chosen { "/" } else { "/tenant" };
    ([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response()
}

pub async fn sign_out(
    State(app): State<App>,
    signed: Result<Signed, Fail>,
    req: Request,
) -> Response {
    if let Ok(signed) = signed {
        if let Err(fail) = checked_form(req, &signed.session.csrf).await {
            return fail.into_response();
        }
        let hash = signed.hash.clone();
        if let Err(p) = app
            .db(move |db| db.close_session(&hash).map_err(Problem::from))
            .await
        {
            return Fail::from(p).into_response();
        }
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/sign-in")).into_response()
}

/// An admin chooses the tenant to look at.
pub async fn choose_page(State(app): State<App>, signed: Signed) -> Result<Response, Fail> {
    if !signed.admin {
        return Ok(Redirect::to("/").into_response());
    }
    let tenants = app
        .db(|db| db.tenant_ids(500).map_err(Problem::from))
        .await?;
    let csrf = signed.session.csrf.clone();
    Ok(ui::bare(
        "Choose a tenant",
        html! {
            main.signin id="main" {
                h1 { "Choose a tenant" }
                @if tenants.is_empty() {
                    p.muted { "No tenant has been made over the API yet (" code { "POST /v1/tenants" } ", docs/api.md). A tenant whose events were pushed with " code { "steward push" } " can still be looked at by its id." }
                }
                form.card method="post" action="/tenant" {
                    input type="hidden" name="csrf" value=(csrf);
                    div.field {
                        label for="tenant" { "Tenant" }
                        input #tenant name="tenant" list="tenants" required aria-describedby="tenant-help"
                            value=[signed.session.tenant.as_deref()];
                        datalist #tenants {
                            @for t in &tenants { option value=(t) {} }
                            option value=(EVERY_TENANT) {}
                        }
                    }
                    p.muted #tenant-help { "Its id; " code { (EVERY_TENANT) } " is the tenant whose rules every tenant without rules of its own runs (what " code { "steward run --rules" } " deploys)." }
                    p { button type="submit" { "Look at this tenant" } }
                }
            }
        },
    )
    .into_response())
}

pub async fn choose(
    State(app): State<App>,
    signed: Signed,
    req: Request,
) -> Result<Response, Fail> {
    let fields = checked_form(req, &signed.session.csrf).await?;
    if !signed.admin {
        return Err(Fail::Page(
            StatusCode::FORBIDDEN,
            "Only the admin chooses a tenant.".into(),
        ));
    }
    let tenant = fields.get("tenant").unwrap_or("").to_string();
    let hash = signed.hash.clone();
    let t = tenant.clone();
    let known = app
        .db(move |db| {
            // A tenant made over the API, the tenant `*`, or one whose
            // events were pushed.
            let known = t == EVERY_TENANT
                || (auth::valid_name(&t)
                    && (db.tenant_exists(&t).map_err(Problem::from)?
                        || !db
                            .recent_events(&t, &Default::default(), None, 1)
                            .map_err(Problem::from)?
                            .is_empty()));
            if !known {
                return Ok(false);
            }
            db.look_at(&hash, &t).map_err(Problem::from)?;
            Ok(true)
        })
        .await?;
    if !known {
        return Err(Fail::Page(
            StatusCode::NOT_FOUND,
            format!("There is no tenant `{tenant}`."),
        ));
    }
    Ok(Redirect::to("/").into_response())
}
