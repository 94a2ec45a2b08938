//! The HTTP API, route by route, on SQLite and on PostgreSQL (a database of
//! each test's own at `DATABASE_URL`; under `CI` an unreachable server
//! fails the test): every route's answer and error cases, tenant
//! isolation, and the OpenAPI document naming every route. Requests go
//! through the router with `tower::ServiceExt::oneshot`; the engine's part
//! (an approval asked, a timer set) is played by an engine on a second
//! store.
//!
//! Each case is a test of its own on each store (`<case>::on_sqlite`,
//! `<case>::on_postgres`), on a fresh store: it builds what it needs with
//! the [`Fixture`]'s steps (tenants and tokens, the `jobs` ruleset, the
//! events the engine has handled), then checks only its own routes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use steward_server::{App, Backend};
use tower::ServiceExt;

mod common;
use common::*;

const RULES: &str = r#"
event job { id: string  amount: float }
rule big_jobs "Ask the owner for big jobs"
  when job
  if amount > 100.0
  then
    require approval from role owner within 48h do
      log "approved {id}"
    else
      log "not approved {id}"
    end
end
rule remind when job then
  after 1h unless job.done on id do
    log "remind {id}"
  end
end
event job.done { id: string }
event lead { id: string  owner: string?  owner_email: string }
rule route_lead when lead then
  create task "Call {id}" for owner ?? "desk" due now() + 1d
  create task "Review {id}" for role sales
  notify owner_email "New lead {id}"
  notify role sales "Lead {id} in"
end
"#;

/// Every case, each run as two tests: `<case>::on_sqlite` and
/// `<case>::on_postgres`, each on a store of its own.
macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[test]
                fn on_sqlite() {
                    super::on_sqlite(stringify!($case), |open| super::run(open, super::$case));
                }

                #[test]
                fn on_postgres() {
                    super::on_postgres(&super::scratch_name(stringify!($case)), |open| {
                        super::run(open, super::$case)
                    });
                }
            }
        )*
    };
}

cases! {
    operations_and_the_openapi_document_answer,
    tenants_are_created_by_the_admin_only,
    an_idempotency_key_replays_the_first_answer,
    tokens_are_issued_per_tenant_and_scope,
    rulesets_are_validated_and_deployed,
    events_are_accepted_once_and_bad_batches_refused,
    events_are_listed_by_page_and_traced,
    rulesets_and_their_versions_are_read,
    timers_are_listed,
    approvals_are_listed_and_found_by_either_id,
    an_approval_link_decides_once,
    late_forbidden_or_unknown_decisions_are_refused,
    the_outbox_is_listed_and_retried_only_when_dead,
    dry_runs_and_backtests_change_nothing,
    rulesets_roll_back_disable_enable_and_delete,
    roles_name_who_approves,
    the_audit_log_names_who_did_what,
    rulesets_of_another_tenant_are_not_found,
    work_of_another_tenant_is_not_found,
    tasks_and_notifications_are_listed_by_person_and_role,
}

/// A scratch database's `what`: short enough that the database's name
/// (`steward_{what}_{pid}_{nanos}`) stays within PostgreSQL's 63 bytes.
fn scratch_name(case: &str) -> String {
    format!("api_{}", &case[..case.len().min(22)])
}

/// The engine's part on a case's store: handles the stored pending events
/// `ids` of `tenant` (see `common::run_engine`).
type Engine<'a> = Box<dyn Fn(&str, &[&str]) + 'a>;

/// What a case starts from: a router over a fresh store, and the engine's
/// part on that store.
struct Fixture<'a> {
    client: Client,
    engine: Engine<'a>,
}

/// The tokens the fixture made: `acme`'s (every scope), `beta`'s, and a
/// read-only one of `acme`'s.
struct Tokens {
    acme: String,
    beta: String,
    reader: String,
}

