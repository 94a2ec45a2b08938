//! What the server's test suites share: a client that sends requests
//! through the router with `tower::ServiceExt::oneshot`, and the engine's
//! part (handling stored events as a worker would).

#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use steward::engine::{decode_event, Collect, Engine};
use steward_db::control::Control;
use steward_db::Durable;
use tower::ServiceExt;

pub const ADMIN: &str = "admin-secret";

/// Either store, with all the API needs.
pub trait Store:
    Durable
    + Control
    + steward_db::api::Api
    + steward_db::console::Console
    + steward_db::tenancy::Tenancy
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: Durable
        + Control
        + steward_db::api::Api
        + steward_db::console::Console
        + steward_db::tenancy::Tenancy
        + Send
        + Sync
        + 'static
{
}

pub struct Client {
    pub router: axum::Router,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
}

impl Client {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Body::from(body.unwrap_or_default().to_string()))
            .unwrap();
        self.answer(req).await
    }

    async fn answer(&self, req: Request<Body>) -> Answer {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// A console request: the session's cookie, and a form body if given.
    pub async fn page(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        if form.is_some() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Body::from(form.unwrap_or_default().to_string()))
            .unwrap();
        self.answer(req).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call("GET", path, Some(token), None, &[]).await
    }

    pub async fn send(&self, method: &str, path: &str, token: &str, body: Value) -> Answer {
        self.call(method, path, Some(token), Some(&body.to_string()), &[])
            .await
    }
}

/// Event times around the wall clock (the API judges deadlines by it).
pub fn at(offset: chrono::Duration) -> String {
    (chrono::Utc::now() + offset).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The engine's part: handles the stored pending events `ids` of `tenant`
/// with the tenant's program, on a store of its own, with a clock of its
/// own (so an approval asked in the past stays pending past its deadline).
pub fn run_engine<S: Durable + Control>(store: S, tenant: &str, ids: &[&str]) {
    let programs = store.programs().unwrap();
    let (_, sources) = programs
        .iter()
        .find(|p| p.tenant == tenant)
        .and_then(|p| p.program.clone())
        .unwrap();
    let rules = sources.build().rules.unwrap();
    let mut store = store;
    store.use_rules(rules.clone());
    let pending = store.pending_events(100).unwrap();
    let mut engine = Engine::new(rules.clone(), store);
    engine.programs.insert(Arc::from(tenant), rules.clone());
    // Every event explained, its trace kept, as a worker does.
    engine.explain_all = true;
    let mut sink = Collect::default();
    for e in pending
        .iter()
        .filter(|e| e.tenant == tenant && ids.contains(&e.id.as_str()))
    {
        let event = decode_event(rules.shapes(), &e.line).unwrap();
        engine.handle(event, &mut sink).unwrap();
    }
    let traces = steward_worker::traces_of(&mut engine, &sink);
    engine.store.put_traces(&traces).unwrap();
}

/// A program with no rules (what a store is opened with before a tenant
/// deploys).
pub fn empty() -> Arc<steward::engine::Ruleset> {
    Arc::new(
        steward::engine::compile(&steward::check::analyze(&[], &steward::check::NoFiles)).unwrap(),
    )
}

/// Runs `suite` on a SQLite file of this run's own.
pub fn on_sqlite(what: &str, suite: impl FnOnce(&dyn Fn() -> steward_db::SqliteStore)) {
    let dir = std::env::temp_dir().join(format!("steward-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{what}.db"));
    let path = path.to_str().unwrap().to_string();
    suite(&|| steward_db::SqliteStore::open(&path, empty()).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `suite` on a PostgreSQL database of this run's own (skipped, with
/// a message, when the server is unreachable outside CI).
pub fn on_postgres(what: &str, suite: impl FnOnce(&dyn Fn() -> steward_db::PgStore)) {
    let Some(db) = steward_test_support::Scratch::create(what) else {
        return;
    };
    let url = db.url();
    suite(&|| steward_db::PgStore::open(&url, empty()).unwrap());
}
