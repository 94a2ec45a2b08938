//! Hostile input at the engine: data from events that overflows time and
//! duration arithmetic, runs time backwards, fans out without end or lies
//! about its year. Each ends as a rule error (or a refused event) while the
//! engine goes on; none panics.

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
use steward::engine::{compile, decode_event, Collect, Engine, MemoryStore, Refused, Ruleset};

const DECLS: &str = r#"
event hold { id: string  span: duration  n: int }
event ping { n: int }
event tick { n: int }
"#;

fn rules(text: &str) -> Arc<Ruleset> {
    let files = vec![
        ("decls.stw".to_string(), DECLS.to_string()),
        ("rules.stw".to_string(), text.to_string()),
    ];
    let analysis = analyze(&files, &NoFiles);
    let errors: Vec<String> = analysis.errors().map(|d| d.message.clone()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    Arc::new(compile(&analysis).unwrap_or_else(|d| panic!("{d:?}")))
}

fn hold(id: &str, at: &str, span: &str) -> String {
    format!(
        r#"{{"id":"{id}","tenant":"t1","type":"hold","occurred_at":"{at}","payload":{{"id":"{id}","span":"{span}","n":1}}}}"#
    )
}

fn run(rules: &Arc<Ruleset>, events: &[String]) -> (Engine<MemoryStore>, Collect) {
    let mut engine = Engine::new(rules.clone(), MemoryStore::new());
    let mut sink = Collect::default();
    for e in events {
        engine
            .handle(decode_event(rules.shapes(), e).unwrap(), &mut sink)
            .unwrap();
    }
    (engine, sink)
}

fn messages(sink: &Collect) -> Vec<String> {
    sink.errors.iter().map(|e| e.message.clone()).collect()
}

#[test]
fn an_approval_window_past_the_calendar_is_a_rule_error() {
    let r = rules(
        "rule held when hold then\n  require approval from role owner within span do\n    log \"ok\"\n  end\nend\n\
         rule other when hold then log \"still runs\" end",
    );
    let (_, sink) = run(
        &r,
        &[
            hold("h1", "2026-11-20T10:00:00Z", "100000000d"),
            hold("h2", "2026-11-20T10:00:00Z", "-1h"),
        ],
    );
    let errors = messages(&sink);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("past the end of the calendar"),
        "{errors:?}"
    );
    assert!(errors[1].contains("positive duration"), "{errors:?}");
    assert_eq!(sink.actions.len(), 2, "the other rule ran for both");
}

#[test]
fn a_throttle_window_from_data_is_checked() {
    let r = rules("rule limited when hold throttle 1 per span then log \"x\" end");
    let (_, sink) = run(
        &r,
        &[
            hold("h1", "2026-11-20T10:00:00Z", "100000000d"),
            hold("h2", "2026-11-20T10:00:01Z", "100000000d"),
            hold("h3", "2026-11-20T10:00:02Z", "-1h"),
        ],
    );
    // The huge window holds the second event back; the negative one is an error.
    assert_eq!(sink.actions.len(), 1);
    let errors = messages(&sink);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("positive duration"), "{errors:?}");
}

#[test]
fn time_arithmetic_that_overflows_is_a_rule_error() {
    let r = rules(
        "rule far when hold then log \"{now() + (0ms - 9223372036854775807ms - 1ms)}\" end\n\
         rule later when hold then\n  after span do\n    log \"late\"\n  end\nend",
    );
    let (_, sink) = run(&r, &[hold("h1", "2026-11-20T10:00:00Z", "100000000000d")]);
    let errors = messages(&sink);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.iter().all(|e| e.contains("overflow")
            || e.contains("out of range")
            || e.contains("past the end of the calendar")),
        "{errors:?}"
    );
}

#[test]
fn emit_fan_out_is_bounded_per_input_event() {
    let r = rules(
        "rule fan when ping then\n  emit ping { n: n + 1 }\n  emit ping { n: n + 1 }\n  emit ping { n: n + 1 }\n  emit ping { n: n + 1 }\nend",
    );
    let text = r#"{"id":"p","tenant":"t1","type":"ping","occurred_at":"2026-11-20T10:00:00Z","payload":{"n":0}}"#;
    let (engine, sink) = run(&r, &[text.to_string()]);
    let limit = steward::engine::Limits::default().max_caused as u64;
    assert_eq!(engine.stats.emitted, limit);
    assert!(
        messages(&sink)
            .iter()
            .any(|m| m.contains("at most") && m.contains("`p` reached that")),
        "{:?}",
        messages(&sink).first()
    );
}

#[test]
fn an_event_far_ahead_of_the_clock_is_refused_and_the_clock_stays() {
    let r = rules(
        "rule each every 1m then log \"tick\" end\nrule seen when hold then log \"{id}\" end",
    );
    let mut engine = Engine::new(r.clone(), MemoryStore::new());
    let mut sink = Collect::default();
    let first = decode_event(r.shapes(), &hold("h1", "2026-11-20T10:00:00Z", "1h")).unwrap();
    engine.handle(first, &mut sink).unwrap();
    let far = decode_event(r.shapes(), &hold("h2", "9999-01-01T00:00:00Z", "1h")).unwrap();
    let refused = engine.handle(far, &mut sink).unwrap_err();
    assert!(matches!(refused, Refused::BeyondHorizon { .. }));
    assert!(refused.to_string().contains("ahead of the engine's clock"));
    let next = decode_event(r.shapes(), &hold("h3", "2026-11-20T10:05:00Z", "1h")).unwrap();
    engine.handle(next, &mut sink).unwrap();
    assert_eq!(
        sink.actions
            .iter()
            .filter(|a| a.rule.as_ref() == "seen")
            .count(),
        2
    );
    // The tick at :05 comes after the event at :05: events go first.
    assert_eq!(engine.stats.ticks, 4, "ticks at :01 to :04");
}

