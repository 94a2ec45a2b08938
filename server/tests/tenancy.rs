//! Tenants kept apart, on SQLite and PostgreSQL: each tenant's signing
//! secret (shown once, rotated with a grace), its secrets (write only,
//! sealed at rest, listed by name, never readable by another tenant), and
//! its tokens (listed, expiring, revoked: a revoked token and its console
//! sessions stop working).

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
use steward_db::sealed::Sealer;
use steward_server::{App, Backend};

mod common;
use common::*;

/// A store's call from within the test's runtime (the stores block on a
/// runtime of their own).
fn blocking<T>(f: impl FnOnce() -> Result<T, steward_db::control::ControlError>) -> T {
    tokio::task::block_in_place(f).unwrap()
}

const KEY: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=";

fn suite<S: Store>(open: &dyn Fn() -> S) {
    let store = Arc::new(open());
    let backend: Arc<dyn Backend> = store.clone();
    let app = App {
        store: backend,
        admin_token: Some(ADMIN.into()),
        public_url: "http://steward.test".into(),
        metrics: None,
        programs: Default::default(),
        sealer: Some(Sealer::from_base64(KEY).unwrap()),
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
    rt.block_on(async {
        // A tenant is made with its own signing secret, shown once; a
        // retry with the same key does not show it again.
        let a = c
            .call(
                "POST",
                "/v1/tenants",
                Some(ADMIN),
                Some(r#"{"id": "acme"}"#),
                &[("idempotency-key", "t1")],
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let first = a.json()["signing_secret"].as_str().unwrap().to_string();
        assert!(first.starts_with("whsec_"), "{first}");
        let again = c
            .call(
                "POST",
                "/v1/tenants",
                Some(ADMIN),
                Some(r#"{"id": "acme"}"#),
                &[("idempotency-key", "t1")],
            )
            .await;
        assert_eq!(again.status, StatusCode::CREATED);
        assert!(
            !again.text.contains(&first),
            "the kept answer holds the secret"
        );
        let a = c
            .send("POST", "/v1/tenants", ADMIN, json!({"id": "beta"}))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let token = |t: &'static str, scopes: serde_json::Value| {
            let c = &c;
            async move {
                let a = c
                    .send(
                        "POST",
                        &format!("/v1/tenants/{t}/tokens"),
                        ADMIN,
                        json!({ "scopes": scopes }),
                    )
                    .await;
                assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
                let j = a.json();
                (
                    j["token"].as_str().unwrap().to_string(),
                    j["id"].as_str().unwrap().to_string(),
                )
            }
        };
        let (acme, acme_id) = token(
            "acme",
            json!([
                "read",
                "events:write",
                "rulesets:deploy",
                "approvals:decide"
            ]),
        )
        .await;
        let (reader, reader_id) = token("acme", json!(["read"])).await;
        let (spare, spare_id) = token("acme", json!(["read"])).await;
        let (beta, _) = token(
            "beta",
            json!([
                "read",
                "events:write",
                "rulesets:deploy",
                "approvals:decide"
            ]),
        )
        .await;

        // Secrets: written, listed by name, never read back; sealed at rest.
        let a = c
            .send(
                "PUT",
                "/v1/secrets/pms_token",
                &acme,
                json!({"value": "Bearer s3cret-value"}),
            )
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
        let list = c.get("/v1/secrets", &acme).await;
        assert_eq!(list.status, StatusCode::OK);
        assert!(!list.text.contains("s3cret-value"), "{}", list.text);
        let listed = list.json();
        let names: Vec<&str> = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["pms_token", "webhook-signing"], "{}", list.text);
        let sealed = blocking(|| {
            store.sealed_secrets("acme", &["pms_token"], &steward_db::control::now_text())
        });
        assert!(!sealed[0].1.contains("s3cret"), "sealed at rest");
        let sealer = Sealer::from_base64(KEY).unwrap();
        assert_eq!(
            sealer.open("acme", "pms_token", &sealed[0].1).unwrap(),
            "Bearer s3cret-value"
        );
        assert!(sealer.open("beta", "pms_token", &sealed[0].1).is_err());
        // The audit names it, never its value.
        let audit = c.get("/v1/audit", &acme).await;
        assert!(
            audit.text.contains("secret.set") && !audit.text.contains("s3cret"),
            "{}",
            audit.text
        );
        // Bad names, reserved names, no scope.
        for (name, status) in [
            ("Bad Name", StatusCode::UNPROCESSABLE_ENTITY),
            ("pms-token", StatusCode::UNPROCESSABLE_ENTITY),
            ("webhook-signing", StatusCode::UNPROCESSABLE_ENTITY),
        ] {
            let a = c
                .send(
                    "PUT",
                    &format!("/v1/secrets/{}", name.replace(' ', "%20")),
                    &acme,
                    json!({"value": "x"}),
                )
                .await;
            assert_eq!(a.status, status, "{name}: {}", a.text);
        }
        let a = c
            .send("PUT", "/v1/secrets/other", &reader, json!({"value": "x"}))
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        // Another tenant sees none of them, and deletes none.
        let list = c.get("/v1/secrets", &beta).await;
        assert!(!list.text.contains("pms_token"), "{}", list.text);
        let a = c
            .call("DELETE", "/v1/secrets/pms_token", Some(&beta), None, &[])
            .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);

        // A webhook header naming a secret checks for the tenant that set
        // it, and for no other: beta naming acme's secret is E0417, in
        // validate and in deploy.
        let rules = json!({"files": {"main.stw": concat!(
            "event ping { id: string }\n",
            "action hook(id: string) via webhook \"https://pms.example.com/hook\" with\n",
            "  header \"Authorization\" = \"Bearer \" + secret pms_token\n",
            "rule ping when ping then\n  hook(id)\nend\n",
        )}});
        for (who, path, method) in [
            (&beta, "/v1/validate", "POST"),
            (&beta, "/v1/rulesets/creds", "PUT"),
        ] {
            let a = c.send(method, path, who, rules.clone()).await;
            assert!(
                a.text.contains("E0417") && a.text.contains("the secret `pms_token` is not set"),
                "{path}: {} {}",
                a.status,
                a.text
            );
        }
        assert!(
            blocking(|| store.ruleset("beta", "creds")).is_none(),
            "beta's rules deployed without the secret"
        );
        let a = c.send("POST", "/v1/validate", &acme, rules.clone()).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert!(!a.text.contains("E0417"), "{}", a.text);
        let a = c.send("PUT", "/v1/rulesets/creds", &acme, rules.clone()).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        assert!(!a.text.contains("s3cret"), "{}", a.text);
        // A secret the program names is not deleted from under it.
        let a = c
            .call("DELETE", "/v1/secrets/pms_token", Some(&acme), None, &[])
            .await;
        assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
        assert!(
            a.text.contains("secret_in_use") && a.text.contains("action `hook`"),
            "{}",
            a.text
        );
        let a = c
            .call("DELETE", "/v1/rulesets/creds", Some(&acme), None, &[])
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let a = c
            .call("DELETE", "/v1/secrets/pms_token", Some(&acme), None, &[])
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);

        // Rotation: a new secret; the old one signs until the grace ends.
        let a = c
            .send(
                "POST",
                "/v1/secrets/webhook-signing/rotate",
                &acme,
                json!({"grace": "1h"}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let second = a.json()["secret"].as_str().unwrap().to_string();
        assert_ne!(second, first);
        assert!(a.json()["previous_until"].is_string(), "{}", a.text);
        let now = steward_db::control::now_text();
        let keys = blocking(|| {
            store.sealed_secrets(
                "acme",
                &["webhook-signing", "webhook-signing.previous"],
                &now,
            )
        });
        let opened: Vec<String> = keys
            .iter()
            .map(|(name, s)| sealer.open("acme", name, s).unwrap())
            .collect();
        assert_eq!(opened, [second.clone(), first.clone()]);
        // A rotation without grace: only the newest signs.
        let a = c
            .send(
                "POST",
                "/v1/secrets/webhook-signing/rotate",
                &acme,
                json!({"grace": "0s"}),
            )
            .await;
        let third = a.json()["secret"].as_str().unwrap().to_string();
        let keys = blocking(|| {
            store.sealed_secrets(
                "acme",
                &["webhook-signing", "webhook-signing.previous"],
                &now,
            )
        });
        assert_eq!(keys.len(), 1);
        assert_eq!(sealer.open("acme", &keys[0].0, &keys[0].1).unwrap(), third);
        let a = c
            .send(
                "POST",
                "/v1/secrets/webhook-signing/rotate",
                &acme,
                json!({"grace": "40d"}),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);

        // Tokens: listed without secrets; a read token revokes only itself.
        let list = c.get("/v1/tokens", &reader).await;
        assert_eq!(
            list.json()["data"].as_array().unwrap().len(),
            3,
            "{}",
            list.text
        );
        assert!(!list.text.contains(&acme), "{}", list.text);
        let a = c
            .call(
                "DELETE",
                &format!("/v1/tokens/{spare_id}"),
                Some(&reader),
                None,
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        let a = c
            .call(
                "DELETE",
                &format!("/v1/tokens/{reader_id}"),
                Some(&reader),
                None,
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
        assert_eq!(
            c.get("/v1/events", &reader).await.status,
            StatusCode::UNAUTHORIZED
        );
        // A full token revokes another; the admin too; beta cannot reach acme's.
        let a = c
            .call(
                "DELETE",
                &format!("/v1/tokens/{spare_id}"),
                Some(&beta),
                None,
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
        let a = c
            .call(
                "DELETE",
                &format!("/v1/tenants/acme/tokens/{spare_id}"),
                Some(ADMIN),
                None,
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
        assert_eq!(
            c.get("/v1/events", &spare).await.status,
            StatusCode::UNAUTHORIZED
        );
        let audit = c.get("/v1/audit", &acme).await;
        assert!(audit.text.contains("token.revoked"), "{}", audit.text);
        let _ = acme_id;

        // Expiry: a token whose time is past no longer signs in.
        let a = c
            .send(
                "POST",
                "/v1/tenants/acme/tokens",
                ADMIN,
                json!({"scopes": ["read"], "expires_in": "90d"}),
            )
            .await;
        assert!(a.json()["expires_at"].is_string(), "{}", a.text);
        let a = c
            .send(
                "POST",
                "/v1/tenants/acme/tokens",
                ADMIN,
                json!({"expires_in": "soon"}),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
        let hash = steward_server::auth::digest("acme.old.secret");
        blocking(|| {
            store.create_token(
                "acme",
                "old",
                &hash,
                &["read".into()],
                Some("2020-01-01T00:00:00Z"),
            )
        });
        assert_eq!(
            c.get("/v1/events", "acme.old.secret").await.status,
            StatusCode::UNAUTHORIZED
        );

        // Webhooks this server will never deliver: validate and deploy say
        // which, and why (warnings: the deploy goes ahead).
        let probe = "event probe { id: string }\n\
            action metadata(id: string) via webhook \"http://169.254.169.254/latest/\"\n\
            action local(id: string) via webhook \"http://localhost:9/x\"\n\
            action fine(id: string) via webhook \"https://pms.example.com/x\"\n\
            rule probe when probe then\n  metadata(id)\n  local(id)\n  fine(id)\nend\n";
        let a = c.send("POST", "/v1/validate", &acme, json!({"files": {"probe.stw": probe}})).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let refused = a.json()["destinations"].clone();
        assert_eq!(refused.as_array().map(Vec::len), Some(2), "{refused}");
        assert_eq!(refused[0]["action"], "local", "{refused}");
        assert!(refused[1]["why"].as_str().unwrap().contains("link-local"), "{refused}");
        let a = c
            .send("PUT", "/v1/rulesets/probe", &acme, json!({"files": {"probe.stw": probe}}))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        assert_eq!(a.json()["destinations"].as_array().map(Vec::len), Some(2), "{}", a.text);

        // Quotas: set by the admin, shown to the tenant, enforced.
        let a = c.send("PUT", "/v1/tenants/nobody/quotas", ADMIN, json!({})).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
        let a = c.send("PUT", "/v1/tenants/beta/quotas", ADMIN, json!({"rulesets": 0})).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
        let a = c.send("PUT", "/v1/tenants/beta/quotas", &beta, json!({})).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
        let a = c
            .send(
                "PUT",
                "/v1/tenants/beta/quotas",
                ADMIN,
                json!({"events_per_second": 2, "events_stored": 3, "rulesets": 1}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let info = c.get("/v1/tenant", &beta).await.json();
        assert_eq!(info["quotas"]["rulesets"], 1, "{info}");
        assert_eq!(info["quotas"]["requests_per_minute"], serde_json::Value::Null, "{info}");
        assert_eq!(info["usage"]["events_stored"], 0, "{info}");
        let rules = "event ping { id: string }\nrule ping when ping then\n  log \"{id}\"\nend\n";
        let a = c.send("PUT", "/v1/rulesets/one", &beta, json!({"files": {"one.stw": rules}})).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let other = rules.replace("rule ping", "rule pong");
        let a = c.send("PUT", "/v1/rulesets/two", &beta, json!({"files": {"two.stw": other}})).await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
        assert_eq!(a.json()["code"], "quota_exceeded", "{}", a.text);
        let again = rules.replace("log", "log \"again\"\n  log");
        let a = c.send("PUT", "/v1/rulesets/one", &beta, json!({"files": {"one.stw": again}})).await;
        assert_eq!(a.status, StatusCode::CREATED, "a ruleset it has: {}", a.text);
        let ping = |id: &str| json!({"id": id, "type": "ping", "occurred_at": at(chrono::Duration::zero()), "payload": {"id": id}});
        // More at once than a second's worth: 429 with Retry-After.
        let a = c.send("POST", "/v1/events", &beta, json!([ping("p1"), ping("p2"), ping("p3")])).await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
        assert_eq!(a.json()["code"], "rate_limited", "{}", a.text);
        assert!(a.headers.contains_key("retry-after"), "{:?}", a.headers);
        // Stored: 3 at most.
        let a = c.send("POST", "/v1/events", &beta, json!([ping("p1"), ping("p2")])).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
        let a = c
            .send("PUT", "/v1/tenants/beta/quotas", ADMIN, json!({"events_stored": 3}))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let a = c.send("POST", "/v1/events", &beta, json!([ping("p3"), ping("p4")])).await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
        assert_eq!(a.json()["code"], "quota_exceeded", "{}", a.text);
        let a = c.send("POST", "/v1/events", &beta, json!([ping("p3")])).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
        let info = c.get("/v1/tenant", &beta).await.json();
        assert_eq!(info["usage"]["events_stored"], 3, "{info}");
        assert_eq!(info["usage"]["rulesets"], 1, "{info}");
        // Requests a minute, per token: the third of two is refused.
        let a = c
            .send("PUT", "/v1/tenants/beta/quotas", ADMIN, json!({"requests_per_minute": 2}))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let (limited, _) = token("beta", json!(["read"])).await;
        for _ in 0..2 {
            assert_eq!(c.get("/v1/tenant", &limited).await.status, StatusCode::OK);
        }
        let a = c.get("/v1/tenant", &limited).await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
        assert!(a.headers.contains_key("retry-after"), "{:?}", a.headers);
        // Another tenant is not limited by beta's quotas.
        assert_eq!(c.get("/v1/tenant", &acme).await.status, StatusCode::OK);

        // A revoked token's console session ends.
        let (console, console_id) = token("acme", json!(["read"])).await;
        let a = c
            .page(
                "POST",
                "/sign-in",
                None,
                Some(&format!("token={console}")),
                &[],
            )
            .await;
        let cookie = a.headers["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(
            c.page("GET", "/", Some(&cookie), None, &[]).await.status,
            StatusCode::OK
        );
        let a = c
            .call(
                "DELETE",
                &format!("/v1/tokens/{console_id}"),
                Some(&acme),
                None,
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
        let a = c.page("GET", "/", Some(&cookie), None, &[]).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "the session ended");
    });
}

#[test]
fn tenancy_on_sqlite() {
    on_sqlite("tenancy", suite);
}

#[test]
fn tenancy_on_postgres() {
    on_postgres("tenancy", suite);
}
