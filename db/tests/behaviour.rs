//! One behaviour for every store: the same rules and events, run on the
//! in-memory store, on SQLite and on PostgreSQL, give the same actions, rule
//! errors and pending work; and on the durable stores, work survives a
//! restart (the engine and its store dropped halfway, then opened again on
//! the same database).
//!
//! PostgreSQL is found through `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each run creates a database
//! of its own and drops it at the end. When `CI` is set, an unreachable
//! server fails the test; otherwise it is skipped with a message.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::sync::Arc;

use steward::check::{analyze, NoFiles};
use steward::engine::{compile, decode_event, Collect, Engine, MemoryStore, Ruleset, Store};
use steward_db::control::Control;
use steward_db::{Durable, PgStore, SqliteStore};
use steward_test_support::Scratch;

const DECLS: &str = r#"
event job { id: string  owner: string  total: decimal }
event job.done { id: string }
event job.checked { id: string }
event job.moved { id: string  stage: "open" | "review" | "closed" }
event job.note { id: string }
"#;

const RULES: &str = r#"
action escalate(id: string, why: string) do
  notify role ops "escalate {id}: {why}"
  create task "escalate {id}" for role ops due now() + 1h
end

rule opened when job then
  let share = total * 0.15
  log "opened {id}: {share}"
  create task "review {id}" for role ops due now() + 2h
  emit job.checked { id: id }
  after 1h unless job.done on id do
    notify role ops "{id} is overdue, {share} at stake"
    escalate(id, "overdue")
  end
end

rule checked when job.checked throttle 2 per 1d then
  log "checked {id}"
end

rule sign_off when job.done then
  require approval from role owner within 2h do
    log "signed {id}"
  else
    log "not signed {id}"
    escalate(id, "not signed")
  end
end

rule hourly every 1h then
  log "tick"
end

rule moved when job.moved if stage changed then
  log "{id}: {previous stage ?? "open"} to {stage}"
end

rule moved_twice when job.moved count 2 within 1d by id then
  log "moved twice: {id}"
end

rule busy when job if count(job by owner within 1d) >= 2 then
  log "busy {owner}"
end

rule quiet_job when no job.note on id for 2h since job on id until job.done on id then
  log "quiet {id} since {quiet_since}"
end

rule job_reminders when job then
  every "0 */4 * * *" in "Europe/Paris" unless job.done on id do
    log "still open: {id}"
  end
end
"#;

