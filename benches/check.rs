//! B5: parse + check throughput in MB/s of rule text, on a generated ~5 MB
//! file of realistic rules (see docs/performance.md).
//!
//! Run: `cargo bench --bench check`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use steward::check::{analyze, NoFiles};
use steward::syntax::parse;

/// About `bytes` of rules over the example declarations, each rule distinct.
fn generate(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 1024);
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(&format!(
            "## Rule number {i}.\nrule r{i} \"Generated rule {i}\"\n  when reservation.created\n  throttle 1 per 24h by guest.email\n  if risk < 0.{d} and nights >= {n} and guest.country in [\"US\", \"CA\"] and channel != \"vrbo\"\n  then\n    let note = \"Booking {{id}} for {{nights}} nights\"\n    send welcome\n    if total > {n}00.0 then\n      notify role owner \"{{note}}: {{guest.first_name}}\"\n    end\n    at check_in - 2d unless reservation.cancelled on id do\n      create task \"Prepare listing {{listing_id}}\" for role cleaner due check_in - 1d\n    end\nend\n\nwhen reservation.created if guest.vip and total >= {n}.5 then log \"vip {{id}} {i}\"\n\n",
            d = i % 9 + 1,
            n = i % 7 + 1,
        ));
        i += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let declarations = std::fs::read_to_string("rules/declarations.stw").unwrap();
    let text = generate(5 * 1024 * 1024);
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