/// Runs `case` on an `App` over a fresh store from `open`.
fn run<'a, S: Store, F: Future<Output = ()>>(
    open: &'a dyn Fn() -> S,
    case: impl FnOnce(Fixture<'a>) -> F,
) {
    let store: Arc<dyn Backend> = Arc::new(open());
    let app = App {
        store: store.clone(),
        admin_token: Some(ADMIN.into()),
        public_url: "http://steward.test".into(),
        metrics: Some(Arc::new(|| "steward_up 1\n".to_string())),
        programs: Default::default(),
        sealer: None,
        limits: Default::default(),
        destinations: Default::default(),
    };
    let fixture = Fixture {
        client: Client {
            router: steward_server::router(app),
        },
        engine: Box::new(move |tenant, ids| run_engine(open(), tenant, ids)),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(case(fixture));
    drop(rt);
    // The store (and its own runtime) goes last, outside the test's.
    drop(store);
}

impl Fixture<'_> {
    /// The engine handles the stored pending events `ids` of `tenant`, on
    /// a store of its own (which blocks: off the runtime's workers).
    fn run_engine(&self, tenant: &str, ids: &[&str]) {
        tokio::task::block_in_place(|| (self.engine)(tenant, ids));
    }

    /// Tenants `acme` and `beta`, and their tokens.
    async fn tenants(&self) -> Tokens {
        let c = &self.client;
        for id in ["acme", "beta"] {
            let a = c
                .send("POST", "/v1/tenants", ADMIN, json!({"id": id}))
                .await;
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        }
        let token = |a: Answer| -> String {
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
            a.json()["token"].as_str().unwrap().to_string()
        };
        let acme = token(
            c.call("POST", "/v1/tenants/acme/tokens", Some(ADMIN), None, &[])
                .await,
        );
        let beta = token(
            c.call("POST", "/v1/tenants/beta/tokens", Some(ADMIN), None, &[])
                .await,
        );
        let reader = token(
            c.send(
                "POST",
                "/v1/tenants/acme/tokens",
                ADMIN,
                json!({"scopes": ["read"]}),
            )
            .await,
        );
        Tokens { acme, beta, reader }
    }

    /// The tenants, and `acme`'s ruleset `jobs` (version 1, `RULES`).
    async fn deployed(&self) -> Tokens {
        let t = self.tenants().await;
        let a = self
            .client
            .send("PUT", "/v1/rulesets/jobs", &t.acme, jobs_files())
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        t
    }

    /// The ruleset, and `acme`'s events `j1`, `j2` and `j3` handled by the
    /// engine: it asks for approvals (j1 now; j2 three days ago, so its
    /// deadline has passed) and sets timers.
    async fn seeded(&self) -> Tokens {
        let t = self.deployed().await;
        let a = post_jobs(&self.client, &t.acme).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
        self.run_engine("acme", &["j1", "j3"]);
        self.run_engine("acme", &["j2"]);
        t
    }
}

fn problem(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(
        a.headers.get("content-type").unwrap(),
        "application/problem+json",
        "{}",
        a.text
    );
    let j = a.json();
    assert_eq!(j["code"], code, "{}", a.text);
    assert_eq!(j["status"], status.as_u16());
    assert_eq!(j["type"], format!("urn:steward:problem:{code}"));
    assert!(j["title"].is_string() && j["detail"].is_string());
}

fn encode(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn job(id: &str, at: &str, amount: f64) -> Value {
    json!({"id": id, "type": "job", "occurred_at": at, "key": id, "payload": {"id": id, "amount": amount}})
}

fn jobs_files() -> Value {
    json!({"files": {"jobs.stw": RULES}})
}

/// `RULES` with the reminder's text changed: what a backtest compares and
/// version 2 deploys.
fn candidate() -> String {
    RULES.replace("log \"remind {id}\"", "log \"nudge {id}\"")
}

/// Posts `j1` (now, 500), `j2` (three days ago, 900) and `j3` (in five
/// minutes, 5) as `acme`.
async fn post_jobs(c: &Client, acme: &str) -> Answer {
    c.send(
        "POST",
        "/v1/events",
        acme,
        json!([
            job("j1", &at(chrono::Duration::zero()), 500.0),
            job("j2", &at(chrono::Duration::days(-3)), 900.0),
            job("j3", &at(chrono::Duration::minutes(5)), 5.0)
        ]),
    )
    .await
}

/// The id of the pending approval the engine asked for `event`.
async fn pending_approval(c: &Client, token: &str, event: &str) -> String {
    let a = c.get("/v1/approvals?status=pending", token).await;
    a.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["event"] == event)
        .unwrap_or_else(|| panic!("no approval for {event}: {}", a.text))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A link to decide approval `id`: its path on this server.
async fn link(c: &Client, token: &str, id: &str) -> String {
    let a = c
        .call(
            "POST",
            &format!("/v1/approvals/{}/links", encode(id)),
            Some(token),
            None,
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let url = a.json()["url"].as_str().unwrap().to_string();
    url.strip_prefix("http://steward.test").unwrap().to_string()
}

/// The link page's form, approving as `by`.
fn approve_form(path: &str, by: &str) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("decision=approve&by={by}")))
        .unwrap()
}

