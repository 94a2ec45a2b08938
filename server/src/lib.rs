//! Steward's HTTP API: `steward serve` runs it beside the engine, over the
//! same boundary module, checker and durable store (no second way to check
//! or run rules). See docs/api.md for a walk through it, and
//! `GET /v1/openapi.json` for the contract, generated from this code.
//!
//! - [`problem`]: every error as RFC 9457 problem details, and the
//!   extractors that make bad input a 400 (never a 500).
//! - [`auth`]: the admin token and the tenants' tokens.
//! - [`routes`]: the handlers, each described for the OpenAPI document.
//!
//! The stores are synchronous (each runs its queries on a runtime of its
//! own); handlers call them on tokio's blocking threads ([`App::db`]).

pub mod auth;
pub mod console;
pub mod ids;
pub mod limits;
pub mod page;
pub mod problem;
pub mod routes;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, StatusCode};
use axum::Router;
use steward::engine::store::StoreError;
use steward_db::api::Api;
use steward_db::console::Console;
use steward_db::control::Control;
use steward_db::tenancy::Tenancy;
use steward_db::{Durable, PushError};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::problem::Problem;

/// What the API needs of a store: the engine's durable store, the control
/// plane and the API's own reads and writes. Both stores are one.
pub trait Backend: Control + Api + Console + Tenancy + Send + Sync + 'static {
    fn push_line(&self, line: &str) -> Result<bool, PushError>;
    fn stored_trace(&self, tenant: &str, event: &str) -> Result<Option<String>, StoreError>;
}

impl<T: Durable + Control + Api + Console + Tenancy + Send + Sync + 'static> Backend for T {
    fn push_line(&self, line: &str) -> Result<bool, PushError> {
        self.push(line)
    }

    fn stored_trace(&self, tenant: &str, event: &str) -> Result<Option<String>, StoreError> {
        self.trace(tenant, event)
    }
}

/// The API's state: the store, the admin token, where links point, and
/// how metrics are rendered.
#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn Backend>,
    pub admin_token: Option<String>,
    /// The address approval links start with (`http://host:port`).
    pub public_url: String,
    /// Renders the Prometheus metrics (the engine's included).
    pub metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    /// Stored programs built, by digest (a program never changes under its
    /// digest), for dry runs, backtests and approvals.
    pub programs: Arc<Programs>,
    /// What seals tenants' secrets (`STEWARD_SECRET_KEY`); without it the
    /// server keeps none.
    pub sealer: Option<steward_db::sealed::Sealer>,
    /// The rate limits' buckets and the quotas last read.
    pub limits: Arc<limits::Limits>,
    /// Where webhooks may go (`STEWARD_WEBHOOK_ALLOW`): validate and deploy
    /// say which of a program's webhooks never will.
    pub destinations: Arc<steward_worker::guard::Destinations>,
}

/// Programs built from the store, by digest; at most [`Programs::KEEP`].
#[derive(Default)]
pub struct Programs(
    std::sync::Mutex<std::collections::HashMap<String, Arc<steward::engine::Ruleset>>>,
);

impl Programs {
    const KEEP: usize = 64;

    /// The program of `digest`, built from `sources()` the first time.
    pub fn get(
        &self,
        digest: &str,
        sources: impl FnOnce() -> Option<steward::boundary::Sources>,
    ) -> Option<Arc<steward::engine::Ruleset>> {
        let lock = || self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = lock().get(digest) {
            return Some(found.clone());
        }
        let rules = sources()?.build().rules.ok()?;
        let mut map = lock();
        if map.len() >= Self::KEEP {
            map.clear();
        }
        map.insert(digest.to_string(), rules.clone());
        Some(rules)
    }
}

impl App {
    /// Runs `f` on the store, on a blocking thread.
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Backend) -> Result<T, Problem> + Send + 'static,
    ) -> Result<T, Problem> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(work_stopped)?
    }
}

/// A request's work on a blocking thread that did not finish (it
/// panicked): a 500 problem, the cause in the log.
pub(crate) fn work_stopped(e: tokio::task::JoinError) -> Problem {
    tracing::error!(cause = %e, "the request's work stopped");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the request's work stopped; the server's log says why",
    )
}

/// How long a request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Counts each request and how long it took, by route (the matched
/// path, so ids do not make new series), method and status.
async fn measure(
    matched: Option<axum::extract::MatchedPath>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let route = matched.map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("steward_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("steward_http_request_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// A request that took longer than [`REQUEST_TIMEOUT`]: 408, as a problem.
async fn timed_out(_: tower::BoxError) -> Problem {
    Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "timeout",
        format!(
            "the request took longer than {} s",
            REQUEST_TIMEOUT.as_secs()
        ),
    )
}

/// A handler that panicked: a 500 problem (the connection is kept), the
/// panic's message in the log.
fn panicked(cause: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let what = cause
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| cause.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    tracing::error!(cause = %what, "a handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server failed on this request; its log says why",
    )
    .into_response()
}

/// The API, with request ids (`x-request-id`, made if the client sent
/// none, and returned), a span per request, metrics per route, the
/// timeout, and a handler's panic answered as a 500 problem.
pub fn router(app: App) -> Router {
    with_layers(
        routes::routes()
            .merge(console::routes())
            .route_layer(axum::middleware::from_fn(measure))
            .with_state(app),
    )
}

/// What every route is wrapped in: request ids, the span, panics, the
/// timeout.
fn with_layers(routes: Router) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    routes.layer(
            tower::ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                        let id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
                    }),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
                .layer(axum::error_handling::HandleErrorLayer::new(timed_out))
                .layer(tower::timeout::TimeoutLayer::new(REQUEST_TIMEOUT)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use steward::engine::store::StoreError;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_handler_that_panics_is_answered_500_with_a_problem() {
        let routes = Router::new().route(
            "/boom/{n}",
            axum::routing::get(
                |axum::extract::Path(n): axum::extract::Path<u8>| async move {
                    // Out of bounds for any `n`: a bug in a handler.
                    let empty: [&'static str; 0] = [];
                    empty[usize::from(n)]
                },
            ),
        );
        let res = with_layers(routes)
            .oneshot(Request::get("/boom/7").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            res.headers().get("content-type").unwrap(),
            "application/problem+json"
        );
        assert!(res.headers().get("x-request-id").is_some());
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("index out of bounds"), "{text}");
    }

    #[test]
    fn database_errors_reach_clients_as_fixed_messages() {
        let cause = "relation \"steward_secret\" does not exist at 10.0.0.7";
        for (e, status, code) in [
            (
                StoreError::Unavailable(cause.into()),
                503,
                "store_unavailable",
            ),
            (StoreError::Conflict(cause.into()), 409, "conflict"),
            (StoreError::Duplicate(cause.into()), 409, "exists"),
            (StoreError::Corrupt(cause.into()), 500, "store_corrupt"),
        ] {
            let p = Problem::from(e);
            assert_eq!((p.status, p.code), (status, code));
            assert!(!p.detail.contains("10.0.0.7"), "{}", p.detail);
        }
        // A key that exists is not a race to try again.
        assert!(!Problem::from(StoreError::Duplicate(cause.into()))
            .detail
            .contains("try again"));
    }
}
