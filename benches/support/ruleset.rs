//! The B1 event's declarations, and rules compiled against them, for the
//! engine benchmarks (benches/engine.rs, benches/peers).

use std::sync::Arc;

use steward::check::{analyze, NoFiles};
use steward::engine::{compile, Ruleset};

/// The B1 event (BENCHMARKS.md).
pub const EVENT: &str = r#"{"type":"reservation.created","tenant":"t1","risk":0.31,"nights":3,"total":412.5,"guest":{"email":"a@b.com","country":"US","vip":false,"first_name":"Ana"},"channel":"airbnb","check_in":"2026-12-01"}"#;

/// Its declaration.
pub const DECLS: &str = r#"
type Guest { email: string  country: string  vip: bool  first_name: string }
event reservation.created { risk: float  nights: int  total: float  guest: Guest  channel: string  check_in: date }
"#;

/// `rules`, checked and compiled with [`DECLS`]; panics on an error.
pub fn ruleset(rules: &str) -> Arc<Ruleset> {
    let files = vec![
        ("decls.stw".to_string(), DECLS.to_string()),
        ("rules.stw".to_string(), rules.to_string()),
    ];
    let analysis = analyze(&files, &NoFiles);
    assert!(!analysis.has_errors(), "{:?}", analysis.diagnostics);
    Arc::new(compile(&analysis).unwrap_or_else(|_| panic!("compiles")))
}
