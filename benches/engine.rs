//! B1 (one condition, one event: Steward against Rhai and the native-struct
//! limit, eval-only and JSON text to decision) and B2 (many rules: per-event
//! cost for N = 10, 1,000, 10,000). See ../shared/BENCHMARKS.md and
//! docs/performance.md. Peers that are not Steward dependencies
//! (zen-expression, cel) are in `benches/peers/`.
//!
//! Run: `cargo bench --bench engine`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use serde::Deserialize;
use steward::check::{analyze, NoFiles};
use steward::engine::compile::Rule;
use steward::engine::decode::decode_payload;
use steward::engine::eval::Frame;
use steward::engine::value::Record;
use steward::engine::{compile, Collect, Engine, MemoryStore, Ruleset};

const EVENT: &str = r#"{"type":"reservation.created","tenant":"t1","risk":0.31,"nights":3,"total":412.5,"guest":{"email":"a@b.com","country":"US","vip":false,"first_name":"Ana"},"channel":"airbnb","check_in":"2026-12-01"}"#;

const DECLS: &str = r#"
type Guest { email: string  country: string  vip: bool  first_name: string }
event reservation.created { risk: float  nights: int  total: float  guest: Guest  channel: string  check_in: date }
"#;

const CONDITIONS: [(&str, &str, &str); 4] = [
    ("C1", "risk < 0.5", "risk < 0.5"),
    (
        "C2",
        r#"risk < 0.5 and nights >= 2 and guest.country == "US""#,
        r#"risk < 0.5 && nights >= 2 && guest.country == "US""#,
    ),
    (
        "C3",
        r#"(channel == "airbnb" or channel == "vrbo") and total > 300.0 and not guest.vip"#,
        r#"(channel == "airbnb" || channel == "vrbo") && total > 300.0 && !guest.vip"#,
    ),
    (
        "C4",
        r#"guest.email ends_with "@b.com" and guest.country in ["US", "CA", "MX"]"#,
        r#"guest.email.ends_with("@b.com") && guest.country in ["US", "CA", "MX"]"#,
    ),
];

#[derive(Deserialize)]
struct Guest {
    email: String,
    country: String,
    vip: bool,
    #[allow(dead_code)]
    first_name: String,
}

#[derive(Deserialize)]
struct Native {
    risk: f64,
    nights: i64,
    total: f64,
    guest: Guest,
    channel: String,
    #[allow(dead_code)]
    check_in: String,
}

fn native(which: &str) -> fn(&Native) -> bool {
    match which {
        "C1" => |e| e.risk < 0.5,
        "C2" => |e| e.risk < 0.5 && e.nights >= 2 && e.guest.country == "US",
        "C3" => {
            |e| (e.channel == "airbnb" || e.channel == "vrbo") && e.total > 300.0 && !e.guest.vip
        }
        _ => |e| {
            e.guest.email.ends_with("@b.com")
                && ["US", "CA", "MX"].contains(&e.guest.country.as_str())
        },
    }
}

fn ruleset(rules: &str) -> Arc<Ruleset> {
    let files = vec![
        ("decls.stw".to_string(), DECLS.to_string()),
        ("rules.stw".to_string(), rules.to_string()),
    ];
    let analysis = analyze(&files, &NoFiles);
    assert!(!analysis.has_errors(), "{:?}", analysis.diagnostics);
    Arc::new(compile(&analysis).unwrap_or_else(|_| panic!("compiles")))
}

fn decide(rule: &Rule, frame: &Frame) -> bool {
    rule.conditions
        .iter()
        .all(|c| (c.cond)(frame).unwrap_or(false))
}

