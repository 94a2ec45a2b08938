//! The B3 limit: read a JSONL file and parse every line with `serde_json`
//! into a `serde_json::Value`, doing nothing else. Used by `scripts/b3.sh`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::io::BufRead;

fn main() {
    let path = std::env::args().nth(1).expect("a JSONL file");
    let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).unwrap());
    let mut count = 0u64;
    for line in file.lines() {
        let line = line.unwrap();
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        count += u64::from(!v.is_null());
    }
    eprintln!("parsed {count} lines");
}
