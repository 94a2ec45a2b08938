//! B1: one condition, one event. Steward side by side with the native-struct
//! limit and the engines people would embed instead (Rhai, zen-expression,
//! cel-interpreter), each used the way its documentation recommends: compile
//! once, evaluate many. Two figures per engine and condition: `eval` on an
//! already converted event, and `json`, from JSON text to the decision with
//! the engine's own conversion. See ../../shared/BENCHMARKS.md and
//! docs/performance.md.
//!
//! Run: `cargo bench --manifest-path benches/peers/Cargo.toml`
//! Table: `python3 benches/peers/table.py` (after a run)

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use serde::Deserialize;
use steward::engine::decode::decode_payload;
use steward::engine::eval::Frame;
use steward::engine::program::Rule;
use steward::engine::value::Record;
use steward::engine::Ruleset;

#[path = "../../support/ruleset.rs"]
mod support;
use support::{ruleset, EVENT};

/// A condition as each engine writes it.
struct Condition {
    name: &'static str,
    steward: &'static str,
    rhai: &'static str,
    zen: &'static str,
    cel: &'static str,
}

const CONDITIONS: [Condition; 4] = [
    Condition {
        name: "C1",
        steward: "risk < 0.5",
        rhai: "risk < 0.5",
        zen: "risk < 0.5",
        cel: "risk < 0.5",
    },
    Condition {
        name: "C2",
        steward: r#"risk < 0.5 and nights >= 2 and guest.country == "US""#,
        rhai: r#"risk < 0.5 && nights >= 2 && guest.country == "US""#,
        zen: r#"risk < 0.5 and nights >= 2 and guest.country == "US""#,
        cel: r#"risk < 0.5 && nights >= 2 && guest.country == "US""#,
    },
    Condition {
        name: "C3",
        steward: r#"(channel == "airbnb" or channel == "vrbo") and total > 300.0 and not guest.vip"#,
        rhai: r#"(channel == "airbnb" || channel == "vrbo") && total > 300.0 && !guest.vip"#,
        zen: r#"(channel == "airbnb" or channel == "vrbo") and total > 300.0 and not guest.vip"#,
        cel: r#"(channel == "airbnb" || channel == "vrbo") && total > 300.0 && !guest.vip"#,
    },
    Condition {
        name: "C4",
        steward: r#"guest.email ends_with "@b.com" and guest.country in ["US", "CA", "MX"]"#,
        rhai: r#"guest.email.ends_with("@b.com") && guest.country in ["US", "CA", "MX"]"#,
        zen: r#"endsWith(guest.email, "@b.com") and guest.country in ["US", "CA", "MX"]"#,
        cel: r#"guest.email.endsWith("@b.com") && guest.country in ["US", "CA", "MX"]"#,
    },
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

/// The limit: the condition as a Rust closure over a plain struct.
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

fn decide(rule: &Rule, frame: &Frame) -> bool {
    (rule.test)(frame).unwrap_or(false)
}

/// What a rule's conditions read: the payload, no envelope, no locals.
fn frame_of<'a>(payload: &'a Arc<Record>, empty: &'a Arc<Record>, rules: &'a Ruleset) -> Frame<'a> {
    Frame {
        event: payload,
        envelope: empty,
        locals: &[],
        recalled: &[],
        now: Default::default(),
        lib: &rules.lib,
    }
}

fn steward(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, c: &Condition) {
    let rules = ruleset(&format!(
        "rule r when reservation.created if {} then log \"x\" end",
        c.steward
    ));
    let id = *rules.shapes().events.get("reservation.created").unwrap();
    let payload = decode_payload(rules.shapes(), id, EVENT, false).unwrap();
    let empty = Arc::new(Record {
        shape: 0,
        slots: Box::new([]),
    });
    let rule = &rules.rules[0];
    let frame = frame_of(&payload, &empty, &rules);
    assert!(decide(rule, &frame));
    group.bench_function(format!("{} steward eval", c.name), |b| {
        b.iter(|| decide(rule, black_box(&frame)))
    });
    group.bench_function(format!("{} steward json", c.name), |b| {
        b.iter(|| {
            let payload = decode_payload(rules.shapes(), id, black_box(EVENT), false).unwrap();
            decide(rule, &frame_of(&payload, &empty, &rules))
        })
    });
}