/// Health, metrics, the OpenAPI document naming every route, and the
/// problems for an unknown route and a wrong method.
async fn operations_and_the_openapi_document_answer(f: Fixture<'_>) {
    let c = &f.client;
    let a = c.call("GET", "/healthz", None, None, &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(a.headers.get("x-request-id").is_some(), "a request id");
    let a = c.call("GET", "/metrics", None, None, &[]).await;
    assert_eq!(a.text, "steward_up 1\n");
    let a = c.call("GET", "/v1/openapi.json", None, None, &[]).await;
    let doc = a.json();
    for path in [
        "/v1/tenants",
        "/v1/tenants/{tenant}/tokens",
        "/v1/validate",
        "/v1/rulesets",
        "/v1/rulesets/{name}",
        "/v1/rulesets/{name}/versions",
        "/v1/rulesets/{name}/versions/{version}",
        "/v1/rulesets/{name}/rollback",
        "/v1/rulesets/{name}/disable",
        "/v1/rulesets/{name}/enable",
        "/v1/rulesets/{name}/backtest",
        "/v1/events",
        "/v1/events/{id}",
        "/v1/events/{id}/trace",
        "/v1/actions",
        "/v1/actions/{id}/retry",
        "/v1/timers",
        "/v1/tasks",
        "/v1/notifications",
        "/v1/approvals",
        "/v1/approvals/{id}",
        "/v1/approvals/{id}/approve",
        "/v1/approvals/{id}/reject",
        "/v1/approvals/{id}/links",
        "/v1/dry-run",
        "/v1/audit",
        "/v1/roles",
        "/v1/roles/{role}",
        "/approve/{token}",
        "/healthz",
        "/metrics",
        "/v1/openapi.json",
    ] {
        assert!(doc["paths"][path].is_object(), "the document lacks {path}");
    }
    problem(
        &c.call("GET", "/nowhere", None, None, &[]).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    problem(
        &c.call("DELETE", "/v1/events", Some(ADMIN), None, &[]).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

/// Tenants: the admin token only; bad bodies are 400 with the path.
async fn tenants_are_created_by_the_admin_only(f: Fixture<'_>) {
    let c = &f.client;
    let new = json!({"id": "acme"}).to_string();
    problem(
        &c.call("POST", "/v1/tenants", None, Some(&new), &[]).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    problem(
        &c.call("POST", "/v1/tenants", Some("nope"), Some(&new), &[])
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let a = c
        .call("POST", "/v1/tenants", Some(ADMIN), Some("{\"id\": "), &[])
        .await;
    problem(&a, StatusCode::BAD_REQUEST, "invalid_json");
    let a = c.send("POST", "/v1/tenants", ADMIN, json!({"id": 5})).await;
    problem(&a, StatusCode::BAD_REQUEST, "invalid_field");
    assert!(
        a.json()["detail"].as_str().unwrap().contains("`id`"),
        "{}",
        a.text
    );
    problem(
        &c.send("POST", "/v1/tenants", ADMIN, json!({"id": "a b"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_tenant",
    );
    let a = c
        .call("POST", "/v1/tenants", Some(ADMIN), Some(&new), &[])
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    problem(
        &c.call("POST", "/v1/tenants", Some(ADMIN), Some(&new), &[])
            .await,
        StatusCode::CONFLICT,
        "tenant_exists",
    );
    assert_eq!(
        c.send("POST", "/v1/tenants", ADMIN, json!({"id": "beta"}))
            .await
            .status,
        StatusCode::CREATED
    );
}

/// A retry with the same key gets the first answer; the key with another
/// body is refused.
async fn an_idempotency_key_replays_the_first_answer(f: Fixture<'_>) {
    let c = &f.client;
    let new = json!({"id": "acme"}).to_string();
    let key = [("idempotency-key", "k1")];
    let a = c
        .call("POST", "/v1/tenants", Some(ADMIN), Some(&new), &key)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let again = c
        .call("POST", "/v1/tenants", Some(ADMIN), Some(&new), &key)
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "a retry gets the answer");
    assert_eq!(again.text, a.text);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    let other = json!({"id": "other"}).to_string();
    problem(
        &c.call("POST", "/v1/tenants", Some(ADMIN), Some(&other), &key)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    problem(
        &c.call("POST", "/v1/tenants", Some(ADMIN), Some(&new), &[])
            .await,
        StatusCode::CONFLICT,
        "tenant_exists",
    );
}

/// Tokens: for a tenant that exists, with known scopes; a forged one is
/// refused.
async fn tokens_are_issued_per_tenant_and_scope(f: Fixture<'_>) {
    let c = &f.client;
    // The fixture's tokens are made as the routes' callers would.
    let t = f.tenants().await;
    problem(
        &c.send("POST", "/v1/tenants/nobody/tokens", ADMIN, json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    problem(
        &c.send(
            "POST",
            "/v1/tenants/acme/tokens",
            ADMIN,
            json!({"scopes": ["fly"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_scope",
    );
    let forged = format!("{}x", &t.acme);
    problem(
        &c.get("/v1/rulesets", &forged).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

/// Validate and deploy: diagnostics name the file and line; a read token
/// cannot deploy; deploying the same files again is no new version.
async fn rulesets_are_validated_and_deployed(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, reader, .. } = f.tenants().await;
    let files = jobs_files();
    let a = c.send("POST", "/v1/validate", &acme, files.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["diagnostics"], json!([]));
    let bad = json!({"files": {"jobs.stw": "rule r when job if amont > 1.0 then log \"x\" end\nevent job { amount: float }\n"}});
    let a = c.send("POST", "/v1/validate", &acme, bad.clone()).await;
    let d = &a.json()["diagnostics"][0];
    assert_eq!(d["file"], "jobs.stw", "{}", a.text);
    assert_eq!(d["line"], 1);
    assert!(d["code"].as_str().unwrap().starts_with('E'));
    let a = c.send("PUT", "/v1/rulesets/jobs", &acme, bad).await;
    problem(&a, StatusCode::UNPROCESSABLE_ENTITY, "rules_invalid");
    assert_eq!(a.json()["diagnostics"][0]["file"], "jobs.stw");
    problem(
        &c.send("PUT", "/v1/rulesets/jobs", &reader, files.clone())
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let a = c
        .send("PUT", "/v1/rulesets/jobs", &acme, files.clone())
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.json()["version"], 1);
    let a = c
        .send("PUT", "/v1/rulesets/jobs", &acme, files.clone())
        .await;
    assert_eq!(a.status, StatusCode::OK, "unchanged: {}", a.text);
    assert_eq!(a.json()["version"], 1);
}

/// Events: accepted pending, a duplicate once; the wrong tenant, a bad
/// item (named by its index), too many or too large, and a read token are
/// refused.
async fn events_are_accepted_once_and_bad_batches_refused(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, reader, .. } = f.deployed().await;
    let acme = acme.as_str();
    let a = post_jobs(c, acme).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert_eq!(
        a.json()["data"][0],
        json!({"id": "j1", "status": "pending"})
    );
    let a = c
        .send(
            "POST",
            "/v1/events",
            acme,
            job("j1", &at(chrono::Duration::zero()), 500.0),
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::ACCEPTED,
        "a duplicate is accepted once"
    );
    let mut wrong = job("x", "2026-11-20T10:00:00Z", 1.0);
    wrong["tenant"] = json!("beta");
    problem(
        &c.send("POST", "/v1/events", acme, wrong).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "wrong_tenant",
    );
    let a = c
        .send(
            "POST",
            "/v1/events",
            acme,
            json!([job("y", "2026-11-20T10:00:00Z", 1.0), {"id": 7}]),
        )
        .await;
    problem(&a, StatusCode::BAD_REQUEST, "invalid_field");
    assert!(a.text.contains("[1]"), "{}", a.text);
    let many: Vec<Value> = (0..1001)
        .map(|i| job(&format!("m{i}"), "2026-11-20T10:00:00Z", 1.0))
        .collect();
    problem(
        &c.send("POST", "/v1/events", acme, json!(many)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    );
    let huge = format!("{{\"id\": \"{}\"}}", "x".repeat(2 << 20));
    problem(
        &c.call("POST", "/v1/events", Some(acme), Some(&huge), &[])
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    );
    problem(
        &c.send(
            "POST",
            "/v1/events",
            &reader,
            job("z", "2026-11-20T10:00:00Z", 1.0),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // Nothing of a refused batch is stored.
    let a = c.get("/v1/events?limit=500", acme).await;
    let mut ids: Vec<&str> = Vec::new();
    let page = a.json();
    for e in page["data"].as_array().unwrap() {
        ids.push(e["id"].as_str().unwrap());
    }
    ids.sort();
    assert_eq!(ids, ["j1", "j2", "j3"], "{}", a.text);
}

/// Events: lists with pages, bad queries, one event, and the trace the
/// worker kept.
async fn events_are_listed_by_page_and_traced(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, .. } = f.seeded().await;
    let acme = acme.as_str();
    let a = c.get("/v1/events?limit=2", acme).await;
    let page = a.json();
    assert_eq!(page["data"].as_array().unwrap().len(), 2, "{}", a.text);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let a = c
        .get(&format!("/v1/events?limit=2&cursor={cursor}"), acme)
        .await;
    assert_eq!(a.json()["data"][0]["id"], "j3", "{}", a.text);
    assert!(a.json()["next_cursor"].is_null());
    for q in [
        "limit=0",
        "limit=501",
        "cursor=!!",
        "status=lost",
        "limit=x",
    ] {
        let a = c.get(&format!("/v1/events?{q}"), acme).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}: {}", a.text);
    }
    let a = c.get("/v1/events/j1", acme).await;
    assert_eq!(a.json()["status"], "processed", "{}", a.text);
    problem(
        &c.get("/v1/events/none", acme).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // The trace the worker kept: every rule of the type, and what it did.
    let trace = c.get("/v1/events/j1/trace", acme).await.json();
    assert_eq!(trace["trace"]["rules"][0]["rule"], "big_jobs", "{trace}");
    assert_eq!(trace["trace"]["rules"][0]["matched"], true, "{trace}");
    problem(
        &c.get("/v1/events/none/trace", acme).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// Rulesets, their files and versions, read with a read token too.
async fn rulesets_and_their_versions_are_read(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, reader, .. } = f.seeded().await;
    let acme = acme.as_str();
    let a = c.get("/v1/rulesets", &reader).await;
    assert_eq!(a.json()["data"][0]["name"], "jobs", "{}", a.text);
    let a = c.get("/v1/rulesets/jobs", acme).await;
    assert_eq!(a.json()["files"]["jobs.stw"], RULES);
    assert_eq!(
        c.get("/v1/rulesets/jobs/versions", acme).await.json()["data"][0]["version"],
        1
    );
    assert!(c.get("/v1/rulesets/jobs/versions/1", acme).await.json()["files"].is_object());
    problem(
        &c.get("/v1/rulesets/jobs/versions/9", acme).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    problem(
        &c.get("/v1/rulesets/jobs/versions/x", acme).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// The engine's timers, with what cancels them and ids of the API's form.
async fn timers_are_listed(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, .. } = f.seeded().await;
    let acme = acme.as_str();
    let a = c.get("/v1/timers", acme).await;
    let timers = a.json();
    assert_eq!(timers["data"].as_array().unwrap().len(), 3, "{}", a.text);
    assert_eq!(
        timers["data"][0]["cancelled_by"][0]["event_type"],
        "job.done"
    );
    let timers = c.get("/v1/timers", acme).await.json();
    assert!(timers["data"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("tmr_"));
}

/// Approvals by status, one with what it does, found by its id and by
/// the engine's.
async fn approvals_are_listed_and_found_by_either_id(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, .. } = f.seeded().await;
    let acme = acme.as_str();
    for status in ["expired", "cancelled"] {
        let a = c.get(&format!("/v1/approvals?status={status}"), acme).await;
        assert_eq!(a.json()["data"], json!([]), "{status}: {}", a.text);
    }
    problem(
        &c.get("/v1/approvals?status=lost", acme).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    let a = c.get("/v1/approvals?status=pending", acme).await;
    let approvals = a.json()["data"].as_array().unwrap().clone();
    assert_eq!(approvals.len(), 2, "{}", a.text);
    let j1 = approvals.iter().find(|x| x["event"] == "j1").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(approvals.iter().any(|x| x["event"] == "j2"), "{}", a.text);
    let one = c
        .get(&format!("/v1/approvals/{}", encode(&j1)), acme)
        .await
        .json();
    assert_eq!(one["role"], "owner");
    assert_eq!(one["on_approve"], json!(["log"]), "{one}");
    assert_eq!(one["on_reject"], json!(["log"]), "{one}");
    // Ids go into a path as they are; the engine's id (as earlier
    // releases listed it, and as the action's arguments hold it) still
    // does, percent-encoded.
    assert!(
        j1.starts_with("apr_")
            && j1
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "{j1}"
    );
    assert_eq!(
        c.get(&format!("/v1/approvals/{j1}"), acme).await.json()["id"],
        j1
    );
    let outbox = c.get("/v1/actions", acme).await.json();
    let engine_id = outbox["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["action"] == "approval_requested" && x["event"] == "j1")
        .map(|x| x["args"]["approval"].as_str().unwrap().to_string())
        .unwrap();
    assert!(engine_id.contains('/'), "{engine_id}");
    let old = c
        .get(&format!("/v1/approvals/{}", encode(&engine_id)), acme)
        .await;
    assert_eq!(old.json()["id"], j1, "{}", old.text);
}

/// Links: the page shows and decides nothing; its POST decides once; a
/// second decision over the API is 409 with the first.
async fn an_approval_link_decides_once(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, .. } = f.seeded().await;
    let acme = acme.as_str();
    let j1 = pending_approval(c, acme, "j1").await;
    let path = link(c, acme, &j1).await;
    let page = c.call("GET", &path, None, None, &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Approve") && page.text.contains("big_jobs"));
    let again = c.call("GET", &path, None, None, &[]).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "opening twice decides nothing"
    );
    assert_eq!(
        c.get(&format!("/v1/approvals/{}", encode(&j1)), acme)
            .await
            .json()["status"],
        "pending"
    );
    let res = c
        .router
        .clone()
        .oneshot(approve_form(&path, "Olga"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = c
        .router
        .clone()
        .oneshot(approve_form(&path, "Olga"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GONE, "a link decides once");
    let a = c.get(&format!("/v1/approvals/{}", encode(&j1)), acme).await;
    let d = &a.json()["decision"];
    assert_eq!(
        (d["by"].as_str(), d["via"].as_str()),
        (Some("Olga"), Some("link")),
        "{}",
        a.text
    );
    let a = c
        .send(
            "POST",
            &format!("/v1/approvals/{}/reject", encode(&j1)),
            acme,
            json!({"by": "Sam"}),
        )
        .await;
    problem(&a, StatusCode::CONFLICT, "already_decided");
    assert_eq!(a.json()["decision"]["by"], "Olga");
}

/// Deciding after the deadline (410), with a read token (403), an unknown
/// approval (404), a bad body (400) or a bogus link (404).
async fn late_forbidden_or_unknown_decisions_are_refused(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, reader, .. } = f.seeded().await;
    let acme = acme.as_str();
    let j2 = pending_approval(c, acme, "j2").await;
    problem(
        &c.send(
            "POST",
            &format!("/v1/approvals/{}/approve", encode(&j2)),
            acme,
            json!({"by": "Sam"}),
        )
        .await,
        StatusCode::GONE,
        "expired",
    );
    problem(
        &c.send(
            "POST",
            &format!("/v1/approvals/{}/approve", encode(&j2)),
            &reader,
            json!({"by": "Sam"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    problem(
        &c.send(
            "POST",
            "/v1/approvals/nope/approve",
            acme,
            json!({"by": "Sam"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    problem(
        &c.send("POST", "/v1/approvals/nope/approve", acme, json!({"by": 3}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    let bogus = c.call("GET", "/approve/acme.bogus", None, None, &[]).await;
    assert_eq!(bogus.status, StatusCode::NOT_FOUND);
}

/// The outbox: filters, and a retry only of a dead action.
async fn the_outbox_is_listed_and_retried_only_when_dead(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, .. } = f.seeded().await;
    let acme = acme.as_str();
    let a = c.get("/v1/actions?status=pending", acme).await;
    let actions = a.json()["data"].as_array().unwrap().clone();
    assert!(!actions.is_empty(), "{}", a.text);
    let id = actions[0]["id"].as_str().unwrap().to_string();
    problem(
        &c.call(
            "POST",
            &format!("/v1/actions/{id}/retry"),
            Some(acme),
            None,
            &[],
        )
        .await,
        StatusCode::CONFLICT,
        "not_dead",
    );
    problem(
        &c.call("POST", "/v1/actions/none/retry", Some(acme), None, &[])
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        c.get("/v1/actions?rule=nothing", acme).await.json()["data"],
        json!([])
    );
    problem(
        &c.get("/v1/actions?since=yesterday", acme).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
}

/// Dry runs (with the deployed rules or given files) and backtests change
/// nothing.
async fn dry_runs_and_backtests_change_nothing(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, .. } = f.seeded().await;
    let acme = acme.as_str();
    let a = c
        .send(
            "POST",
            "/v1/dry-run",
            acme,
            json!({"events": [job("d1", "2026-11-20T10:00:00Z", 5.0)], "until": "2026-11-20T12:00:00Z"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let texts: Vec<Value> = a.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["args"]["text"].clone())
        .collect();
    assert_eq!(texts, [json!("remind d1")]);
    let a = c
        .send(
            "POST",
            "/v1/dry-run",
            acme,
            json!({"files": {"x.stw": "event job { id: string }\nrule x when job then log \"x {id}\" end\n"},
                   "events": [job("d2", "2026-11-20T10:00:00Z", 5.0)]}),
        )
        .await;
    assert_eq!(a.json()["actions"][0]["args"]["text"], "x d2", "{}", a.text);
    let mut bad = job("d3", "2026-11-20T10:00:00Z", 5.0);
    bad["payload"]["amount"] = json!("high");
    let a = c
        .send("POST", "/v1/dry-run", acme, json!({"events": [bad]}))
        .await;
    assert_eq!(a.json()["rejected"][0]["id"], "d3", "{}", a.text);
    problem(
        &c.send(
            "POST",
            "/v1/dry-run",
            acme,
            json!({"events": [], "approvals": "maybe"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    assert_eq!(
        c.get("/v1/events/d1", acme).await.status,
        StatusCode::NOT_FOUND,
        "a dry run stores nothing"
    );
    let a = c
        .send(
            "POST",
            "/v1/rulesets/jobs/backtest",
            acme,
            json!({"files": {"jobs.stw": candidate()}, "to": at(chrono::Duration::days(1))}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let b = a.json();
    assert_eq!(b["events"], 3, "{}", a.text);
    let added: Vec<Value> = b["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["args"]["text"].clone())
        .collect();
    assert!(added.contains(&json!("nudge j3")), "{}", a.text);
    let removed: Vec<Value> = b["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["args"]["text"].clone())
        .collect();
    assert!(removed.contains(&json!("remind j3")), "{}", a.text);
}

/// Versions: rollback, disable (cancelling the ruleset's timers and
/// approvals), enable, delete.
async fn rulesets_roll_back_disable_enable_and_delete(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, .. } = f.seeded().await;
    let acme = acme.as_str();
    let v2 = json!({"files": {"jobs.stw": candidate()}});
    assert_eq!(
        c.send("PUT", "/v1/rulesets/jobs", acme, v2).await.json()["version"],
        2
    );
    let a = c
        .send(
            "POST",
            "/v1/rulesets/jobs/rollback",
            acme,
            json!({"version": 1}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.json()["version"], 3);
    problem(
        &c.send(
            "POST",
            "/v1/rulesets/jobs/rollback",
            acme,
            json!({"version": 42}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let a = c
        .call("POST", "/v1/rulesets/jobs/disable", Some(acme), None, &[])
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let cancelled = a.json()["cancelled"].as_array().unwrap().len();
    assert!(
        cancelled >= 2,
        "its timers and approvals are cancelled: {}",
        a.text
    );
    assert_eq!(c.get("/v1/timers", acme).await.json()["data"], json!([]));
    assert_eq!(
        c.get("/v1/rulesets/jobs", acme).await.json()["enabled"],
        false
    );
    assert_eq!(
        c.call("POST", "/v1/rulesets/jobs/enable", Some(acme), None, &[])
            .await
            .status,
        StatusCode::OK
    );
    let a = c
        .call("DELETE", "/v1/rulesets/jobs", Some(acme), None, &[])
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    problem(
        &c.get("/v1/rulesets/jobs", acme).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// Roles: who an approval's mail goes to, per tenant.
async fn roles_name_who_approves(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens {
        acme, beta, reader, ..
    } = f.tenants().await;
    let acme = acme.as_str();
    let a = c
        .send(
            "PUT",
            "/v1/roles/owner",
            acme,
            json!({"emails": ["olga@example.com"]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    problem(
        &c.send(
            "PUT",
            "/v1/roles/owner",
            acme,
            json!({"emails": ["no address"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    problem(
        &c.send("PUT", "/v1/roles/owner", &reader, json!({"emails": []}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_eq!(
        c.get("/v1/roles", acme).await.json()["data"],
        json!([{"role": "owner", "emails": ["olga@example.com"]}])
    );
    assert_eq!(c.get("/v1/roles", &beta).await.json()["data"], json!([]));
}

/// The audit log names who did what: the case does each of those things
/// first (a rollback, disable and enable, an approval by link, a role).
async fn the_audit_log_names_who_did_what(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, .. } = f.seeded().await;
    let acme = acme.as_str();
    let j1 = pending_approval(c, acme, "j1").await;
    let path = link(c, acme, &j1).await;
    let res = c
        .router
        .clone()
        .oneshot(approve_form(&path, "Olga"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v2 = json!({"files": {"jobs.stw": candidate()}});
    let a = c.send("PUT", "/v1/rulesets/jobs", acme, v2).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let a = c
        .send(
            "POST",
            "/v1/rulesets/jobs/rollback",
            acme,
            json!({"version": 1}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    for verb in ["disable", "enable"] {
        let a = c
            .call(
                "POST",
                &format!("/v1/rulesets/jobs/{verb}"),
                Some(acme),
                None,
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }
    let a = c
        .send(
            "PUT",
            "/v1/roles/owner",
            acme,
            json!({"emails": ["olga@example.com"]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);

    let a = c.get("/v1/audit?limit=500", acme).await;
    let whats: Vec<String> = a.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap().to_string())
        .collect();
    for what in [
        "tenant.created",
        "token.created",
        "ruleset.deployed",
        "ruleset.rolled_back",
        "ruleset.disabled",
        "ruleset.enabled",
        "approval.approved",
        "role.set",
    ] {
        assert!(whats.iter().any(|w| w == what), "no `{what}` in {whats:?}");
    }
    let approved = a.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["what"] == "approval.approved")
        .cloned()
        .unwrap();
    assert_eq!(approved["who"], "Olga");
    assert_eq!(approved["detail"]["via"], "link");
}

/// Tenant B can neither read, list, deploy over, roll back, disable,
/// enable nor delete a ruleset of tenant A's: 404 for each, never a hint
/// that it exists; the same name deployed is B's own.
async fn rulesets_of_another_tenant_are_not_found(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, beta, .. } = f.tenants().await;
    let (acme, beta) = (acme.as_str(), beta.as_str());
    let files = jobs_files();
    assert_eq!(
        c.send("PUT", "/v1/rulesets/mine", acme, files.clone())
            .await
            .status,
        StatusCode::CREATED
    );
    problem(
        &c.get("/v1/rulesets/mine", beta).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(c.get("/v1/rulesets", beta).await.json()["data"], json!([]));
    problem(
        &c.get("/v1/rulesets/mine/versions", beta).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    for path in ["disable", "enable"] {
        problem(
            &c.call(
                "POST",
                &format!("/v1/rulesets/mine/{path}"),
                Some(beta),
                None,
                &[],
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    problem(
        &c.send(
            "POST",
            "/v1/rulesets/mine/rollback",
            beta,
            json!({"version": 1}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    problem(
        &c.call("DELETE", "/v1/rulesets/mine", Some(beta), None, &[])
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Deploying over the same name makes beta's own ruleset.
    assert_eq!(
        c.send("PUT", "/v1/rulesets/mine", beta, files).await.json()["version"],
        1
    );
    assert_eq!(
        c.get("/v1/rulesets/mine/versions", acme).await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Tenant B can neither read, list, decide, link, retry nor trace
/// anything of tenant A's work: 404 for each, never a hint that it
/// exists; approvals pending and decided alike; nor read A's audit.
async fn work_of_another_tenant_is_not_found(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, beta, .. } = f.seeded().await;
    let (acme, beta) = (acme.as_str(), beta.as_str());
    for path in ["/v1/events/j1", "/v1/events/j1/trace"] {
        problem(&c.get(path, beta).await, StatusCode::NOT_FOUND, "not_found");
    }
    for path in [
        "/v1/events",
        "/v1/actions",
        "/v1/timers",
        "/v1/approvals",
        "/v1/tasks",
        "/v1/notifications",
    ] {
        let a = c.get(path, beta).await;
        assert_eq!(a.json()["data"], json!([]), "{path}: {}", a.text);
    }
    // Pending approvals, then with j1's decided.
    not_beta_s_approvals(c, acme, beta).await;
    let j1 = pending_approval(c, acme, "j1").await;
    let a = c
        .send(
            "POST",
            &format!("/v1/approvals/{}/approve", encode(&j1)),
            acme,
            json!({"by": "Sam"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    not_beta_s_approvals(c, acme, beta).await;
    let a = c.get("/v1/actions", acme).await;
    for action in a.json()["data"].as_array().unwrap() {
        let id = action["id"].as_str().unwrap();
        problem(
            &c.call(
                "POST",
                &format!("/v1/actions/{id}/retry"),
                Some(beta),
                None,
                &[],
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    // The audit log: acme's names its ruleset, beta's never does.
    let audit = c.get("/v1/audit?limit=500", acme).await.json();
    assert!(
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["subject"] == "jobs"),
        "{audit}"
    );
    let audit = c.get("/v1/audit?limit=500", beta).await.json();
    assert!(audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["subject"] != "jobs"));
}

/// Every approval of `acme`'s is 404 to `beta`: to decide, read or link.
async fn not_beta_s_approvals(c: &Client, acme: &str, beta: &str) {
    let a = c.get("/v1/approvals", acme).await;
    let approvals = a.json()["data"].as_array().unwrap().clone();
    assert!(!approvals.is_empty(), "{}", a.text);
    for approval in &approvals {
        let id = encode(approval["id"].as_str().unwrap());
        for verb in ["approve", "reject"] {
            problem(
                &c.send(
                    "POST",
                    &format!("/v1/approvals/{id}/{verb}"),
                    beta,
                    json!({"by": "x"}),
                )
                .await,
                StatusCode::NOT_FOUND,
                "not_found",
            );
        }
        problem(
            &c.get(&format!("/v1/approvals/{id}"), beta).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        problem(
            &c.call(
                "POST",
                &format!("/v1/approvals/{id}/links"),
                Some(beta),
                None,
                &[],
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
}

/// Tasks and notifications for people and for roles, listed by either,
/// with pages; another tenant sees none of them.
async fn tasks_and_notifications_are_listed_by_person_and_role(f: Fixture<'_>) {
    let c = &f.client;
    let Tokens { acme, beta, .. } = f.seeded().await;
    let (acme, beta) = (acme.as_str(), beta.as_str());
    assert_eq!(c.get("/v1/tasks", acme).await.status, StatusCode::OK);
    assert_eq!(
        c.get("/v1/notifications", acme).await.status,
        StatusCode::OK
    );
    let lead = |id: &str, owner: Option<&str>, email: &str| {
        json!({"id": id, "type": "lead", "occurred_at": at(chrono::Duration::zero()), "key": id,
               "payload": {"id": id, "owner": owner, "owner_email": email}})
    };
    let a = c
        .send(
            "POST",
            "/v1/events",
            acme,
            json!([
                lead("l1", Some("bo"), "bo@example.com"),
                lead("l2", None, "al@example.com")
            ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    f.run_engine("acme", &["l1", "l2"]);

    let list = |v: Value, field: &str| -> Vec<String> {
        let mut out: Vec<String> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x[field].as_str().unwrap().to_string())
            .collect();
        out.sort();
        out
    };
    let a = c.get("/v1/tasks?assignee=bo", acme).await;
    assert_eq!(list(a.json(), "title"), ["Call l1"], "{}", a.text);
    assert_eq!(a.json()["data"][0]["role"], Value::Null);
    assert_eq!(a.json()["data"][0]["status"], "open");
    assert!(a.json()["data"][0]["due"].is_string());
    let a = c.get("/v1/tasks?assignee=desk", acme).await;
    assert_eq!(list(a.json(), "title"), ["Call l2"], "{}", a.text);
    let a = c.get("/v1/tasks?role=sales", acme).await;
    assert_eq!(
        list(a.json(), "title"),
        ["Review l1", "Review l2"],
        "{}",
        a.text
    );
    assert_eq!(a.json()["data"][0]["assignee"], Value::Null);
    let a = c.get("/v1/tasks?role=sales&assignee=bo", acme).await;
    assert_eq!(a.json()["data"], json!([]), "{}", a.text);
    let a = c.get("/v1/tasks?role=sales&limit=1", acme).await;
    let cursor = a.json()["next_cursor"].as_str().unwrap().to_string();
    let a = c
        .get(
            &format!("/v1/tasks?role=sales&limit=1&cursor={cursor}"),
            acme,
        )
        .await;
    assert_eq!(a.json()["data"].as_array().unwrap().len(), 1, "{}", a.text);
    assert!(a.json()["next_cursor"].is_null(), "{}", a.text);

    let a = c
        .get("/v1/notifications?assignee=al%40example.com", acme)
        .await;
    assert_eq!(list(a.json(), "text"), ["New lead l2"], "{}", a.text);
    let a = c.get("/v1/notifications?role=sales", acme).await;
    assert_eq!(
        list(a.json(), "text"),
        ["Lead l1 in", "Lead l2 in"],
        "{}",
        a.text
    );
    let a = c.get("/v1/notifications?assignee=nobody", acme).await;
    assert_eq!(a.json()["data"], json!([]), "{}", a.text);
    // Another tenant sees none of them.
    let a = c.get("/v1/tasks?assignee=bo", beta).await;
    assert_eq!(a.json()["data"], json!([]), "{}", a.text);
}
