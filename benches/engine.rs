//! B2 (many rules: per-event cost for N = 10, 1,000, 10,000). See
//! ../shared/BENCHMARKS.md and docs/performance.md. B1, one condition against
//! the peers, is in `benches/peers/`, a crate of its own.
//!
//! Run: `cargo bench --bench engine`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use steward::engine::{Collect, Engine, MemoryStore};

#[path = "support/ruleset.rs"]
mod support;
use support::{ruleset, EVENT};

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
                    engine.handle(event, &mut sink).expect("within the horizon");
                    sink.actions.clear();
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, b2);
criterion_main!(benches);