fn rules() -> Arc<Ruleset> {
    let files = vec![
        ("decls.stw".to_string(), DECLS.to_string()),
        ("rules.stw".to_string(), RULES.to_string()),
    ];
    let analysis = analyze(&files, &NoFiles);
    let errors: Vec<String> = analysis.errors().map(|d| d.message.clone()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    Arc::new(compile(&analysis).unwrap_or_else(|d| panic!("{d:?}")))
}

/// The events, and where a decision is taken: `None` is an event line,
/// `Some(at)` approves the oldest pending approval at that time.
fn script() -> Vec<(String, Option<&'static str>)> {
    let line = |id: &str, ty: &str, at: &str, payload: &str| {
        format!(
            r#"{{"id":"{id}","tenant":"t1","type":"{ty}","occurred_at":"{at}","key":"k-{}","payload":{payload}}}"#,
            &id[1..]
        )
    };
    vec![
        (
            line(
                "e1",
                "job",
                "2026-11-20T10:00:00Z",
                r#"{"id":"1","owner":"a","total":"240.00"}"#,
            ),
            None,
        ),
        (
            line(
                "e2",
                "job",
                "2026-11-20T10:10:00Z",
                r#"{"id":"2","owner":"b","total":412.50}"#,
            ),
            None,
        ),
        (
            line(
                "e3",
                "job",
                "2026-11-20T10:20:00Z",
                r#"{"id":"3","owner":"c","total":10}"#,
            ),
            None,
        ),
        (
            line("d1", "job.done", "2026-11-20T10:30:00Z", r#"{"id":"1"}"#),
            None,
        ),
        (String::new(), Some("2026-11-20T10:40:00Z")),
        // Starts job 2's quiet period again: it fires at 12:50, not 12:10.
        (
            line("n2", "job.note", "2026-11-20T10:50:00Z", r#"{"id":"2"}"#),
            None,
        ),
        (
            line("d2", "job.done", "2026-11-20T13:00:00Z", r#"{"id":"2"}"#),
            None,
        ),
        (
            line(
                "e4",
                "job",
                "2026-11-20T15:00:00Z",
                r#"{"id":"4","owner":"a","total":"1.10"}"#,
            ),
            None,
        ),
        (
            line(
                "e4",
                "job",
                "2026-11-20T15:00:00Z",
                r#"{"id":"4","owner":"a","total":"1.10"}"#,
            ),
            None,
        ),
        // History: the stage each event of key `k-1` carried, a count per
        // id, across restarts (cuts 9 and 10).
        (
            line(
                "m1",
                "job.moved",
                "2026-11-20T15:05:00Z",
                r#"{"id":"1","stage":"review"}"#,
            ),
            None,
        ),
        (
            line(
                "n1",
                "job.moved",
                "2026-11-20T15:06:00Z",
                r#"{"id":"1","stage":"review"}"#,
            ),
            None,
        ),
        (
            line(
                "o1",
                "job.moved",
                "2026-11-20T15:07:00Z",
                r#"{"id":"1","stage":"closed"}"#,
            ),
            None,
        ),
    ]
}

/// What a run did, as text to compare: every action (key, name, arguments),
/// every rule error, and what is pending at the end.
#[derive(Debug, PartialEq)]
struct Outcome {
    actions: Vec<String>,
    errors: Vec<String>,
    pending_timers: usize,
    pending_approvals: Vec<String>,
}

/// Runs steps `from..to` of the script on `engine`, then (when `end`) moves
/// the clock to the end of the day.
fn steps<S: Store>(engine: &mut Engine<S>, sink: &mut Collect, from: usize, to: usize, end: bool) {
    let rules = engine.rules.clone();
    for (line, decide) in &script()[from..to] {
        match decide {
            None => {
                let event = decode_event(rules.shapes(), line).unwrap();
                engine.handle(event, sink).unwrap();
            }
            Some(at) => {
                let id = engine.store.pending_approvals().unwrap()[0].id.clone();
                let decided = engine
                    .decide(&id, true, "ana", at.parse().unwrap(), sink)
                    .unwrap();
                assert!(decided);
            }
        }
    }
    if end {
        engine
            .advance_to("2026-11-21T00:00:00Z".parse().unwrap(), sink)
            .unwrap();
    }
}

fn outcome<S: Store>(engine: &Engine<S>, sink: &Collect) -> Outcome {
    Outcome {
        actions: sink
            .actions
            .iter()
            .map(|a| {
                let args = serde_json::Value::Object(a.args.clone());
                format!("{} {} {} {args}", a.at, a.key(), a.action)
            })
            .collect(),
        errors: sink.errors.iter().map(|e| e.message.clone()).collect(),
        pending_timers: engine.store.pending_timers().unwrap(),
        pending_approvals: engine
            .store
            .pending_approvals()
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect(),
    }
}

fn whole<S: Store>(store: S) -> Outcome {
    let mut engine = Engine::new(rules(), store);
    let mut sink = Collect::default();
    steps(&mut engine, &mut sink, 0, script().len(), true);
    outcome(&engine, &sink)
}

/// The run cut in two at `cut`: the engine and its store are dropped, and
/// a new engine continues on a store opened again by `open`.
fn restarted<S: Store>(open: &dyn Fn() -> S, cut: usize) -> Outcome {
    let mut sink = Collect::default();
    {
        let mut engine = Engine::new(rules(), open());
        steps(&mut engine, &mut sink, 0, cut, false);
    }
    let mut engine = Engine::new(rules(), open());
    steps(&mut engine, &mut sink, cut, script().len(), true);
    outcome(&engine, &sink)
}

fn memory() -> Outcome {
    let expected = whole(MemoryStore::new());
    assert!(expected.actions.len() > 20, "{:#?}", expected.actions);
    assert!(expected.errors.is_empty(), "{:?}", expected.errors);
    // What the history forms did, the same on every store.
    let logged: Vec<&str> = expected
        .actions
        .iter()
        .filter_map(|a| {
            a.split_once(r#"{"text":""#)
                .map(|(_, t)| t.trim_end_matches("\"}"))
        })
        .filter(|t| {
            t.contains(" to ")
                || t.starts_with("moved")
                || t.starts_with("busy")
                || t.starts_with("quiet")
        })
        .collect();
    assert_eq!(
        logged,
        [
            "quiet 3 since 2026-11-20T10:20:00Z",
            "quiet 2 since 2026-11-20T10:50:00Z",
            "busy a",
            "1: open to review",
            "moved twice: 1",
            "1: review to closed",
            "quiet 4 since 2026-11-20T15:00:00Z",
        ],
        "{:#?}",
        expected.actions
    );
    // Every four hours in Paris (UTC+1) for each job not done yet.
    let reminded: Vec<String> = expected
        .actions
        .iter()
        .filter(|a| a.contains("still open"))
        .map(|a| {
            let time = a.split_whitespace().nth(1).unwrap_or("");
            let id = a.rsplit(": ").next().unwrap_or("").trim_end_matches("\"}");
            format!("{time} {id}")
        })
        .collect();
    assert_eq!(
        reminded,
        [
            "11:00:00 2",
            "11:00:00 3",
            "15:00:00 3",
            // At one instant, in the order the timers were put: job 4's at
            // 15:00, job 3's again when its 15:00 tick fired.
            "19:00:00 4",
            "19:00:00 3",
            "23:00:00 4",
            "23:00:00 3"
        ],
        "{:#?}",
        expected.actions
    );
    // A block action's actions where it was called (in a timer, in an
    // approval's `else`), each with a key of its own.
    let escalated: Vec<String> = expected
        .actions
        .iter()
        .filter(|a| a.contains("escalate "))
        .map(|a| {
            // `DATE TIME UTC KEY ACTION ARGS`
            let words: Vec<&str> = a.split_whitespace().collect();
            format!("{} {}", words[1], words[4])
        })
        .collect();
    assert_eq!(
        escalated,
        [
            "11:10:00 notify",
            "11:10:00 create_task",
            "11:20:00 notify",
            "11:20:00 create_task",
            "15:00:00 notify",
            "15:00:00 create_task",
            "16:00:00 notify",
            "16:00:00 create_task",
        ],
        "{:#?}",
        expected.actions
    );
    let mut keys: Vec<&str> = expected
        .actions
        .iter()
        .filter_map(|a| a.split_whitespace().nth(3))
        .collect();
    keys.sort_unstable();
    let all = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), all, "every action has a key of its own");
    expected
}

#[test]
fn sqlite_behaves_as_memory_and_keeps_work_across_restarts() {
    let expected = memory();
    let dir = std::env::temp_dir().join(format!("steward-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("whole.db");
    let got = whole(SqliteStore::open(path.to_str().unwrap(), rules()).unwrap());
    assert_eq!(got, expected);
    for cut in [1, 3, 4, 5, 6, 9, 10] {
        let path = dir.join(format!("cut-{cut}.db"));
        let open = || SqliteStore::open(path.to_str().unwrap(), rules()).unwrap();
        let got = restarted(&open, cut);
        assert_eq!(got, expected, "restarted after step {cut}");
    }
    let store = SqliteStore::open(dir.join("whole.db").to_str().unwrap(), rules()).unwrap();
    outbox_holds_every_action(&store, &expected);
    ended_approvals_are_listed(&store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// After the whole script, the outbox holds every action once, by key; each
/// `notify` is a notification too.
fn outbox_holds_every_action<S: Durable>(store: &S, expected: &Outcome) {
    let outbox = store.outbox().unwrap();
    assert_eq!(outbox.len(), expected.actions.len());
    let count = |name: &str| outbox.iter().filter(|(_, a, _)| a == name).count() as i64;
    let (notified, tasks) = (count("notify"), count("create_task"));
    assert!(notified > 0 && tasks > 0);
    assert_eq!(store.people_work().unwrap(), [notified, tasks]);
}

/// After the whole script: job 1's sign-off was approved, job 2's expired
/// at its deadline; both stay listed with how they ended, and neither can
/// be decided again.
fn ended_approvals_are_listed<S: steward_db::api::Api>(store: &S) {
    use steward_db::api::{Decided, Page};
    let page = Page {
        after: None,
        limit: 50,
    };
    let list = |status: Option<&str>| store.approvals("t1", status, &page).unwrap();
    assert!(list(Some("pending")).is_empty());
    let expired = list(Some("expired"));
    assert_eq!(expired.len(), 1, "{expired:?}");
    let e = &expired[0];
    assert_eq!((e.key.as_str(), e.role.as_str()), ("k-2", "owner"));
    assert_eq!(e.event.as_deref(), Some("d2"));
    assert_eq!(
        e.ended_at.as_deref(),
        Some("2026-11-20T15:00:00.000000000Z")
    );
    assert!(
        e.reason.as_deref().is_some_and(|r| r.contains("deadline")),
        "{e:?}"
    );
    let approved = list(Some("approved"));
    assert_eq!(approved.len(), 1, "{approved:?}");
    assert_eq!(approved[0].event.as_deref(), Some("d1"));
    assert_eq!(list(None).len(), 2);
    assert!(list(Some("cancelled")).is_empty());
    assert_eq!(store.approval_row("t1", &e.id).unwrap().as_ref(), Some(e));
    match store
        .request_decision("t1", &e.id, true, "ana", "api", "")
        .unwrap()
    {
        Decided::Ended { status, .. } => assert_eq!(status, "expired"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn postgres_behaves_as_memory_and_keeps_work_across_restarts() {
    let Some(db) = Scratch::create("test") else {
        return;
    };
    let expected = memory();
    let got = whole(PgStore::open(&db.url(), rules()).unwrap());
    assert_eq!(got, expected);
    let store = PgStore::open(&db.url(), rules()).unwrap();
    outbox_holds_every_action(&store, &expected);
    ended_approvals_are_listed(&store);
    for cut in [3, 5, 10] {
        let fresh = Scratch::create("test").unwrap();
        let url = fresh.url();
        let open = || PgStore::open(&url, rules()).unwrap();
        let got = restarted(&open, cut);
        assert_eq!(got, expected, "restarted after step {cut}");
    }
}

/// One worker at a time: the lease is taken, renewed, refused to another
/// holder, and taken over once it expires; a released one is free at once.
fn leases_hold_one_worker<S: Durable>(store: &S) {
    let t = |m: i64| {
        "2026-11-20T10:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            + chrono::Duration::minutes(m)
    };
    assert!(store.lease("worker", "a", t(0), t(1)).unwrap());
    assert!(store.lease("worker", "a", t(0), t(2)).unwrap(), "a renews");
    assert!(!store.lease("worker", "b", t(1), t(3)).unwrap(), "b waits");
    assert_eq!(
        store.lease_holder("worker").unwrap().map(|(h, _)| h),
        Some("a".into())
    );
    assert!(
        store.lease("worker", "b", t(3), t(4)).unwrap(),
        "a's lease ended"
    );
    assert!(
        !store.lease("worker", "a", t(3), t(5)).unwrap(),
        "a lost it"
    );
    store.release("worker", "a").unwrap();
    assert!(
        !store.lease("worker", "c", t(3), t(5)).unwrap(),
        "only b gives it up"
    );
    store.release("worker", "b").unwrap();
    assert!(store.lease("worker", "c", t(3), t(5)).unwrap());
}

#[test]
fn leases_on_sqlite_and_postgres() {
    let dir = std::env::temp_dir().join(format!("steward-lease-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lease.db");
    leases_hold_one_worker(&SqliteStore::open(path.to_str().unwrap(), rules()).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(db) = Scratch::create("test") {
        leases_hold_one_worker(&PgStore::open(&db.url(), rules()).unwrap());
    }
}

/// Fair share: with one tenant's backlog of 250 and another's single
/// event pushed after it, the first claim of 100 takes the other's event;
/// claims go on in turn until all is claimed, each event once, in the
/// order it occurred within its tenant.
fn claims_share_among_tenants<S: Durable>(store: &S) {
    let line = |tenant: &str, id: &str, minute: usize| {
        format!(
            r#"{{"id": "{id}", "tenant": "{tenant}", "type": "job", "occurred_at": "2026-11-20T10:{:02}:00Z", "key": "{id}", "payload": {{"id": "{id}", "amount": 1.0}}}}"#,
            minute % 60
        )
    };
    for i in 0..250 {
        assert!(store
            .push(&line("flood", &format!("f{i:03}"), i / 5))
            .unwrap());
    }
    assert!(store.push(&line("quiet", "q1", 59)).unwrap());
    assert!(store.push(&line("zeta", "z1", 59)).unwrap());
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut first = true;
    loop {
        store.begin_batch().unwrap();
        let claimed = store.claim_events(100).unwrap();
        if first {
            let tenants: Vec<&str> = claimed.iter().map(|e| e.tenant.as_str()).collect();
            assert!(
                tenants.contains(&"quiet") && tenants.contains(&"zeta"),
                "{tenants:?}"
            );
            assert!(claimed.len() <= 102, "one share each: {}", claimed.len());
            first = false;
        }
        // Each one settled in the batch, as the engine would (here by
        // rejecting it: no longer pending either way).
        for e in &claimed {
            store
                .reject(&e.tenant, &e.id, "settled by the test")
                .unwrap();
            seen.push((e.tenant.clone(), e.id.clone()));
        }
        store.commit_batch().unwrap();
        if claimed.is_empty() {
            break;
        }
    }
    assert_eq!(seen.len(), 252, "each event once");
    let flood: Vec<&str> = seen
        .iter()
        .filter(|(t, _)| t == "flood")
        .map(|(_, i)| i.as_str())
        .collect();
    let mut sorted = flood.clone();
    sorted.sort();
    assert_eq!(
        flood, sorted,
        "a tenant's events in the order they occurred"
    );
}

#[test]
fn claims_share_among_tenants_on_sqlite_and_postgres() {
    let dir = std::env::temp_dir().join(format!("steward-fair-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fair.db");
    claims_share_among_tenants(&SqliteStore::open(path.to_str().unwrap(), rules()).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(db) = Scratch::create("test") {
        claims_share_among_tenants(&PgStore::open(&db.url(), rules()).unwrap());
    }
}

fn program(text: &str) -> (steward::boundary::Sources, Arc<Ruleset>) {
    let files = vec![("remind.stw".to_string(), text.to_string())];
    let sources = steward::boundary::Sources {
        files,
        scripts: Vec::new(),
    };
    let rules = sources.build().rules.unwrap_or_else(|e| panic!("{e}"));
    (sources, rules)
}

const REMIND: &str = r#"
event job { id: string }
rule remind when job then
  after 1h do
    log "VERSION reminds {id}"
  end
end
"#;

fn job(id: &str, at: &str) -> String {
    format!(
        r#"{{"id":"{id}","tenant":"t1","type":"job","occurred_at":"{at}","payload":{{"id":"{id}"}}}}"#
    )
}

/// A timer resumes under the version that set it, after a restart on a
/// newer version: that version's sources are loaded from the store. One
/// set under a version that was never deployed is cancelled, with the reason.
fn redeploys<S: Durable + Control>(open: &dyn Fn(Arc<Ruleset>) -> S) {
    let (v1_sources, v1) = program(&REMIND.replace("VERSION", "v1"));
    let (v2_sources, v2) = program(&REMIND.replace("VERSION", "v2"));
    let (_, never) = program(&REMIND.replace("VERSION", "never deployed"));
    let mut sink = Collect::default();
    {
        let store = open(v1.clone());
        let d = store
            .deploy_ruleset("*", "default", &v1_sources, "test")
            .unwrap();
        assert_eq!((d.version, d.new), (1, true));
        assert_eq!(d.digest.as_deref(), Some(&*v1.version));
        let mut engine = Engine::new(v1.clone(), store);
        let e = decode_event(v1.shapes(), &job("a", "2026-11-20T10:00:00Z")).unwrap();
        engine.handle(e, &mut sink).unwrap();
    }
    {
        let mut engine = Engine::new(never.clone(), open(never.clone()));
        let e = decode_event(never.shapes(), &job("b", "2026-11-20T10:10:00Z")).unwrap();
        engine.handle(e, &mut sink).unwrap();
    }
    let store = open(v2.clone());
    let d = store
        .deploy_ruleset("*", "default", &v2_sources, "test")
        .unwrap();
    assert_eq!((d.version, d.new), (2, true));
    let d = store
        .deploy_ruleset("*", "default", &v2_sources, "test")
        .unwrap();
    assert_eq!(
        (d.version, d.new),
        (2, false),
        "the same program again is no new version"
    );
    let latest = store.ruleset_version("*", "default", 2).unwrap().unwrap();
    assert_eq!(latest.sources, v2_sources);
    let mut engine = Engine::new(v2.clone(), store);
    let e = decode_event(v2.shapes(), &job("c", "2026-11-20T10:30:00Z")).unwrap();
    engine.handle(e, &mut sink).unwrap();
    engine
        .advance_to("2026-11-20T12:00:00Z".parse().unwrap(), &mut sink)
        .unwrap();
    let logs: Vec<String> = sink
        .actions
        .iter()
        .map(|a| format!("{} {}", a.at.format("%H:%M"), a.args["text"]))
        .collect();
    assert_eq!(logs, ["11:00 \"v1 reminds a\"", "11:30 \"v2 reminds c\""]);
    assert_eq!(sink.errors.len(), 1, "{:?}", sink.errors);
    let error = &sink.errors[0].message;
    assert!(
        error.contains(&format!(
            "ruleset version `{}` is not loaded",
            never.version
        )),
        "{error}"
    );
    assert_eq!(engine.store.pending_timers().unwrap(), 0);
}

#[test]
fn timers_resume_under_their_version_after_a_redeploy() {
    let dir = std::env::temp_dir().join(format!("steward-redeploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("redeploy.db");
    redeploys(&|rules| SqliteStore::open(path.to_str().unwrap(), rules).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(db) = Scratch::create("test") {
        let url = db.url();
        redeploys(&|rules| PgStore::open(&url, rules).unwrap());
    }
}

/// Retention: handled events, their ids and finished actions older than the
/// cut are pruned, pending timers are not; an id forgotten can be handled
/// again.
fn prunes<S: Durable>(store: S) {
    let (_, rules) = program(
        &REMIND
            .replace("VERSION", "v1")
            .replace("  after 1h do", "  notify role ops \"{id}\"\n  after 1h do"),
    );
    let mut engine = Engine::new(rules.clone(), store);
    let mut sink = Collect::default();
    for id in ["a", "b"] {
        let line = job(id, "2026-11-20T10:00:00Z");
        assert!(engine.store.push(&line).unwrap());
        let event = decode_event(rules.shapes(), &line).unwrap();
        engine.handle(event, &mut sink).unwrap();
    }
    assert_eq!(engine.store.event_counts().unwrap(), [0, 2, 0]);
    let now = chrono::Utc::now();
    // A `notify` is a record, delivered when written.
    assert_eq!(engine.store.delivery_counts().unwrap(), [0, 2, 0, 0]);
    let day = chrono::Duration::days(1);
    assert_eq!(
        engine.store.prune(now - day, 100).unwrap(),
        0,
        "nothing is old yet"
    );
    // Two events, their two ids, two finished actions.
    assert_eq!(engine.store.prune(now + day, 100).unwrap(), 6);
    assert_eq!(engine.store.event_counts().unwrap(), [0, 0, 0]);
    assert_eq!(engine.store.delivery_counts().unwrap(), [0, 0, 0, 0]);
    assert_eq!(
        engine.store.pending_timers().unwrap(),
        2,
        "pending work stays"
    );
    let again = decode_event(rules.shapes(), &job("a", "2026-11-20T10:05:00Z")).unwrap();
    assert_eq!(
        engine.handle(again, &mut sink).unwrap(),
        steward::engine::Handled::Ran
    );
}

#[test]
fn retention_prunes_what_finished() {
    let dir = std::env::temp_dir().join(format!("steward-prune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("prune.db");
    prunes(SqliteStore::open(path.to_str().unwrap(), rules()).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(db) = Scratch::create("test") {
        prunes(PgStore::open(&db.url(), rules()).unwrap());
    }
}

fn sources(files: &[(&str, &str)]) -> steward::boundary::Sources {
    steward::boundary::Sources {
        files: files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
        scripts: Vec::new(),
    }
}

fn tenant_job(tenant: &str, id: &str, at: &str) -> String {
    format!(
        r#"{{"id":"{id}","tenant":"{tenant}","type":"job","occurred_at":"{at}","payload":{{"id":"{id}"}}}}"#
    )
}

/// Each tenant runs its own program (its enabled rulesets checked together),
/// a tenant without one the tenant `*`'s; disabling, deleting and rolling
/// back are versions and audit entries, and the work of a rule that is no
/// longer deployed is cancelled with the reason.
fn tenants_run_their_own_programs<S: Durable + Control>(store: S) {
    let guests = sources(&[(
        "guests.stw",
        "event job { id: string }\nrule remind when job then\n  after 1h do\n    log \"a reminds {id}\"\n  end\nend\n",
    )]);
    let billing = sources(&[(
        "billing.stw",
        "rule bill when job then\n  log \"a bills {id}\"\nend\n",
    )]);
    let every = sources(&[(
        "all.stw",
        "event job { id: string }\nrule everyone when job then\n  log \"* sees {id}\"\nend\n",
    )]);
    let d = store
        .deploy_ruleset("a", "guests", &guests, "alice")
        .unwrap();
    assert_eq!((d.version, d.new, d.cancelled.len()), (1, true, 0));
    // `billing` uses the event `guests` declares.
    let d = store
        .deploy_ruleset("a", "billing", &billing, "alice")
        .unwrap();
    assert_eq!((d.version, d.new), (1, true));
    store.deploy_ruleset("*", "default", &every, "dev").unwrap();
    // A rule name `guests` has already is refused, with the diagnostics
    // under the ruleset's own file names.
    let clash = sources(&[(
        "clash.stw",
        "rule remind when job then\n  log \"again\"\nend\n",
    )]);
    match store.deploy_ruleset("a", "clash", &clash, "alice") {
        Err(steward_db::control::ControlError::Invalid(diags)) => {
            assert!(diags.iter().any(|d| d.file == "clash.stw"), "{diags:?}");
        }
        other => panic!("a clash was deployed: {other:?}"),
    }
    assert!(store.ruleset("a", "clash").unwrap().is_none());
    let same = store
        .deploy_ruleset("a", "billing", &billing, "alice")
        .unwrap();
    assert_eq!((same.version, same.new), (1, false));

    let programs = store.programs().unwrap();
    let mut engine = Engine::new(rules(), store);
    for row in programs {
        let (_, s) = row.program.unwrap();
        let built = s.build().rules.unwrap();
        engine.store.use_rules(built.clone());
        if row.tenant == "*" {
            engine.rules = built;
        } else {
            engine
                .programs
                .insert(Arc::from(row.tenant.as_str()), built);
        }
    }
    let mut sink = Collect::default();
    for (tenant, id) in [("a", "j1"), ("b", "j2")] {
        let line = tenant_job(tenant, id, "2026-11-20T10:00:00Z");
        let e = decode_event(engine.program_for(tenant).shapes(), &line).unwrap();
        engine.handle(e, &mut sink).unwrap();
    }
    let texts = |sink: &Collect| -> Vec<String> {
        sink.actions
            .iter()
            .map(|a| a.args["text"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(texts(&sink), ["a bills j1", "* sees j2"]);
    assert_eq!(engine.store.pending_timers().unwrap(), 1);

    // `billing` needs the event `guests` declares: disabling `guests`
    // alone is refused, and changes nothing.
    match engine.store.enable_ruleset("a", "guests", false, "bob") {
        Err(steward_db::control::ControlError::Invalid(diags)) => {
            assert!(
                diags.iter().any(|d| d.file == "billing/billing.stw"),
                "{diags:?}"
            );
        }
        other => panic!("disabled: {other:?}"),
    }
    assert!(
        engine
            .store
            .ruleset("a", "guests")
            .unwrap()
            .unwrap()
            .enabled
    );
    // A rollback is a new version with the old sources.
    let v2 = sources(&[(
        "billing.stw",
        "rule bill when job then\n  log \"a bills {id} again\"\nend\n",
    )]);
    let d = engine
        .store
        .deploy_ruleset("a", "billing", &v2, "alice")
        .unwrap();
    assert_eq!((d.version, d.new), (2, true));
    let d = engine
        .store
        .rollback_ruleset("a", "billing", 1, "carol")
        .unwrap();
    assert_eq!((d.version, d.new), (3, true));
    let v3 = engine
        .store
        .ruleset_version("a", "billing", 3)
        .unwrap()
        .unwrap();
    assert_eq!(v3.sources, billing);
    assert!(matches!(
        engine.store.rollback_ruleset("a", "billing", 9, "carol"),
        Err(steward_db::control::ControlError::NotFound(_))
    ));
    engine
        .store
        .delete_ruleset("a", "billing", "carol")
        .unwrap();
    assert!(engine.store.ruleset("a", "billing").unwrap().is_none());
    // Now `guests` can be disabled, which cancels its rule's timer.
    let d = engine
        .store
        .enable_ruleset("a", "guests", false, "bob")
        .unwrap();
    assert_eq!(d.cancelled.len(), 1, "{d:?}");
    assert!(d.cancelled[0].starts_with("timer j1~remind~"), "{d:?}");
    assert_eq!(d.digest, None, "no ruleset of `a` is enabled");
    assert_eq!(engine.store.pending_timers().unwrap(), 0);
    assert!(
        !engine
            .store
            .ruleset("a", "guests")
            .unwrap()
            .unwrap()
            .enabled
    );
    let names: Vec<String> = engine
        .store
        .rulesets("a", None, 50)
        .unwrap()
        .into_iter()
        .map(|h| h.name)
        .collect();
    assert_eq!(names, ["guests"]);
    let versions = engine
        .store
        .ruleset_versions("a", "billing", None, 2)
        .unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [3, 2]
    );
    let log: Vec<(String, String, String)> = engine
        .store
        .audit_log("a", None, 50)
        .unwrap()
        .into_iter()
        .map(|e| (e.who, e.what, e.subject))
        .collect();
    let expect = [
        ("bob", "ruleset.disabled", "guests"),
        ("carol", "ruleset.deleted", "billing"),
        ("carol", "ruleset.rolled_back", "billing"),
        ("alice", "ruleset.deployed", "billing"),
        ("alice", "ruleset.deployed", "billing"),
        ("alice", "ruleset.deployed", "guests"),
    ];
    let expect: Vec<(String, String, String)> = expect
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(log, expect);
    let disabled = engine.store.audit_log("a", None, 1).unwrap();
    assert_eq!(
        disabled[0].detail["cancelled"],
        serde_json::json!(d.cancelled)
    );
    assert!(disabled[0].detail["reason"]
        .as_str()
        .unwrap()
        .contains("no longer deployed"));
    // Its events now run no rules (not the tenant `*`'s).
    let programs = engine.store.programs().unwrap();
    let a = programs.iter().find(|p| p.tenant == "a").unwrap();
    assert!(a.program.is_none());
}

#[test]
fn tenants_run_their_own_programs_on_sqlite_and_postgres() {
    let dir = std::env::temp_dir().join(format!("steward-tenants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tenants.db");
    tenants_run_their_own_programs(SqliteStore::open(path.to_str().unwrap(), rules()).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(db) = Scratch::create("test") {
        tenants_run_their_own_programs(PgStore::open(&db.url(), rules()).unwrap());
    }
}

/// Deploys of two rulesets of one tenant at once: each is checked outside
/// its transaction against the tenant's rulesets as read, and applied only
/// if they are still so (else checked again): every deploy lands, and the
/// program is both rulesets' last versions checked together.
fn concurrent_deploys<S: Control + Sync>(store: &S) {
    const DEPLOYS: usize = 8;
    std::thread::scope(|scope| {
        for r in 0..2 {
            scope.spawn(move || {
                for i in 0..DEPLOYS {
                    let text = format!(
                        "event ev{r} {{ id: string }}\nrule r{r}_{i} when ev{r} then\n  log \"{{id}}\"\nend\n"
                    );
                    let d = store
                        .deploy_ruleset("t", &format!("r{r}"), &sources(&[("main.stw", &text)]), "test")
                        .unwrap();
                    assert!(d.new && d.version == i as i64 + 1, "{d:?}");
                }
            });
        }
    });
    let program = store.program_of("t").unwrap().unwrap().program.unwrap().1;
    let text: String = program.files.iter().map(|(_, t)| t.as_str()).collect();
    let last = DEPLOYS - 1;
    assert!(
        text.contains(&format!("rule r0_{last} ")) && text.contains(&format!("rule r1_{last} ")),
        "{text}"
    );
    assert_eq!(program.files.len(), 2, "{:?}", program.files);
}

#[test]
fn concurrent_deploys_on_sqlite_and_postgres() {
    let dir = std::env::temp_dir().join(format!("steward-deploys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("deploys.db");
    concurrent_deploys(&SqliteStore::open(path.to_str().unwrap(), rules()).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(db) = Scratch::create("test") {
        concurrent_deploys(&PgStore::open(&db.url(), rules()).unwrap());
    }
}

/// A timer whose rule the tenant's program no longer has is cancelled when
/// it comes due, with the reason (the same on every store).
#[test]
fn a_timer_of_a_removed_rule_is_cancelled_when_due() {
    let (_, v1) = program(&REMIND.replace("VERSION", "v1"));
    let (_, other) =
        program("event job { id: string }\nrule other when job then\n  log \"x\"\nend\n");
    let mut engine = Engine::new(v1.clone(), MemoryStore::new());
    let mut sink = Collect::default();
    let e = decode_event(v1.shapes(), &job("a", "2026-11-20T10:00:00Z")).unwrap();
    engine.handle(e, &mut sink).unwrap();
    engine.programs.insert(Arc::from("t1"), other);
    engine
        .advance_to("2026-11-20T12:00:00Z".parse().unwrap(), &mut sink)
        .unwrap();
    assert!(sink.actions.is_empty(), "{:?}", sink.actions);
    assert_eq!(sink.errors.len(), 1);
    assert!(
        sink.errors[0]
            .message
            .contains("the rule `remind` is no longer deployed for tenant `t1`"),
        "{}",
        sink.errors[0].message
    );
    assert_eq!(engine.store.pending_timers().unwrap(), 0);
}

/// An event a rule emits is kept with the events, handled (`processed`),
/// with its type and payload.
fn emits_are_kept<S: Durable + steward_db::api::Api>(store: S) {
    let (_, rules) = program(
        "event job { id: string }\nevent job.seen { job: string }\n\
         rule see when job then\n  emit job.seen { job: id }\nend\n",
    );
    let mut engine = Engine::new(rules.clone(), store);
    let mut sink = Collect::default();
    let line = job("a", "2026-11-20T10:00:00Z");
    assert!(engine.store.push(&line).unwrap());
    let e = decode_event(rules.shapes(), &line).unwrap();
    engine.handle(e, &mut sink).unwrap();
    let page = steward_db::api::Page {
        after: None,
        limit: 10,
    };
    let events = engine
        .store
        .events("t1", Some("job.seen"), None, &page)
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].status, "processed");
    assert_eq!(events[0].payload, serde_json::json!({"job": "a"}));
    assert!(events[0].id.starts_with("a~see~"), "{}", events[0].id);
    assert_eq!(engine.store.event_counts().unwrap(), [0, 2, 0]);
}

/// A batch remembers each event it handled by its tenant and id (what
/// keeps an id from being handled twice), as a unit alone does.
fn batches_remember_what_they_handled<S: Durable>(store: S) {
    let (_, rules) =
        program("event job { id: string }\nrule see when job then\n  log \"{id}\"\nend\n");
    let mut engine = Engine::new(rules.clone(), store);
    let mut sink = Collect::default();
    for (id, minute) in [("a", 0), ("b", 1)] {
        assert!(engine
            .store
            .push(&job(id, &format!("2026-11-20T10:0{minute}:00Z")))
            .unwrap());
    }
    engine.store.begin_batch().unwrap();
    for e in engine.store.claim_events(10).unwrap() {
        let e = decode_event(rules.shapes(), &e.line).unwrap();
        engine.handle(e, &mut sink).unwrap();
    }
    engine.store.commit_batch().unwrap();
    for id in ["a", "b"] {
        assert!(engine.store.is_handled("t1", id).unwrap(), "{id}");
    }
    assert!(!engine.store.is_handled("t1", "c").unwrap());
    assert_eq!(engine.store.event_counts().unwrap(), [0, 2, 0]);
}

#[test]
fn batches_remember_what_they_handled_on_sqlite_and_postgres() {
    let dir = std::env::temp_dir().join(format!("steward-handled-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("handled.db");
    batches_remember_what_they_handled(SqliteStore::open(path.to_str().unwrap(), rules()).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(db) = Scratch::create("test") {
        batches_remember_what_they_handled(PgStore::open(&db.url(), rules()).unwrap());
    }
}

#[test]
fn emitted_events_are_kept_on_sqlite_and_postgres() {
    let dir = std::env::temp_dir().join(format!("steward-emit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("emit.db");
    emits_are_kept(SqliteStore::open(path.to_str().unwrap(), rules()).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(db) = Scratch::create("test") {
        emits_are_kept(PgStore::open(&db.url(), rules()).unwrap());
    }
}

/// A decision recorded over HTTP waits for the worker, which takes it once;
/// and a tenant's quota counts its webhooks delivered since a time, not
/// those still waiting, nor its other actions.
fn decisions_and_deliveries_are_counted<S>(store: S)
where
    S: Durable + steward_db::api::Api + steward_db::tenancy::Tenancy,
{
    use steward_db::api::{Decided, Page};
    use steward_db::Attempt;
    let (_, rules) = program(
        "event job { id: string }\n\
         action hook(id: string) via webhook \"https://hooks.example/jobs\"\n\
         rule r when job then\n  hook(id)\n  log \"{id}\"\n  require approval from role owner within 2h do\n    log \"signed {id}\"\n  end\nend\n",
    );
    let mut engine = Engine::new(rules.clone(), store);
    let mut sink = Collect::default();
    // Now, so that the approvals' deadlines are ahead.
    let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    for id in ["a", "b"] {
        assert!(engine.store.push(&job(id, &at)).unwrap());
    }
    engine.store.begin_batch().unwrap();
    for e in engine.store.claim_events(10).unwrap() {
        let e = decode_event(rules.shapes(), &e.line).unwrap();
        engine.handle(e, &mut sink).unwrap();
    }
    engine.store.commit_batch().unwrap();

    let page = Page {
        after: None,
        limit: 10,
    };
    let pending = engine
        .store
        .approvals("t1", Some("pending"), &page)
        .unwrap();
    assert_eq!(pending.len(), 2, "{pending:?}");
    let id = &pending[0].id;
    match engine
        .store
        .request_decision("t1", id, true, "ana", "api", "")
        .unwrap()
    {
        Decided::Recorded(_) => {}
        other => panic!("{other:?}"),
    }
    let requests = engine.store.decision_requests(10).unwrap();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        (requests[0].approval.as_str(), requests[0].by.as_str()),
        (id.as_str(), "ana")
    );
    engine.store.took_decision("t1", id).unwrap();
    assert!(engine.store.decision_requests(10).unwrap().is_empty());

    let since = "2000-01-01T00:00:00.000000000Z";
    assert_eq!(engine.store.delivered_since("t1", since).unwrap(), 0);
    let now = chrono::Utc::now();
    let claimed = engine
        .store
        .claim_deliveries(now, now + chrono::Duration::minutes(1), 10)
        .unwrap();
    // Two webhooks and two approval requests (which are not counted).
    let (hooks, others): (Vec<_>, Vec<_>) = claimed.iter().partition(|d| d.url.is_some());
    assert_eq!((hooks.len(), others.len()), (2, 2), "{claimed:?}");
    engine
        .store
        .attempted(hooks[0], &Attempt::Delivered)
        .unwrap();
    engine
        .store
        .attempted(others[0], &Attempt::Delivered)
        .unwrap();
    assert_eq!(engine.store.delivered_since("t1", since).unwrap(), 1);
    assert_eq!(engine.store.delivered_since("t2", since).unwrap(), 0);
    assert_eq!(
        engine
            .store
            .delivered_since("t1", "2999-01-01T00:00:00.000000000Z")
            .unwrap(),
        0
    );
}

#[test]
fn decisions_and_deliveries_are_counted_on_sqlite_and_postgres() {
    let dir = std::env::temp_dir().join(format!("steward-decisions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("decisions.db");
    decisions_and_deliveries_are_counted(
        SqliteStore::open(path.to_str().unwrap(), rules()).unwrap(),
    );
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(db) = Scratch::create("test") {
        decisions_and_deliveries_are_counted(PgStore::open(&db.url(), rules()).unwrap());
    }
}
