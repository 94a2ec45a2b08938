//! JSONL lines: decode each against the example rules' schemas and run the
//! engine over whatever decodes. No line may panic the decoder or the engine.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use steward::check::analyze;
use steward::engine::{compile, decode_event, Collect, Engine, MemoryStore, Ruleset};

static RULES: LazyLock<Arc<Ruleset>> = LazyLock::new(|| {
    let loaded = steward::files::read_all(&[concat!(env!("CARGO_MANIFEST_DIR"), "/../rules").into()])
        .expect("the example rules");
    let analysis = analyze(&loaded.sources, &loaded.host());
    Arc::new(compile(&analysis).expect("the example rules compile"))
});

fuzz_target!(|data: &[u8]| {
    let rules = RULES.clone();
    let mut engine = Engine::new(rules.clone(), MemoryStore::new());
    engine.limits.max_ticks = 1_000;
    let mut sink = Collect::with_limit(10_000);
    for line in data.split(|&b| b == b'\n') {
        let Ok(text) = std::str::from_utf8(line) else {
            continue;
        };
        if let Ok(event) = decode_event(rules.shapes(), text.trim()) {
            let _ = engine.handle(event, &mut sink);
        }
    }
    if let Some(later) = engine
        .now()
        .and_then(|now| now.checked_add_signed(chrono::Duration::days(30)))
    {
        let _ = engine.advance_to(later, &mut sink);
    }
});
