//! The order and unit rules of the engine (docs/engine.md): events before
//! timers at one instant, a chain restarting at a durable timer, schedules
//! per tenant, approvals superseded like timers, and a rule's handling of
//! one event being all or nothing.

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
use steward::engine::{compile, decode_event, Collect, Engine, MemoryStore, Ruleset};

const DECLS: &str = r#"
event job { id: string }
event job.done { id: string }
event ping { n: int }
"#;

fn rules(text: &str) -> Arc<Ruleset> {
    let files = vec![
        ("decls.stw".to_string(), DECLS.to_string()),
        ("rules.stw".to_string(), text.to_string()),
    ];
    let analysis = analyze(&files, &NoFiles);
    let errors: Vec<String> = analysis.errors().map(|d| d.message.clone()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    Arc::new(compile(&analysis).unwrap_or_else(|d| panic!("{d:?}")))
}

/// An envelope of `tenant`, with a `key` when given.
fn event(tenant: &str, id: &str, ty: &str, at: &str, key: Option<&str>, payload: &str) -> String {
    let key = key.map_or(String::new(), |k| format!(r#","key":"{k}""#));
    format!(
        r#"{{"id":"{id}","tenant":"{tenant}","type":"{ty}","occurred_at":"{at}"{key},"payload":{payload}}}"#
    )
}

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

struct Run {
    engine: Engine<MemoryStore>,
    sink: Collect,
}

impl Run {
    fn new(rules: &Arc<Ruleset>) -> Run {
        Run {
            engine: Engine::new(rules.clone(), MemoryStore::new()),
            sink: Collect::default(),
        }
    }

    fn handle(&mut self, line: &str) {
        let e = decode_event(self.engine.rules.shapes(), line).unwrap();
        self.engine.handle(e, &mut self.sink).unwrap();
    }

    fn advance(&mut self, to: &str) {
        self.engine.advance_to(time(to), &mut self.sink).unwrap();
    }

    fn logged(&self) -> Vec<String> {
        self.sink
            .actions
            .iter()
            .filter(|a| &*a.action == "log")
            .filter_map(|a| a.args["text"].as_str().map(String::from))
            .collect()
    }

    fn errors(&self) -> Vec<String> {
        self.sink.errors.iter().map(|e| e.message.clone()).collect()
    }
}

#[test]
fn a_job_done_exactly_at_its_deadline_is_not_overdue() {
    let r = rules(
        "rule sla when job then\n  after 1h unless job.done on id do\n    log \"overdue {id}\"\n  end\nend",
    );
    let mut run = Run::new(&r);
    run.handle(&event(
        "t1",
        "j1",
        "job",
        "2026-11-20T10:00:00Z",
        None,
        r#"{"id":"j1"}"#,
    ));
    run.handle(&event(
        "t1",
        "d1",
        "job.done",
        "2026-11-20T11:00:00Z",
        None,
        r#"{"id":"j1"}"#,
    ));
    run.advance("2026-11-20T12:00:00Z");
    assert!(run.logged().is_empty(), "{:?}", run.logged());
    assert_eq!(run.engine.stats.timers_cancelled, 1);
}

#[test]
fn a_timer_due_exactly_now_is_not_late() {
    let r = rules(
        "rule now when ping then\n  at envelope.occurred_at skip if late do\n    log \"due now\"\n  end\n  at envelope.occurred_at - 1m skip if late do\n    log \"late\"\n  end\nend",
    );
    let mut run = Run::new(&r);
    run.handle(&event(
        "t1",
        "p1",
        "ping",
        "2026-11-20T10:00:00Z",
        None,
        r#"{"n":1}"#,
    ));
    assert_eq!(run.logged(), ["due now"]);
}

#[test]
fn a_chain_through_a_durable_timer_starts_again() {
    let r =
        rules("rule daily when ping then\n  after 1d do\n    emit ping { n: n + 1 }\n  end\nend");
    let mut run = Run::new(&r);
    run.handle(&event(
        "t1",
        "p0",
        "ping",
        "2026-11-01T10:00:00Z",
        None,
        r#"{"n":0}"#,
    ));
    run.advance("2026-11-30T10:00:00Z");
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    let emits: Vec<_> = run
        .sink
        .actions
        .iter()
        .filter(|a| &*a.action == "emit")
        .collect();
    assert_eq!(emits.len(), 29, "one a day, past the chain bound of 16");
    assert_eq!(emits.last().unwrap().args["payload"]["n"], 29);
    // Ids and keys stay short: each day's chain starts at its timer.
    let longest = emits.iter().map(|a| a.key_text().len()).max().unwrap();
    assert!(
        longest < 120,
        "{longest}: {}",
        emits.last().unwrap().key_text()
    );
    let keys: std::collections::HashSet<String> = emits.iter().map(|a| a.key()).collect();
    assert_eq!(
        keys.len(),
        emits.len(),
        "every day's action has its own key"
    );
}

#[test]
fn a_runaway_chain_names_the_event_that_started_it() {
    let r = rules("rule again when ping then emit ping { n: n + 1 } end");
    let mut run = Run::new(&r);
    run.handle(&event(
        "t1",
        "first",
        "ping",
        "2026-11-01T10:00:00Z",
        None,
        r#"{"n":0}"#,
    ));
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("started at `first`"), "{errors:?}");
}

#[test]
fn a_schedule_fires_for_every_tenant() {
    let r = rules(
        "rule hourly every 1h then log \"tick\" end\nrule seen when ping then log \"seen\" end",
    );
    let mut run = Run::new(&r);
    run.handle(&event(
        "acme",
        "p1",
        "ping",
        "2026-11-20T10:30:00Z",
        None,
        r#"{"n":1}"#,
    ));
    run.handle(&event(
        "globex",
        "p1",
        "ping",
        "2026-11-20T10:40:00Z",
        None,
        r#"{"n":1}"#,
    ));
    run.advance("2026-11-20T12:00:00Z");
    let shown: Vec<String> = run
        .sink
        .actions
        .iter()
        .map(|a| format!("{} {}", a.args["text"].as_str().unwrap(), a.tenant))
        .collect();
    assert_eq!(
        shown,
        [
            "seen acme",
            "seen globex",
            "tick acme",
            "tick globex",
            "tick acme",
            "tick globex"
        ]
    );
}

#[test]
fn an_approval_asked_again_for_the_same_key_supersedes_the_pending_one() {
    let r = rules(
        "rule hold when job then\n  require approval from role owner within 1d do\n    log \"approved {id}\"\n  end\nend",
    );
    let mut run = Run::new(&r);
    run.handle(&event(
        "t1",
        "j1",
        "job",
        "2026-11-20T10:00:00Z",
        Some("k1"),
        r#"{"id":"j1"}"#,
    ));
    run.handle(&event(
        "t1",
        "j2",
        "job",
        "2026-11-20T11:00:00Z",
        Some("k1"),
        r#"{"id":"j2"}"#,
    ));
    let pending = steward::engine::Store::pending_approvals(&run.engine.store).unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].id.contains("j2"), "{}", pending[0].id);
    let cancelled: Vec<_> = run
        .sink
        .actions
        .iter()
        .filter(|a| &*a.action == "approval_cancelled")
        .collect();
    assert_eq!(cancelled.len(), 1);
    assert!(cancelled[0].args["approval"]
        .as_str()
        .unwrap()
        .contains("j1"));
    assert!(cancelled[0].args["reason"]
        .as_str()
        .unwrap()
        .contains("superseded"));
    // The old one can no longer be decided.
    let old = cancelled[0].args["approval"].as_str().unwrap().to_string();
    let decided = run
        .engine
        .decide(
            &old,
            true,
            "ana",
            time("2026-11-20T12:00:00Z"),
            &mut run.sink,
        )
        .unwrap();
    assert!(!decided);
}

