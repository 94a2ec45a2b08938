//! The console's list pages on a full store: each page requested through
//! the router (no network), after a warm-up, and its latency reported as
//! p50 and p99. `scripts/console-bench.sh` fills the store first (events
//! pushed and handled by `steward run`, so statuses, traces and actions are
//! what a worker leaves).
//!
//! Usage: console_bench DATABASE TENANT [REQUESTS]

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use steward_db::console::Session;
use steward_server::{App, Backend};
use tower::ServiceExt;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(database), Some(tenant)) = (args.get(1), args.get(2)) else {
        return Err("usage: console_bench DATABASE TENANT [REQUESTS]".into());
    };
    let requests: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(200);
    let rules = steward_worker::empty_rules()?;
    let store: Arc<dyn Backend> = if database.starts_with("postgres") {
        Arc::new(steward_db::PgStore::open(database, rules).map_err(|e| e.to_string())?)
    } else {
        Arc::new(steward_db::SqliteStore::open(database, rules).map_err(|e| e.to_string())?)
    };
    // A tenant, a read token and a session for it, made directly.
    store.create_tenant(tenant).map_err(|e| e.to_string())?;
    store
        .create_token(tenant, "bench", "unused", &["read".to_string()], None)
        .or_else(|e| match e {
            steward_db::control::ControlError::Store(
                steward::engine::store::StoreError::Duplicate(_),
            ) => Ok(()),
            e => Err(e),
        })
        .map_err(|e| e.to_string())?;
    let secret = format!("bench-{}", std::process::id());
    let hash = steward_server::auth::digest(&secret);
    store
        .open_session(
            &hash,
            &Session {
                tenant: Some(tenant.clone()),
                token: Some("bench".into()),
                csrf: "bench".into(),
                expires_at: "9999-12-31T00:00:00Z".into(),
            },
        )
        .map_err(|e| e.to_string())?;
    let events = store
        .events(
            tenant,
            None,
            None,
            &steward_db::api::Page {
                after: None,
                limit: 1,
            },
        )
        .map_err(|e| e.to_string())?;
    let some_event = events.first().map(|e| e.id.clone()).unwrap_or_default();
    let some_key = events
        .first()
        .and_then(|e| e.key.clone())
        .unwrap_or_default();
    let app = App {
        store,
        admin_token: None,
        public_url: "http://127.0.0.1".into(),
        metrics: None,
        programs: Default::default(),
        sealer: None,
        limits: Default::default(),
        destinations: Default::default(),
    };
    let router = steward_server::router(app);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let pages = [
        "/".to_string(),
        "/events".to_string(),
        "/events?status=processed".to_string(),
        "/events?type=booking.made".to_string(),
        format!("/events?key={some_key}"),
        format!("/events/{some_event}"),
        format!("/keys/{some_key}"),
        "/deliveries".to_string(),
        "/deliveries?status=delivered".to_string(),
        "/approvals".to_string(),
        "/scheduled".to_string(),
        "/tasks".to_string(),
        "/audit".to_string(),
    ];
    println!("| page | p50 (ms) | p99 (ms) | bytes |");
    println!("|---|---|---|---|");
    for page in &pages {
        let mut times = Vec::with_capacity(requests);
        let mut bytes = 0;
        for i in 0..requests + 10 {
            let req = Request::builder()
                .uri(page.as_str())
                .header("cookie", format!("steward_session={secret}"))
                .body(Body::empty())
                .map_err(|e| e.to_string())?;
            let started = Instant::now();
            let res = rt
                .block_on(router.clone().oneshot(req))
                .map_err(|e| e.to_string())?;
            let status = res.status();
            let body = rt
                .block_on(axum::body::to_bytes(res.into_body(), usize::MAX))
                .map_err(|e| e.to_string())?;
            let took = started.elapsed();
            if !status.is_success() {
                return Err(format!("{page}: {status}"));
            }
            if i >= 10 {
                times.push(took.as_secs_f64() * 1000.0);
                bytes = body.len();
            }
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((times.len() as f64 - 1.0) * q).round() as usize;
            times.get(i).copied().unwrap_or_default()
        };
        println!("| `{page}` | {:.1} | {:.1} | {bytes} |", at(0.5), at(0.99));
    }
    Ok(())
}