#[test]
fn ticks_in_one_advance_are_bounded_and_reported() {
    let r = rules(
        "rule each every 1m then log \"tick\" end\nrule seen when hold then log \"{id}\" end",
    );
    let mut engine = Engine::new(r.clone(), MemoryStore::new());
    engine.limits.max_ticks = 100;
    let mut sink = Collect::default();
    for (id, at) in [
        ("h1", "2026-11-20T10:00:00Z"),
        ("h2", "2026-11-21T10:00:00Z"),
    ] {
        let e = decode_event(r.shapes(), &hold(id, at, "1h")).unwrap();
        engine.handle(e, &mut sink).unwrap();
    }
    assert_eq!(engine.stats.ticks, 100);
    assert_eq!(engine.stats.ticks_skipped, 24 * 60 - 100);
    let errors = messages(&sink);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("skipped"), "{errors:?}");
    assert_eq!(
        sink.actions
            .iter()
            .filter(|a| a.rule.as_ref() == "seen")
            .count(),
        2,
        "the event after the skipped ticks is handled"
    );
}

#[test]
fn a_cron_schedule_past_2100_says_it_ends_once() {
    let r = rules(
        "rule yearly every \"0 9 1 1 *\" then log \"new year\" end\nrule seen when hold then log \"{id}\" end",
    );
    let mut engine = Engine::new(r.clone(), MemoryStore::new());
    let mut sink = Collect::default();
    for (id, at) in [
        ("h1", "2100-06-01T10:00:00Z"),
        ("h2", "2101-02-01T10:00:00Z"),
        ("h3", "2101-12-01T10:00:00Z"),
    ] {
        let e = decode_event(r.shapes(), &hold(id, at, "1h")).unwrap();
        engine.handle(e, &mut sink).unwrap();
    }
    let errors = messages(&sink);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("year 2100"), "{errors:?}");
    assert_eq!(sink.actions.len(), 3, "every event is still handled");
}

#[test]
fn texts_and_lists_built_by_rules_are_bounded() {
    let r = rules(
        "rule grow when hold then log replace(id, \"a\", id) end\n         rule pieces when hold then log \"{len(split(id, \"\"))}\" end\n\
         rule fine when hold then log \"{len(replace(id, \"a\", \"bb\"))}\" end",
    );
    let (_, sink) = run(
        &r,
        &[hold(&"a".repeat(200_000), "2026-11-20T10:00:00Z", "1h")],
    );
    let errors = messages(&sink);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("replace: the text would be"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("split: the list would have 200000 items"),
        "{errors:?}"
    );
    assert_eq!(sink.actions.len(), 1);
    assert_eq!(sink.actions[0].args["text"], "400000");
}

#[test]
fn a_payload_field_given_twice_is_rejected_with_its_path() {
    let r = rules("rule seen when hold then log \"{id}\" end");
    let text = r#"{"id":"h1","tenant":"t1","type":"hold","occurred_at":"2026-11-20T10:00:00Z","payload":{"id":"h1","span":"1h","n":1,"n":2}}"#;
    let error = decode_event(r.shapes(), text).unwrap_err().to_string();
    assert!(
        error.contains("payload.n") && error.contains("twice"),
        "{error}"
    );
}

mod jsonl {
    //! The short, default-suite run of the `events` fuzz target: mutated
    //! envelopes through the decoder and the engine on the example rules.
    use super::*;
    use proptest::prelude::*;

    fn example_rules() -> Arc<Ruleset> {
        static RULES: std::sync::OnceLock<Arc<Ruleset>> = std::sync::OnceLock::new();
        RULES
            .get_or_init(|| {
                let loaded = steward::files::read_all(&["rules".into()]).unwrap();
                let analysis = analyze(&loaded.sources, &loaded.host());
                Arc::new(compile(&analysis).unwrap())
            })
            .clone()
    }

    fn seeds() -> Vec<String> {
        std::fs::read_to_string("examples/events.jsonl")
            .unwrap()
            .lines()
            .take(200)
            .map(String::from)
            .collect()
    }

    /// A seed line with a byte range replaced by a fragment of JSON.
    fn mutated() -> impl Strategy<Value = String> {
        let fragments = prop::sample::select(vec![
            "",
            "\"",
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "null",
            "1e309",
            "-9223372036854775808",
            "\"9999-12-31T23:59:59Z\"",
            "\"100000000d\"",
            "\"-1h\"",
            "0.1",
            "\"\\u0000\"",
            "\"payload\":{}",
            "\"risk\":",
            "\"total\":412.50",
            "\"x\":1,\"x\":2",
            "true",
        ]);
        (
            prop::sample::select(seeds()),
            any::<prop::sample::Index>(),
            0..8usize,
            fragments,
        )
            .prop_map(|(line, at, len, fragment)| {
                let mut start = at.index(line.len() + 1);
                while !line.is_char_boundary(start) {
                    start -= 1;
                }
                let mut end = (start + len).min(line.len());
                while !line.is_char_boundary(end) {
                    end += 1;
                }
                format!("{}{fragment}{}", &line[..start], &line[end..])
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn mutated_envelopes_never_panic_the_decoder_or_the_engine(
            lines in prop::collection::vec(mutated(), 1..12)
        ) {
            let rules = example_rules();
            let mut engine = Engine::new(rules.clone(), MemoryStore::new());
            engine.limits.max_ticks = 1_000;
            let mut sink = Collect::with_limit(10_000);
            for line in &lines {
                if let Ok(event) = decode_event(rules.shapes(), line) {
                    let _ = engine.handle(event, &mut sink);
                }
            }
        }
    }
}
