//! The store contract: every unit of work (an event, an emitted event, a due
//! timer, a deadline, a decision, a schedule tick) is committed whole or not
//! at all, with its actions, which reach the sink only once it is. A store
//! that fails any one commit, with the call retried, ends with exactly what
//! a store that never fails gives: nothing lost, nothing done twice.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use steward::check::{analyze, NoFiles};
use steward::engine::store::{Approval, CancelKey, Changes, Due, StoreError, TimerKey};
use steward::engine::{
    compile, decode_event, Collect, Engine, MemoryStore, Performed, Refused, Ruleset, Store,
};

/// A memory store whose `fail_at`-th commit (counting from 1) fails once.
struct Flaky {
    inner: MemoryStore,
    commits: usize,
    fail_at: usize,
    /// The actions of the commits that succeeded, as the store saw them.
    outbox: Vec<String>,
}

impl Store for Flaky {
    fn is_handled(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.inner.is_handled(tenant, id)
    }
    fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.next_due()
    }
    fn due(&self, up_to: DateTime<Utc>) -> Result<Option<Due>, StoreError> {
        self.inner.due(up_to)
    }
    fn waiting_on(&self, key: &CancelKey) -> Result<usize, StoreError> {
        self.inner.waiting_on(key)
    }
    fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        self.inner.approval(id)
    }
    fn timer(&self, key: &TimerKey) -> Result<Option<steward::engine::store::Timer>, StoreError> {
        self.inner.timer(key)
    }
    fn approval_for(&self, key: &TimerKey) -> Result<Option<Approval>, StoreError> {
        self.inner.approval_for(key)
    }
    fn pending_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        self.inner.pending_approvals()
    }
    fn window_count(
        &self,
        tenant: &str,
        key: &str,
        window_ms: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.inner.window_count(tenant, key, window_ms, now)
    }
    fn remembered(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Vec<(std::sync::Arc<str>, steward::engine::stored::StoredValue)>, StoreError> {
        self.inner.remembered(tenant, key)
    }
    fn next_tick(&self, tenant: &str, rule: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.next_tick(tenant, rule)
    }
    fn pending_timers(&self) -> Result<usize, StoreError> {
        self.inner.pending_timers()
    }
    fn commit(
        &mut self,
        changes: &mut Changes,
        actions: &mut dyn Iterator<Item = Performed<'_>>,
    ) -> Result<(), StoreError> {
        self.commits += 1;
        if self.commits == self.fail_at {
            return Err(StoreError::Unavailable("the connection was lost".into()));
        }
        let lines: Vec<String> = actions.map(|a| a.key.token()).collect();
        self.inner.commit(changes, &mut std::iter::empty())?;
        self.outbox.extend(lines);
        Ok(())
    }
}

const DECLS: &str = r#"
event job { id: string  owner: string }
event job.done { id: string }
event job.checked { id: string }
"#;

const RULES: &str = r#"
rule opened when job then
  log "opened {id}"
  emit job.checked { id: id }
  after 1h unless job.done on id do
    notify role ops "{id} is overdue"
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

fn events() -> Vec<String> {
    let line = |id: &str, ty: &str, at: &str, payload: &str| {
        format!(
            r#"{{"id":"{id}","tenant":"t1","type":"{ty}","occurred_at":"{at}","key":"k-{payload_id}","payload":{payload}}}"#,
            payload_id = &id[1..],
        )
    };
    vec![
        line(
            "e1",
            "job",
            "2026-11-20T10:00:00Z",
            r#"{"id":"1","owner":"a"}"#,
        ),
        line(
            "e2",
            "job",
            "2026-11-20T10:10:00Z",
            r#"{"id":"2","owner":"b"}"#,
        ),
        line(
            "e3",
            "job",
            "2026-11-20T10:20:00Z",
            r#"{"id":"3","owner":"c"}"#,
        ),
        line("d1", "job.done", "2026-11-20T10:30:00Z", r#"{"id":"1"}"#),
        line("d2", "job.done", "2026-11-20T13:00:00Z", r#"{"id":"2"}"#),
        line(
            "e4",
            "job",
            "2026-11-20T15:00:00Z",
            r#"{"id":"4","owner":"d"}"#,
        ),
    ]
}

/// What a run did: the actions the sink got, by idempotency key and name,
/// and the store's outbox.
fn run(fail_at: usize) -> (Vec<String>, Vec<String>, usize, usize) {
    let rules = rules();
    let store = Flaky {
        inner: MemoryStore::new(),
        commits: 0,
        fail_at,
        outbox: Vec::new(),
    };
    let mut engine = Engine::new(rules.clone(), store);
    let mut sink = Collect::default();
    let mut failures = 0;
    let retried = |result: Result<(), Refused>, failures: &mut usize| match result {
        Ok(()) => false,
        Err(Refused::Store(_)) => {
            *failures += 1;
            true
        }
        Err(other) => panic!("{other}"),
    };
    for line in events() {
        loop {
            let event = decode_event(rules.shapes(), &line).unwrap();
            let result = engine.handle(event, &mut sink).map(|_| ());
            if !retried(result, &mut failures) {
                break;
            }
        }
        if line.contains(r#""id":"d1""#) {
            let id = engine.store.pending_approvals().unwrap()[0].id.clone();
            let at = "2026-11-20T10:40:00Z".parse().unwrap();
            loop {
                let result = engine.decide(&id, true, "ana", at, &mut sink).map(|_| ());
                if !retried(result, &mut failures) {
                    break;
                }
            }
        }
    }
    loop {
        let to = "2026-11-21T00:00:00Z".parse().unwrap();
        let result = engine.advance_to(to, &mut sink);
        if !retried(result, &mut failures) {
            break;
        }
    }
    assert!(sink.errors.is_empty(), "{:?}", sink.errors);
    let seen: Vec<String> = sink
        .actions
        .iter()
        .map(|a| {
            let args = serde_json::Value::Object(a.args.clone());
            format!("{} {} {args}", a.key(), a.action)
        })
        .collect();
    (
        seen,
        engine.store.outbox.clone(),
        failures,
        engine.store.commits,
    )
}

#[test]
fn a_failed_commit_retried_ends_as_if_it_had_not_failed() {
    let (clean, outbox, failures, commits) = run(0);
    assert_eq!(failures, 0);
    assert!(clean.len() > 20, "{clean:#?}");
    // The outbox holds what the sink got, in order.
    let keys: Vec<String> = clean
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(keys, outbox);
    // Every kind of unit is among the commits: events, emitted events,
    // timers, deadlines, decisions, ticks.
    for want in [
        "opened 1",
        "checked 1",
        "is overdue",
        "signed 1",
        "not signed 2",
        "tick",
        "approval_requested",
    ] {
        assert!(clean.iter().any(|l| l.contains(want)), "no `{want}`");
    }
    assert!(commits > 20);
    for fail_at in 1..=commits {
        let (seen, outbox, failures, _) = run(fail_at);
        assert_eq!(failures, 1, "commit {fail_at}");
        assert_eq!(seen, clean, "commit {fail_at} failed once");
        let keys: Vec<String> = seen
            .iter()
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(keys, outbox, "commit {fail_at}");
    }
}