fn b1(c: &mut Criterion) {
    let mut group = c.benchmark_group("B1");
    let record = 0;
    let rhai = rhai::Engine::new();
    for (name, cond, rhai_cond) in CONDITIONS {
        let rules = ruleset(&format!(
            "rule r when reservation.created if {cond} then log \"x\" end"
        ));
        let id = *rules.shapes().events.get("reservation.created").unwrap();
        let payload = decode_payload(rules.shapes(), id, EVENT, false).unwrap();
        let empty = Arc::new(Record {
            shape: record,
            slots: Box::new([]),
        });
        let rule = &rules.rules[0];
        let frame = Frame {
            event: &payload,
            envelope: &empty,
            locals: &[],
            now: Default::default(),
            lib: &rules.lib,
        };
        assert!(decide(rule, &frame));
        group.bench_function(format!("{name} steward eval"), |b| {
            b.iter(|| decide(rule, black_box(&frame)))
        });
        group.bench_function(format!("{name} steward json"), |b| {
            b.iter(|| {
                let payload = decode_payload(rules.shapes(), id, black_box(EVENT), false).unwrap();
                let frame = Frame {
                    event: &payload,
                    envelope: &empty,
                    locals: &[],
                    now: Default::default(),
                    lib: &rules.lib,
                };
                decide(rule, &frame)
            })
        });

        let f = native(name);
        let ev: Native = serde_json::from_str(EVENT).unwrap();
        assert!(f(&ev));
        group.bench_function(format!("{name} native eval"), |b| {
            b.iter(|| f(black_box(&ev)))
        });
        group.bench_function(format!("{name} native json"), |b| {
            b.iter(|| f(&serde_json::from_str::<Native>(black_box(EVENT)).unwrap()))
        });

        let ast = rhai.compile_expression(rhai_cond).unwrap();
        let map = rhai.parse_json(EVENT, true).unwrap();
        let mut scope = rhai::Scope::new();
        for (k, v) in map.iter() {
            scope.push_dynamic(k.as_str(), v.clone());
        }
        assert!(rhai.eval_ast_with_scope::<bool>(&mut scope, &ast).unwrap());
        group.bench_function(format!("{name} rhai eval"), |b| {
            b.iter(|| rhai.eval_ast_with_scope::<bool>(&mut scope, &ast).unwrap())
        });
        group.bench_function(format!("{name} rhai json"), |b| {
            b.iter(|| {
                let map = rhai.parse_json(black_box(EVENT), true).unwrap();
                let mut scope = rhai::Scope::new();
                for (k, v) in map {
                    scope.push_dynamic(k.as_str(), v);
                }
                rhai.eval_ast_with_scope::<bool>(&mut scope, &ast).unwrap()
            })
        });
    }
    group.finish();
}

/// N rules over distinct event types, or N rules on one type that differ by
/// an equality test; one event through the whole engine.
fn b2(c: &mut Criterion) {
    let mut group = c.benchmark_group("B2");
    group.sample_size(20);
    for n in [10usize, 1_000, 10_000] {
        let mut by_type = String::new();
        let mut by_value = String::new();
        for i in 0..n {
            by_type.push_str(&format!("event t{i} {{ risk: float }}\nrule r{i} when t{i} if risk < 0.5 then log \"x\" end\n"));
            by_value.push_str(&format!(
                "rule v{i} when reservation.created if channel == \"c{i}\" then log \"x\" end\n"
            ));
        }
        for (shape, rules_text, event_type, payload) in [
            ("types", by_type, "t3", r#"{"risk":0.2}"#.to_string()),
            (
                "equality",
                by_value,
                "reservation.created",
                EVENT.replace("airbnb", "c3"),
            ),
        ] {
            let rules = ruleset(&rules_text);
            let envelope = format!(
                r#"{{"id":"e1","tenant":"t1","type":"{event_type}","occurred_at":"2026-11-20T10:00:00Z","payload":{payload}}}"#
            );
            let mut engine = Engine::new(rules.clone(), MemoryStore::new());
            let mut sink = Collect::default();
            let mut i = 0u64;
            group.bench_function(format!("{shape} N={n}"), |b| {
                b.iter(|| {
                    i += 1;
                    let mut event =
                        steward::engine::decode_event(rules.shapes(), &envelope).unwrap();
                    event.id = Arc::from(i.to_string());
                    engine.handle(event, &mut sink);
                    sink.actions.clear();
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, b1, b2);
criterion_main!(benches);