#[test]
fn a_rule_that_faults_halfway_does_nothing() {
    let r = rules(
        "rule half when ping throttle 1 per 1h then\n  log \"before\"\n  after 1h do\n    log \"later\"\n  end\n  emit job { id: \"j\" }\n  log \"{10 / n}\"\nend",
    );
    let mut run = Run::new(&r);
    run.handle(&event(
        "t1",
        "p1",
        "ping",
        "2026-11-20T10:00:00Z",
        None,
        r#"{"n":0}"#,
    ));
    assert_eq!(run.errors().len(), 1, "{:?}", run.errors());
    assert!(run.sink.actions.is_empty(), "{:?}", run.sink.actions);
    assert_eq!(
        steward::engine::Store::pending_timers(&run.engine.store),
        Ok(0)
    );
    assert_eq!(run.engine.stats.emitted, 0);
    // The faulted firing was not counted against the throttle.
    run.handle(&event(
        "t1",
        "p2",
        "ping",
        "2026-11-20T10:10:00Z",
        None,
        r#"{"n":5}"#,
    ));
    assert_eq!(run.logged(), ["before", "2"]);
}

#[test]
fn a_cron_time_in_the_spring_gap_fires_once_after_it_and_a_repeated_one_once() {
    let r = rules(
        "rule night every \"30 2 * * *\" in \"America/New_York\" then log \"night\" end\n\
         rule early every \"30 1 * * *\" in \"America/New_York\" then log \"early\" end",
    );
    let mut run = Run::new(&r);
    run.handle(&event(
        "t1",
        "p1",
        "ping",
        "2026-03-07T12:00:00Z",
        None,
        r#"{"n":1}"#,
    ));
    run.advance("2026-03-10T00:00:00Z");
    let at = |rule: &str, run: &Run| -> Vec<String> {
        run.sink
            .actions
            .iter()
            .filter(|a| &*a.rule == rule)
            .map(|a| a.at.to_rfc3339())
            .collect()
    };
    // 02:30 does not exist on March 8th: it fires at 03:00 EDT, once.
    assert_eq!(
        at("night", &run),
        ["2026-03-08T07:00:00+00:00", "2026-03-09T06:30:00+00:00"]
    );
    let mut run = Run::new(&r);
    run.handle(&event(
        "t1",
        "p1",
        "ping",
        "2026-10-31T12:00:00Z",
        None,
        r#"{"n":1}"#,
    ));
    run.advance("2026-11-03T00:00:00Z");
    // 01:30 happens twice on November 1st: it fires the first time only.
    assert_eq!(
        at("early", &run),
        ["2026-11-01T05:30:00+00:00", "2026-11-02T06:30:00+00:00"]
    );
}

