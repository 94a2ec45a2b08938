//! The console, page by page and form by form, on SQLite and on
//! PostgreSQL, without a browser (the browser's own tests are in
//! `server/tests/console/`): sign in and out, the security headers, every
//! page's status, escaping of hostile event data, CSRF and `Origin`, the
//! scopes of a read token, the isolation of tenants, and the forms that
//! change things (decide, retry, deploy, disable).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;
use steward_db::Attempt;
use steward_server::{App, Backend};

mod common;
use common::*;

const RULES: &str = r#"
event job { id: string  amount: float }
event note { id: string  text: string }
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
rule noted when note then
  log "noted {text}"
end
"#;

/// What a browser keeps: the session's cookie, and the CSRF token its
/// pages carry.
struct Browser {
    cookie: String,
    csrf: String,
}

impl Browser {
    async fn sign_in(c: &Client, token: &str) -> Browser {
        let a = c
            .page(
                "POST",
                "/sign-in",
                None,
                Some(&form(&[("token", token)])),
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text);
        let set = a.headers["set-cookie"].to_str().unwrap().to_string();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let cookie = set.split(';').next().unwrap().to_string();
        let mut b = Browser {
            cookie,
            csrf: String::new(),
        };
        if a.headers["location"] == "/" {
            let page = b.get(c, "/").await;
            b.csrf = csrf_of(&page.text);
        }
        b
    }

    async fn get(&self, c: &Client, path: &str) -> Answer {
        c.page("GET", path, Some(&self.cookie), None, &[]).await
    }

