//! B5: parse + check throughput in MB/s of rule text, on a generated ~5 MB
//! file of realistic rules (see docs/performance.md).
//!
//! Run: `cargo bench --bench check`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use steward::check::{analyze, NoFiles};
use steward::syntax::parse;

#[path = "support/rules.rs"]
mod generated;

fn bench(c: &mut Criterion) {
    let declarations = std::fs::read_to_string("rules/declarations.stw").unwrap();
    let text = generated::bytes(5 * 1024 * 1024);
    let files = vec![
        ("declarations.stw".to_string(), declarations),
        ("generated.stw".to_string(), text.clone()),
    ];
    assert!(
        !analyze(&files, &NoFiles).has_errors(),
        "the generated rules must check"
    );

    let mut group = c.benchmark_group("B5");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("parse 5 MB", |b| b.iter(|| parse(0, &text)));
    group.bench_function("parse + check 5 MB", |b| {
        b.iter(|| analyze(&files, &NoFiles))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