#[test]
fn every_built_in_action_carries_the_arguments_its_declaration_names() {
    let r = rules(concat!(
        "message hello { to: [\"a@b.c\"], subject: \"hi {id}\", body: \"b\", cc: \"c@d.e\" }\n",
        "rule all when job then\n",
        "  send hello\n",
        "  notify role owner \"n {id}\"\n",
        "  create task \"t {id}\" for role ops due now() + 1h\n",
        "  create task \"u {id}\" for role ops\n",
        "  emit job.done { id: id }\n",
        "  log \"l {id}\"\n",
        "  require approval from role owner within 1d do\n    log \"yes\"\n  end\n",
        "end\n",
    ));
    let mut run = Run::new(&r);
    for (id, at) in [
        ("j1", "2026-11-20T10:00:00Z"),
        ("j2", "2026-11-20T11:00:00Z"),
    ] {
        run.handle(&event(
            "t1",
            id,
            "job",
            at,
            Some("k"),
            &format!(r#"{{"id":"{id}"}}"#),
        ));
    }
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    let mut seen = std::collections::BTreeSet::new();
    for action in &run.sink.actions {
        let declared = steward::check::actions::builtin(&action.action)
            .unwrap_or_else(|| panic!("`{}` is not declared", action.action));
        for key in action.args.keys() {
            assert!(
                declared.param(key).is_some(),
                "`{}` carries `{key}`, which it does not declare",
                action.action
            );
        }
        for p in declared.params {
            if !p.ty.is_optional() {
                assert!(
                    action.args.contains_key(p.name),
                    "`{}` lacks its argument `{}`: {:?}",
                    action.action,
                    p.name,
                    action.args
                );
            }
        }
        seen.insert(action.action.to_string());
    }
    let all: std::collections::BTreeSet<String> = steward::check::actions::BUILTINS
        .iter()
        .map(|b| b.name.to_string())
        .collect();
    assert_eq!(seen, all);
    let emitted = run
        .sink
        .actions
        .iter()
        .find(|a| &*a.action == "emit")
        .unwrap();
    assert_eq!(emitted.args["event_type"], "job.done");
    assert_eq!(emitted.args["payload"]["id"], "j1");
}

/// `count` windows are measured on the events' own times: a backlog handled
/// long after it happened is counted as it happened, not as one burst.
#[test]
fn count_windows_use_the_events_own_times() {
    let r = rules(
        "rule burst when ping count 3 within 10m then\n  log \"burst at {n}\"\nend\n\
         rule recent when ping if count(ping within 10m) >= 3 then\n  log \"three recent at {n}\"\nend",
    );
    let mut run = Run::new(&r);
    // The engine's clock is a day ahead of the pings when they are handled.
    run.advance("2026-11-21T10:00:00Z");
    for (i, at) in [
        "2026-11-20T10:00:00Z",
        "2026-11-20T10:06:00Z",
        "2026-11-20T10:12:00Z",
        "2026-11-20T10:13:00Z",
        "2026-11-20T10:14:00Z",
    ]
    .iter()
    .enumerate()
    {
        run.handle(&event(
            "t1",
            &format!("p{i}"),
            "ping",
            at,
            None,
            &format!(r#"{{"n":{i}}}"#),
        ));
    }
    // 10:00, 10:06 and 10:12 are not within ten minutes of each other;
    // 10:06, 10:12 and 10:13 are: the clause fires at 10:13 (n = 3) and
    // starts again; `count(...)` sees three at 10:13, and at 10:14 (10:12,
    // 10:13, 10:14).
    assert_eq!(
        run.logged(),
        ["burst at 3", "three recent at 3", "three recent at 4"],
        "{:?}",
        run.errors()
    );
}

/// `previous` is the value of the last event of the same key that carried
/// the field, across event types; an event without a key has none.
#[test]
fn previous_follows_the_key_across_types() {
    let r = rules(
        "rule moved when job.done if previous id != none then\n  log \"done after {previous id}\"\nend",
    );
    let mut run = Run::new(&r);
    let at = "2026-11-20T10:00:00Z";
    run.handle(&event("t1", "j1", "job", at, Some("k1"), r#"{"id":"a"}"#));
    run.handle(&event(
        "t1",
        "d1",
        "job.done",
        at,
        Some("k1"),
        r#"{"id":"b"}"#,
    ));
    run.handle(&event(
        "t1",
        "d2",
        "job.done",
        at,
        Some("k2"),
        r#"{"id":"c"}"#,
    ));
    run.handle(&event(
        "t2",
        "d3",
        "job.done",
        at,
        Some("k1"),
        r#"{"id":"d"}"#,
    ));
    run.handle(&event("t1", "d4", "job.done", at, None, r#"{"id":"e"}"#));
    run.handle(&event(
        "t1",
        "d5",
        "job.done",
        at,
        Some("k1"),
        r#"{"id":"f"}"#,
    ));
    assert_eq!(run.logged(), ["done after a", "done after b"]);
}

const USERS: &str = "event user { id: string  tz: string }\n\
    event user.gone { id: string }\n\
    rule digest when user then\n  every \"0 8 * * *\" in tz unless user.gone on id do\n    log \"digest {id}\"\n  end\nend";

fn user_rules() -> Arc<Ruleset> {
    let files = vec![("users.stw".to_string(), USERS.to_string())];
    let analysis = analyze(&files, &NoFiles);
    let errors: Vec<String> = analysis.errors().map(|d| d.message.clone()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    Arc::new(compile(&analysis).unwrap_or_else(|d| panic!("{d:?}")))
}

/// A schedule statement: each tick in the event's zone; a zone the event
/// gives that does not exist is a rule error naming the event; and in a
/// worker (`missed_ticks_once`), ticks missed while it was down fire once.
#[test]
fn schedules_of_an_event_key() {
    let r = user_rules();
    let mut run = Run::new(&r);
    let at = "2026-01-01T00:00:00Z";
    run.handle(&event(
        "t1",
        "u1",
        "user",
        at,
        Some("u1"),
        r#"{"id":"u1","tz":"Asia/Tokyo"}"#,
    ));
    run.handle(&event(
        "t1",
        "u2",
        "user",
        at,
        Some("u2"),
        r#"{"id":"u2","tz":"Mars/Olympus"}"#,
    ));
    run.advance("2026-01-03T00:00:00Z");
    // 8:00 in Tokyo is 23:00 UTC the day before: Jan 1 and Jan 2.
    assert_eq!(run.logged(), ["digest u1", "digest u1"]);
    assert_eq!(
        run.errors(),
        ["event `u2` gives the time zone `Mars/Olympus`, which is not an IANA zone such as `America/Toronto`"]
    );

    let mut worker = Run::new(&r);
    worker.engine.limits.missed_ticks_once = true;
    worker.handle(&event(
        "t1",
        "u1",
        "user",
        at,
        Some("u1"),
        r#"{"id":"u1","tz":"UTC"}"#,
    ));
    worker.advance("2026-01-10T09:00:00Z");
    assert_eq!(
        worker.logged(),
        ["digest u1"],
        "nine missed ticks fire once"
    );
    worker.advance("2026-01-11T09:00:00Z");
    assert_eq!(worker.logged(), ["digest u1", "digest u1"]);
}

/// Rules with a priority run first, lowest first, ties by name, then the
/// others in source order; `stop` ends the event's handling by every later
/// rule, and nothing else: a timer set earlier still fires, and the next
/// event is handled by every rule.
#[test]
fn priority_orders_rules_and_stop_ends_the_events_handling() {
    let r = rules(
        "rule plain when ping then\n  log \"plain {n}\"\nend\n\
         rule b_second when ping priority 2 then\n  log \"b {n}\"\nend\n\
         rule a_second when ping priority 2 then\n  log \"a {n}\"\nend\n\
         rule first when ping priority 1 then\n  log \"first {n}\"\n  after 1h do\n    log \"later {n}\"\n  end\n  if n == 1 then\n    stop\n  end\n  log \"after the if {n}\"\nend",
    );
    let mut run = Run::new(&r);
    let at = "2026-11-20T10:00:00Z";
    run.handle(&event("t1", "p0", "ping", at, None, r#"{"n":0}"#));
    run.handle(&event("t1", "p1", "ping", at, None, r#"{"n":1}"#));
    run.advance("2026-11-20T12:00:00Z");
    assert_eq!(
        run.logged(),
        [
            "first 0",
            "after the if 0",
            "a 0",
            "b 0",
            "plain 0",
            "first 1",
            "later 0",
            "later 1"
        ]
    );
}
