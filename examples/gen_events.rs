//! Writes N event envelopes (JSONL) for the example rules to stdout, one
//! minute apart: bookings, cancellations, price recommendations and work
//! orders, deterministic. Used by `scripts/b3.sh`.
//!
//! Run: `cargo run --release --example gen_events -- 1000000 > events.jsonl`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::io::Write;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap();
    for i in 0..n {
        let at = (start + chrono::Duration::minutes(i as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let check_in = (start
            + chrono::Duration::minutes(i as i64)
            + chrono::Duration::days(3 + (i % 20) as i64))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let line = match i % 10 {
            0..=5 => format!(
                r#"{{"id":"e{i}","tenant":"acme","type":"reservation.created","occurred_at":"{at}","key":"res_{i}","payload":{{"id":"res_{i}","listing_id":"l{}","guest":{{"email":"guest{}@example.com","first_name":"Ana","country":"US","vip":{}}},"risk":0.{},"nights":{},"total":"{}.50","channel":"{}","check_in":"{check_in}","check_out":"{check_in}"}}}}"#,
                i % 500,
                i % 5000,
                i % 7 == 0,
                i % 10,
                1 + i % 6,
                100 + i % 900,
                ["airbnb", "vrbo", "direct"][(i % 3) as usize]
            ),
            6 => format!(
                r#"{{"id":"e{i}","tenant":"acme","type":"reservation.cancelled","occurred_at":"{at}","payload":{{"id":"res_{}"}}}}"#,
                i - 6
            ),
            7 => format!(
                r#"{{"id":"e{i}","tenant":"acme","type":"pricing.recommended","occurred_at":"{at}","payload":{{"listing_id":"l{}","current":"100.00","recommended":"{}.00"}}}}"#,
                i % 500,
                95 + i % 20
            ),
            8 => format!(
                r#"{{"id":"e{i}","tenant":"acme","type":"work_order.created","occurred_at":"{at}","payload":{{"id":"w{i}","listing_id":"l{}","description":"{}"}}}}"#,
                i % 500,
                ["Kitchen leak", "Broken lamp", "No heat"][(i % 3) as usize]
            ),
            _ => format!(
                r#"{{"id":"e{i}","tenant":"acme","type":"work_order.resolved","occurred_at":"{at}","payload":{{"id":"w{}"}}}}"#,
                i - 1
            ),
        };
        writeln!(out, "{line}").unwrap();
    }
}
