//! The console: server-rendered pages (maud) over the same store, checker
//! and engine as the API, served by `steward serve` at `/`. Every flow is a
//! plain HTML form; `console.js` only shows times in the viewer's zone and
//! counts deadlines down, and htmx (vendored, `assets/`) swaps a list's rows
//! when its filters change.
//!
//! - [`session`]: sign in with a token, the session cookie, CSRF and
//!   `Origin` checks on every form, the token's scopes.
//! - [`ui`]: the layout, navigation and the small pieces every page uses.
//! - One module per page family: [`overview`], [`rules`], [`events`]
//!   (with a key's time line), [`approvals`], [`work`] (scheduled work,
//!   deliveries, tasks and notifications, the audit log).
//!
//! Every response carries a strict Content-Security-Policy (no inline
//! script or style), `X-Frame-Options: DENY`, `Referrer-Policy` and
//! `nosniff`; everything shown is escaped by maud.

mod approvals;
mod assets;
mod events;
mod overview;
mod rules;
pub mod session;
mod ui;
mod work;

use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;

use crate::App;

/// The console's routes (the API's are under `/v1`).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(overview::show))
        .route(
            "/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/sign-out", post(session::sign_out))
        .route("/tenant", get(session::choose_page).post(session::choose))
        .route("/rules", get(rules::list))
        .route("/new-ruleset", get(rules::new_page).post(rules::create))
        .route("/rules/{name}", get(rules::show))
        .route(
            "/rules/{name}/edit",
            get(rules::edit_page).post(rules::edit),
        )
        .route("/rules/{name}/versions/{version}", get(rules::version))
        .route("/rules/{name}/diff", get(rules::diff))
        .route(
            "/rules/{name}/confirm/{what}",
            get(rules::confirm_page).post(rules::confirm),
        )
        .route("/events", get(events::list))
        .route("/events/{id}", get(events::show))
        .route("/keys/{key}", get(events::timeline))
        .route("/approvals", get(approvals::list))
        .route("/approvals/decide", post(approvals::decide))
        .route("/scheduled", get(work::scheduled))
        .route("/deliveries", get(work::deliveries))
        .route("/deliveries/retry", post(work::retry))
        .route(
            "/deliveries/retry-dead",
            get(work::retry_dead_page).post(work::retry_dead),
        )
        .route("/tasks", get(work::tasks))
        .route("/audit", get(work::audit))
        .route("/assets/{file}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
        .layer(axum::middleware::from_fn(secure))
}

/// The headers every console response carries.
async fn secure(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
