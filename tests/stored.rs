//! Suspended work as data: a continuation stored as JSON comes back exactly
//! (every value type), resumes under the version that created it, and is
//! cancelled with a reason when its rule or step is gone.

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
use steward::engine::store::{Continuation, Due};
use steward::engine::stored::{store, Cancelled, StoredContinuation, Versions};
use steward::engine::{compile, decode_event, Collect, Engine, MemoryStore, Ruleset, Store};

const DECLS: &str = r#"
type Address { city: string  zip: string? }
event booking {
  id: string
  n: int
  risk: float
  total: decimal
  vip: bool
  channel: "airbnb" | "vrbo"
  day: date
  starts: datetime
  stay: duration
  tags: list<string>
  counts: list<int>
  phone: string?
  note: string?
  address: Address
}
"#;

const HOLD: &str = "rule hold when booking then\n\
    let doubled = n * 2\n\
    let scaled = risk * 3.0\n\
    let price = total + 0.10\n\
    let later = starts + stay\n\
    let both = tags + [\"extra\"]\n\
    after 1h do\n\
      log \"{doubled} {scaled} {price} {later}\"\n\
    end\n\
end";

fn rules(text: &str) -> Arc<Ruleset> {
    let files = vec![
        ("decls.stw".to_string(), DECLS.to_string()),
        ("rules.stw".to_string(), text.to_string()),
    ];
    let analysis = analyze(&files, &NoFiles);
    assert!(!analysis.has_errors(), "{:?}", analysis.diagnostics);
    Arc::new(compile(&analysis).unwrap_or_else(|d| panic!("{d:?}")))
}

const EVENT: &str = r#"{"id":"b1","tenant":"acme","type":"booking","occurred_at":"2026-11-20T10:00:00.123456789Z","key":"k1","payload":{"id":"b1","n":-7,"risk":-0.0,"total":"240.00","vip":true,"channel":"vrbo","day":"2026-02-28","starts":"2026-11-20T10:00:00.5Z","stay":"3d4h","tags":["a","b"],"counts":[],"phone":"+1 555","address":{"city":"Montréal"}}}"#;

/// The continuation of the timer `HOLD` sets on `EVENT`.
fn suspended(rules: &Arc<Ruleset>) -> Continuation {
    let mut engine = Engine::new(rules.clone(), MemoryStore::new());
    let mut sink = Collect::default();
    let event = decode_event(rules.shapes(), EVENT).unwrap();
    engine.handle(event, &mut sink).unwrap();
    assert!(sink.errors.is_empty(), "{:?}", sink.errors);
    let far = "2027-01-01T00:00:00Z".parse().unwrap();
    match engine.store.due(far).unwrap() {
        Some(Due::Timer(t)) => t.cont,
        other => panic!("no timer: {other:?}"),
    }
}

fn through_json(stored: &StoredContinuation) -> StoredContinuation {
    let text = serde_json::to_string(stored).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_continuation_round_trips_exactly_through_json() {
    let r = rules(HOLD);
    let cont = suspended(&r);
    let stored = store(&r, &cont);
    let mut versions = Versions::new();
    versions.insert(r.clone());
    let (rules, back) = versions.resume(&through_json(&stored)).unwrap();
    assert_eq!(rules.version, r.version);
    assert_eq!((back.rule, back.block), (cont.rule, cont.block));
    assert_eq!(back.event.payload, cont.event.payload);
    assert_eq!(back.event.occurred_at, cont.event.occurred_at);
    assert_eq!(back.event.key, cont.event.key);
    assert_eq!(back.envelope, cont.envelope);
    assert_eq!(back.locals, cont.locals);
    // Exact, not merely equal: the sign of zero and a decimal's scale.
    let shapes = r.shapes();
    let risk = shapes
        .record(cont.event.payload.shape)
        .slot("risk")
        .unwrap();
    let steward::engine::Value::Float(x) = back.event.payload.slots[risk] else {
        panic!("risk is a float");
    };
    assert!(x == 0.0 && x.is_sign_negative());
    assert_eq!(back.locals[2].to_string(), "240.10");
    // And stored again, the same data.
    assert_eq!(store(&rules, &back), stored);
}

#[test]
fn work_whose_rule_or_step_is_gone_is_cancelled_with_a_reason() {
    let r = rules(HOLD);
    let stored = store(&r, &suspended(&r));
    let mut versions = Versions::new();
    let unknown = versions.resume(&stored).err();
    assert!(
        matches!(unknown, Some(Cancelled::UnknownVersion(_))),
        "{unknown:?}"
    );
    // A version where the rule is renamed, and one where the timer changed.
    let renamed = rules(&HOLD.replace("rule hold", "rule keep"));
    let changed = rules(&HOLD.replace("after 1h do", "after 2h do"));
    for other in [&renamed, &changed] {
        versions.insert(other.clone());
        let mut moved = stored.clone();
        moved.version = other.version.clone();
        let reason = versions.resume(&moved).err().map(|c| c.to_string());
        assert!(reason.is_some(), "resumed in a rule that changed");
    }
    let mut moved = stored.clone();
    moved.version = renamed.version.clone();
    assert!(matches!(
        versions.resume(&moved),
        Err(Cancelled::NoRule { .. })
    ));
    moved.version = changed.version.clone();
    let reason = versions.resume(&moved).err().unwrap().to_string();
    assert!(reason.contains("has no step"), "{reason}");
    // The version that created it still resumes it, after newer ones.
    versions.insert(r.clone());
    assert!(versions.resume(&stored).is_ok());
}

#[test]
fn a_stored_value_that_does_not_fit_is_refused_not_guessed() {
    let r = rules(HOLD);
    let mut stored = store(&r, &suspended(&r));
    let mut versions = Versions::new();
    versions.insert(r.clone());
    stored.locals[2] = steward::engine::stored::StoredValue::Decimal("12,5".into());
    let reason = versions.resume(&stored).err().unwrap().to_string();
    assert!(reason.contains("not a decimal"), "{reason}");
}