    async fn post(&self, c: &Client, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        c.page("POST", path, Some(&self.cookie), Some(&form(&all)), &[])
            .await
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field");
    let rest = &html[at + 19..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn ok(a: &Answer, path: &str) {
    assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text);
    let csp = a.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(a.headers["x-frame-options"], "DENY");
    assert!(a.headers.contains_key("referrer-policy"));
    assert!(a.text.contains("<title>"), "{path}: a title");
}

async fn token(c: &Client, tenant: &str, scopes: &[&str]) -> String {
    let a = c
        .send(
            "POST",
            &format!("/v1/tenants/{tenant}/tokens"),
            ADMIN,
            json!({ "scopes": scopes }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    a.json()["token"].as_str().unwrap().to_string()
}

fn suite<S: Store>(open: &dyn Fn() -> S) {
    let store: Arc<dyn Backend> = Arc::new(open());
    let app = App {
        store,
        admin_token: Some(ADMIN.into()),
        public_url: "http://steward.test".into(),
        metrics: None,
        programs: Default::default(),
        sealer: None,
        limits: Default::default(),
        destinations: Default::default(),
    };
    let c = Client {
        router: steward_server::router(app),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (acme, reader, beta) = rt.block_on(async {
        for id in ["acme", "beta"] {
            let a = c.send("POST", "/v1/tenants", ADMIN, json!({ "id": id })).await;
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        }
        let all = ["read", "events:write", "rulesets:deploy", "approvals:decide"];
        let acme = token(&c, "acme", &all).await;
        let reader = token(&c, "acme", &["read"]).await;
        let beta = token(&c, "beta", &all).await;
        let a = c
            .send("PUT", "/v1/rulesets/main", &acme, json!({"files": {"main.stw": RULES}}))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let a = c
            .send("PUT", "/v1/rulesets/other", &beta, json!({"files": {"main.stw": RULES}}))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let now = at(chrono::Duration::zero());
        let hostile = "<script>alert(1)</script>\"><img src=x onerror=alert(2)> javascript:alert(3)";
        let a = c
            .send(
                "POST",
                "/v1/events",
                &acme,
                json!([
                    {"id": "j1", "type": "job", "occurred_at": now, "key": "j1", "payload": {"id": "j1", "amount": 500.0}},
                    {"id": "j2", "type": "job", "occurred_at": now, "key": "j2", "payload": {"id": "j2", "amount": 900.0}},
                    {"id": "n1", "type": "note", "occurred_at": now, "key": "<b>k</b>", "payload": {"id": "n1", "text": hostile}},
                ]),
            )
            .await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
        (acme, reader, beta)
    });
    run_engine(open(), "acme", &["j1", "j2", "n1"]);
    // One action dead, for Retry.
    {
        let store = open();
        let now = chrono::Utc::now();
        let claimed = store
            .claim_deliveries(now, now + chrono::Duration::minutes(1), 1)
            .unwrap();
        let first = claimed.first().expect("an action to deliver");
        store
            .attempted(
                first,
                &Attempt::Failed {
                    error: "HTTP 500 from the receiver".into(),
                    retry_at: None,
                },
            )
            .unwrap();
    }
    rt.block_on(pages(&c, &acme));
    rt.block_on(forms(&c, &acme, &reader));
    rt.block_on(isolation(&c, &beta));
    rt.block_on(admin(&c));
    rt.block_on(rate(&c, &beta));
}

/// A token's requests through the console count against its rate, as its
/// API requests do: past it, a 429 page that says when to come back.
async fn rate(c: &Client, beta: &str) {
    let b = Browser::sign_in(c, beta).await;
    let a = c
        .send(
            "PUT",
            "/v1/tenants/beta/quotas",
            ADMIN,
            json!({"requests_per_minute": 2}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // Two a minute, two held: of six requests at once, one is refused
    // (a refill takes 30 s).
    let mut refused = None;
    for _ in 0..6 {
        let a = b.get(c, "/events").await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(a);
            break;
        }
        ok(&a, "/events");
    }
    let a = refused.expect("a request past the rate refused");
    assert!(a.text.contains("try again in"), "{}", a.text);
}

async fn pages(c: &Client, acme: &str) {
    // Not signed in: to the sign-in page; a wrong token is refused.
    let a = c.page("GET", "/", None, None, &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.headers["location"], "/sign-in");
    ok(
        &c.page("GET", "/sign-in", None, None, &[]).await,
        "/sign-in",
    );
    let a = c
        .page("POST", "/sign-in", None, Some("token=acme.nope.nope"), &[])
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.text.contains("not valid"), "{}", a.text);

    let b = Browser::sign_in(c, acme).await;
    for path in [
        "/",
        "/rules",
        "/rules/main",
        "/rules/main/edit",
        "/rules/main/versions/1",
        "/rules/main/diff?from=1&to=1",
        "/rules/main/confirm/disable",
        "/new-ruleset",
        "/events",
        "/events?status=processed&key=j1",
        "/events/j1",
        "/events/n1",
        "/keys/j1",
        "/approvals",
        "/approvals?status=approved",
        "/approvals?status=cancelled",
        "/scheduled",
        "/deliveries",
        "/deliveries?status=dead",
        "/deliveries/retry-dead",
        "/tasks",
        "/tasks?show=notifications",
        "/audit",
    ] {
        let a = b.get(c, path).await;
        ok(&a, path);
        // Hostile text from events is shown as text, never as markup.
        assert!(!a.text.contains("<script>alert"), "{path}");
        assert!(!a.text.contains("<img src=x"), "{path}");
        assert!(!a.text.contains("<b>k</b>"), "{path}");
    }
    let a = b.get(c, "/events/n1").await;
    assert!(
        a.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        a.text
    );
    let a = b.get(c, "/events").await;
    assert!(a.text.contains("&lt;b&gt;k&lt;/b&gt;"), "the key, escaped");
    assert!(
        a.text.contains("/keys/%3Cb%3Ek%3C%2Fb%3E"),
        "the key's link, encoded"
    );
    // The why: every rule of the event's type, matched or not.
    let a = b.get(c, "/events/j1").await;
    assert!(
        a.text.contains("big_jobs") && a.text.contains("remind"),
        "{}",
        a.text
    );
    assert!(
        a.text.contains("amount &gt; 100.0"),
        "the condition: {}",
        a.text
    );
    // The time line of a key: its event, its timer, its approval.
    let a = b.get(c, "/keys/j1").await;
    assert!(
        a.text.contains("/events/j1") && a.text.contains("Timer of rule"),
        "{}",
        a.text
    );
    assert!(a.text.contains("Approval asked of"), "{}", a.text);
    // The overview counts what is there.
    let a = b.get(c, "/").await;
    assert!(a.text.contains("Recent rule errors"), "{}", a.text);
    // Scheduled: the timers with what they run and what cancels them.
    let a = b.get(c, "/scheduled").await;
    assert!(
        a.text.contains("remind") && a.text.contains("job.done"),
        "{}",
        a.text
    );
    // Highlighted rules.
    let a = b.get(c, "/rules/main").await;
    assert!(
        a.text.contains("class=\"tok-keyword\">rule</span>"),
        "{}",
        a.text
    );
    // A ruleset, event or version that is not there: 404 pages.
    for path in ["/rules/nope", "/events/nope", "/rules/main/versions/9"] {
        assert_eq!(b.get(c, path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    // Bad filters are 400 pages, not 500s.
    for path in [
        "/events?status=weird",
        "/events?since=yesterday",
        "/deliveries?status=x",
    ] {
        assert_eq!(
            b.get(c, path).await.status,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
}

async fn forms(c: &Client, acme: &str, reader: &str) {
    let b = Browser::sign_in(c, acme).await;
    let approvals = c.get("/v1/approvals?status=pending", acme).await.json();
    let ids: Vec<String> = approvals["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{approvals}");
    let engine_id = |api_id: &str| steward_server::ids::approval_from_path(api_id);
    let (first, second) = (engine_id(&ids[0]), engine_id(&ids[1]));

    // CSRF: without the token, with a wrong one, or from another site: 403.
    let decide = form(&[("id", &first), ("decision", "approve")]);
    let a = c
        .page(
            "POST",
            "/approvals/decide",
            Some(&b.cookie),
            Some(&decide),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    let wrong = form(&[("csrf", "x"), ("id", &first), ("decision", "approve")]);
    let a = c
        .page(
            "POST",
            "/approvals/decide",
            Some(&b.cookie),
            Some(&wrong),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    let evil = form(&[("csrf", &b.csrf), ("id", &second), ("decision", "reject")]);
    let a = c
        .page(
            "POST",
            "/approvals/decide",
            Some(&b.cookie),
            Some(&evil),
            &[("host", "steward.test"), ("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    let a = c
        .page(
            "POST",
            "/approvals/decide",
            Some(&b.cookie),
            Some(&evil),
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);

    // From this site with the token: the first approved, the second
    // rejected (with the `Origin` a browser sends).
    let a = b
        .post(
            c,
            "/approvals/decide",
            &[("id", &first), ("decision", "approve")],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text);
    let a = c
        .page(
            "POST",
            "/approvals/decide",
            Some(&b.cookie),
            Some(&form(&[
                ("csrf", &b.csrf),
                ("id", &second),
                ("decision", "reject"),
                ("comment", "too much"),
            ])),
            &[("host", "steward.test"), ("origin", "http://steward.test")],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text);
    let got = c
        .get(&format!("/v1/approvals/{}", ids[0]), acme)
        .await
        .json();
    assert_eq!(got["decision"]["decision"], "approved", "{got}");
    assert_eq!(got["decision"]["via"], "console", "{got}");
    let got = c
        .get(&format!("/v1/approvals/{}", ids[1]), acme)
        .await
        .json();
    assert_eq!(got["decision"]["decision"], "rejected", "{got}");
    assert_eq!(got["decision"]["comment"], "too much", "{got}");
    // Deciding again: a 409 page that says who decided first.
    let a = b
        .post(
            c,
            "/approvals/decide",
            &[("id", &second), ("decision", "approve")],
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert!(a.text.contains("rejected by"), "{}", a.text);

    // Retry: the dead action, then none left.
    let dead = c.get("/v1/actions?status=dead", acme).await.json();
    let dead_id = dead["data"][0]["id"].as_str().unwrap().to_string();
    let a = b.get(c, "/deliveries/retry-dead").await;
    assert!(a.text.contains("1 dead action(s)"), "{}", a.text);
    // "Retry every dead action" of another rule queues none.
    let a = b
        .post(c, "/deliveries/retry-dead", &[("rule", "no_such_rule")])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text);
    assert_eq!(a.headers["location"], "/deliveries?done=0");
    let a = b.post(c, "/deliveries/retry", &[("id", &dead_id)]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text);
    let got = c.get("/v1/actions?status=dead", acme).await.json();
    assert_eq!(got["data"].as_array().unwrap().len(), 0, "{got}");
    let a = b.post(c, "/deliveries/retry", &[("id", &dead_id)]).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);

    // The editor: a broken rule is shown with its diagnostic at its line.
    let broken = RULES.replace("if amount > 100.0", "if amount > \"lots\"");
    let a = b
        .post(
            c,
            "/rules/main/edit",
            &[("path", "main.stw"), ("text", &broken), ("do", "deploy")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(a.text.contains("do not check"), "{}", a.text);
    assert!(a.text.contains("error[E0"), "{}", a.text);
    let line = broken.lines().position(|l| l.contains("\"lots\"")).unwrap() + 1;
    let at_line = a
        .text
        .find(&format!("id=\"f0-L{line}\""))
        .expect("the line");
    let diag = a.text.find("error[E0").unwrap();
    assert!(diag > at_line, "the diagnostic follows its line");
    let versions = c.get("/v1/rulesets/main/versions", acme).await.json();
    assert_eq!(
        versions["data"].as_array().unwrap().len(),
        1,
        "nothing deployed"
    );
    // Backtest: the candidate's actions against the active ones.
    let changed = RULES.replace("log \"noted {text}\"", "log \"seen {id}\"");
    let a = b
        .post(
            c,
            "/rules/main/edit",
            &[("path", "main.stw"), ("text", &changed), ("do", "backtest")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(
        a.text.contains("1 added") && a.text.contains("1 removed"),
        "{}",
        a.text
    );
    // Deploy: to the ruleset's page, version 2.
    let a = b
        .post(
            c,
            "/rules/main/edit",
            &[("path", "main.stw"), ("text", &changed), ("do", "deploy")],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text);
    assert_eq!(a.headers["location"], "/rules/main");
    let head = c.get("/v1/rulesets/main", acme).await.json();
    assert_eq!(head["version"], 2, "{head}");
    // Disable: the confirmation says what it cancels (the timers), then
    // the change does it.
    let a = b.get(c, "/rules/main/confirm/disable").await;
    assert!(a.text.contains("This cancels"), "{}", a.text);
    assert!(a.text.contains("timer"), "{}", a.text);
    let timers = c.get("/v1/timers", acme).await.json();
    assert!(
        !timers["data"].as_array().unwrap().is_empty(),
        "the preview cancelled nothing"
    );
    let a = b.post(c, "/rules/main/confirm/disable", &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(a.text.contains("Done"), "{}", a.text);
    let head = c.get("/v1/rulesets/main", acme).await.json();
    assert_eq!(head["enabled"], false, "{head}");
    let a = b.post(c, "/rules/main/confirm/enable", &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // The audit log names the console's changes.
    let a = b.get(c, "/audit").await;
    assert!(
        a.text.contains("ruleset.disabled") && a.text.contains("action.retried"),
        "{}",
        a.text
    );

    // A read token: sees everything, is offered nothing that changes, and
    // is refused when it posts anyway.
    let r = Browser::sign_in(c, reader).await;
    for (path, control) in [
        ("/rules/main", "/confirm/disable"),
        ("/rules/main/edit", "value=\"deploy\""),
        ("/rules", "New ruleset"),
        ("/deliveries", "Retry every dead"),
    ] {
        let a = r.get(c, path).await;
        ok(&a, path);
        assert!(!a.text.contains(control), "{path} offers {control}");
    }
    for (path, fields) in [
        (
            "/approvals/decide",
            vec![("id", first.as_str()), ("decision", "approve")],
        ),
        ("/deliveries/retry", vec![("id", dead_id.as_str())]),
        ("/deliveries/retry-dead", vec![]),
        ("/rules/main/confirm/disable", vec![]),
        (
            "/rules/main/edit",
            vec![("path", "main.stw"), ("text", RULES), ("do", "deploy")],
        ),
    ] {
        let a = r.post(c, path, &fields).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}: {}", a.text);
    }

    // Sign out ends the session: the cookie no longer opens a page.
    let a = b.post(c, "/sign-out", &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(a.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let a = b.get(c, "/").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.headers["location"], "/sign-in");
}

/// Tenant beta sees nothing of acme's through any page or form.
async fn isolation(c: &Client, beta: &str) {
    let b = Browser::sign_in(c, beta).await;
    for path in [
        "/events/j1",
        "/rules/main",
        "/rules/main/edit",
        "/rules/main/versions/1",
    ] {
        assert_eq!(b.get(c, path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        "/",
        "/events",
        "/keys/j1",
        "/approvals",
        "/approvals?status=approved",
        "/approvals?status=rejected",
        "/scheduled",
        "/deliveries",
        "/tasks",
        "/audit",
    ] {
        let a = b.get(c, path).await;
        ok(&a, path);
        for acme_only in [
            "/events/j1",
            "/events/n1",
            "too much",
            "approved j1",
            "HTTP 500",
        ] {
            assert!(
                !a.text.contains(acme_only),
                "{path} shows acme's {acme_only}"
            );
        }
    }
    // Its forms reach nothing of acme's.
    let a = b
        .post(
            c,
            "/approvals/decide",
            &[("id", "acme/big_jobs/j1/1"), ("decision", "approve")],
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
    let a = b.post(c, "/rules/main/confirm/disable", &[]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
}

/// The admin token signs in, chooses a tenant, then sees its pages.
async fn admin(c: &Client) {
    let a = c
        .page(
            "POST",
            "/sign-in",
            None,
            Some(&form(&[("token", ADMIN)])),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.headers["location"], "/tenant");
    let cookie = a.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let a = c.page("GET", "/", Some(&cookie), None, &[]).await;
    assert_eq!(a.headers["location"], "/tenant", "a tenant first");
    let a = c.page("GET", "/tenant", Some(&cookie), None, &[]).await;
    ok(&a, "/tenant");
    assert!(a.text.contains("acme") && a.text.contains("beta"));
    let csrf = csrf_of(&a.text);
    let a = c
        .page(
            "POST",
            "/tenant",
            Some(&cookie),
            Some(&form(&[("csrf", &csrf), ("tenant", "nobody")])),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = c
        .page(
            "POST",
            "/tenant",
            Some(&cookie),
            Some(&form(&[("csrf", &csrf), ("tenant", "acme")])),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let a = c.page("GET", "/events", Some(&cookie), None, &[]).await;
    ok(&a, "/events");
    assert!(a.text.contains("/events/j1"));
}

#[test]
fn the_console_on_sqlite() {
    on_sqlite("console", suite);
}

#[test]
fn the_console_on_postgres() {
    on_postgres("console", suite);
}
