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

use std::sync::Arc;

use steward::check::{analyze, NoFiles};
use steward::engine::{compile, decode_event, Collect, Engine, MemoryStore, Ruleset, Store};
use steward_db::{Durable, PgStore, SqliteStore};

const DECLS: &str = r#"
event job { id: string  owner: string  total: decimal }
event job.done { id: string }
event job.checked { id: string }
"#;

const RULES: &str = r#"
rule opened when job then
  let share = total * 0.15
  log "opened {id}: {share}"
  create task "review {id}" for role ops due now() + 2h
  emit job.checked { id: id }
  after 1h unless job.done on id do
    notify role ops "{id} is overdue, {share} at stake"
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
  end
end

rule hourly every 1h then
  log "tick"
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
        (
            line("d2", "job.done", "2026-11-20T13:00:00Z", r#"{"id":"2"}"#),
            None,
        ),
        (
            line(
                "e4",
                "job",
                "2026-11-20T15:00:00Z",
                r#"{"id":"4","owner":"d","total":"1.10"}"#,
            ),
            None,
        ),
        (
            line(
                "e4",
                "job",
                "2026-11-20T15:00:00Z",
                r#"{"id":"4","owner":"d","total":"1.10"}"#,
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
    for cut in [1, 3, 4, 5, 6] {
        let path = dir.join(format!("cut-{cut}.db"));
        let open = || SqliteStore::open(path.to_str().unwrap(), rules()).unwrap();
        let got = restarted(&open, cut);
        assert_eq!(got, expected, "restarted after step {cut}");
    }
    // The outbox holds every action once, by key; each `notify` is a
    // notification too.
    let store = SqliteStore::open(dir.join("whole.db").to_str().unwrap(), rules()).unwrap();
    let outbox = store.outbox().unwrap();
    assert_eq!(outbox.len(), expected.actions.len());
    let count = |name: &str| outbox.iter().filter(|(_, a, _)| a == name).count() as i64;
    let (notified, tasks) = (count("notify"), count("create_task"));
    assert!(notified > 0 && tasks > 0);
    assert_eq!(store.people_work().unwrap(), [notified, tasks]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A database of this run's own on the server at `DATABASE_URL`.
struct Scratch {
    admin: String,
    name: String,
}

impl Scratch {
    fn create() -> Option<Scratch> {
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let name = format!(
            "steward_test_{}_{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let created = rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await?;
            Ok::<_, sqlx::Error>(())
        });
        match created {
            Ok(()) => Some(Scratch { admin: url, name }),
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("PostgreSQL at DATABASE_URL is unreachable and CI is set: {e}")
            }
            Err(e) => {
                eprintln!("skipped: PostgreSQL at DATABASE_URL is unreachable ({e})");
                None
            }
        }
    }

    fn url(&self) -> String {
        match self.admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{}", self.name),
            None => format!("{}/{}", self.admin, self.name),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&self.admin).await?;
            sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await?;
            Ok::<_, sqlx::Error>(())
        });
    }
}

#[test]
fn postgres_behaves_as_memory_and_keeps_work_across_restarts() {
    let Some(db) = Scratch::create() else {
        return;
    };
    let expected = memory();
    let got = whole(PgStore::open(&db.url(), rules()).unwrap());
    assert_eq!(got, expected);
    for cut in [3, 5] {
        let fresh = Scratch::create().unwrap();
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
    if let Some(db) = Scratch::create() {
        leases_hold_one_worker(&PgStore::open(&db.url(), rules()).unwrap());
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
fn redeploys<S: Durable>(open: &dyn Fn(Arc<Ruleset>) -> S) {
    let (v1_sources, v1) = program(&REMIND.replace("VERSION", "v1"));
    let (v2_sources, v2) = program(&REMIND.replace("VERSION", "v2"));
    let (_, never) = program(&REMIND.replace("VERSION", "never deployed"));
    let mut sink = Collect::default();
    {
        let store = open(v1.clone());
        assert_eq!(
            store
                .deploy("*", "default", &v1_sources, &v1.version)
                .unwrap(),
            (1, true)
        );
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
    assert_eq!(
        store
            .deploy("*", "default", &v2_sources, &v2.version)
            .unwrap(),
        (2, true)
    );
    assert_eq!(
        store
            .deploy("*", "default", &v2_sources, &v2.version)
            .unwrap(),
        (2, false),
        "the same program again is no new version"
    );
    assert_eq!(store.latest("*", "default").unwrap(), Some((2, v2_sources)));
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
    if let Some(db) = Scratch::create() {
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
    if let Some(db) = Scratch::create() {
        prunes(PgStore::open(&db.url(), rules()).unwrap());
    }
}