fn native_struct(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, c: &Condition) {
    let f = native(c.name);
    let ev: Native = serde_json::from_str(EVENT).unwrap();
    assert!(f(&ev));
    group.bench_function(format!("{} native eval", c.name), |b| {
        b.iter(|| f(black_box(&ev)))
    });
    group.bench_function(format!("{} native json", c.name), |b| {
        b.iter(|| f(&serde_json::from_str::<Native>(black_box(EVENT)).unwrap()))
    });
}

/// Rhai: `compile_expression` once; the event's fields as scope variables,
/// from `Engine::parse_json`.
fn rhai(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, c: &Condition) {
    let engine = rhai::Engine::new();
    let ast = engine.compile_expression(c.rhai).unwrap();
    let map = engine.parse_json(EVENT, true).unwrap();
    let mut scope = rhai::Scope::new();
    for (k, v) in map.iter() {
        scope.push_dynamic(k.as_str(), v.clone());
    }
    assert!(engine
        .eval_ast_with_scope::<bool>(&mut scope, &ast)
        .unwrap());
    group.bench_function(format!("{} rhai eval", c.name), |b| {
        b.iter(|| {
            engine
                .eval_ast_with_scope::<bool>(black_box(&mut scope), &ast)
                .unwrap()
        })
    });
    group.bench_function(format!("{} rhai json", c.name), |b| {
        b.iter(|| {
            let map = engine.parse_json(black_box(EVENT), true).unwrap();
            let mut scope = rhai::Scope::new();
            for (k, v) in map {
                scope.push_dynamic(k.as_str(), v);
            }
            engine
                .eval_ast_with_scope::<bool>(&mut scope, &ast)
                .unwrap()
        })
    });
}

/// zen-expression: `compile_expression` once, one VM reused; the event as a
/// `Variable` deserialized straight from the text.
fn zen(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, c: &Condition) {
    use zen_expression::vm::VM;
    use zen_expression::Variable;
    let expr = zen_expression::compile_expression(c.zen).unwrap();
    let mut vm = VM::new();
    let input: Variable = serde_json::from_str(EVENT).unwrap();
    assert_eq!(
        expr.evaluate_with(input.clone(), &mut vm).unwrap(),
        Variable::Bool(true)
    );
    group.bench_function(format!("{} zen eval", c.name), |b| {
        b.iter(|| {
            expr.evaluate_with(black_box(&input).clone(), &mut vm)
                .unwrap()
        })
    });
    group.bench_function(format!("{} zen json", c.name), |b| {
        b.iter(|| {
            let input: Variable = serde_json::from_str(black_box(EVENT)).unwrap();
            expr.evaluate_with(input, &mut vm).unwrap()
        })
    });
}

/// cel-interpreter: `Program::compile` once; the event's fields as context
/// variables, converted from `serde_json::Value`.
fn cel(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, c: &Condition) {
    use cel_interpreter::{Context, Program, Value};
    let program = Program::compile(c.cel).unwrap();
    let context = |text: &str| {
        let mut context = Context::default();
        let serde_json::Value::Object(fields) = serde_json::from_str(text).unwrap() else {
            unreachable!("the event is an object")
        };
        for (k, v) in fields {
            context.add_variable(k, v).unwrap();
        }
        context
    };
    let ready = context(EVENT);
    assert_eq!(program.execute(&ready).unwrap(), Value::Bool(true));
    group.bench_function(format!("{} cel eval", c.name), |b| {
        b.iter(|| program.execute(black_box(&ready)).unwrap())
    });
    group.bench_function(format!("{} cel json", c.name), |b| {
        b.iter(|| program.execute(&context(black_box(EVENT))).unwrap())
    });
}

fn b1(crit: &mut Criterion) {
    let mut group = crit.benchmark_group("B1");
    for c in &CONDITIONS {
        steward(&mut group, c);
        native_struct(&mut group, c);
        rhai(&mut group, c);
        zen(&mut group, c);
        cel(&mut group, c);
    }
    group.finish();
}

criterion_group!(benches, b1);
criterion_main!(benches);
