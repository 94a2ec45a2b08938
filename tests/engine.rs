//! The engine's contracts: rejected payloads with their path, faults that stay
//! in their rule, runaway emit chains stopped, Rhai sandboxed and typed,
//! duplicate events skipped, and the rule index. (`steward replay` end to end
//! is tested with the command, in cli/tests/replay.rs.)

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
use steward::engine::decode::decode_payload;
use steward::engine::{compile, decode_event, Collect, Engine, MemoryStore, Ruleset};

struct Scripts(&'static [(&'static str, &'static str)]);

impl steward::check::Host for Scripts {
    fn rhai_source(
        &self,
        _file: &str,
        path: &str,
    ) -> Result<String, steward::check::RhaiSourceError> {
        self.0
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, t)| t.to_string())
            .ok_or(steward::check::RhaiSourceError::Missing)
    }
}

const DECLS: &str = r#"
type Guest { email: string  vip: bool  phone: string? }
event booking { id: string  guest: Guest  risk: float  nights: int  total: decimal  channel: "airbnb" | "vrbo" }
event ping { n: int }
"#;

fn rules_with(text: &str, host: &dyn steward::check::Host) -> Arc<Ruleset> {
    let files = vec![
        ("decls.stw".to_string(), DECLS.to_string()),
        ("rules.stw".to_string(), text.to_string()),
    ];
    let analysis = analyze(&files, host);
    let errors: Vec<String> = analysis.errors().map(|d| d.message.clone()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    Arc::new(compile(&analysis).unwrap_or_else(|d| panic!("{d:?}")))
}

fn rules(text: &str) -> Arc<Ruleset> {
    rules_with(text, &NoFiles)
}

fn booking(id: &str, payload: &str) -> String {
    format!(
        r#"{{"id":"{id}","tenant":"t1","type":"booking","occurred_at":"2026-11-20T10:00:00Z","payload":{payload}}}"#
    )
}

const GOOD: &str = r#"{"id":"b1","guest":{"email":"a@b.com","vip":false},"risk":0.2,"nights":3,"total":412.50,"channel":"airbnb"}"#;

fn run(rules: &Arc<Ruleset>, events: &[String]) -> Collect {
    let mut engine = Engine::new(rules.clone(), MemoryStore::new());
    let mut sink = Collect::default();
    for e in events {
        engine
            .handle(decode_event(rules.shapes(), e).unwrap(), &mut sink)
            .unwrap();
    }
    sink
}

#[test]
fn payloads_that_do_not_match_are_rejected_with_the_path() {
    let r = rules("when booking if risk < 0.5 then log \"ok\"");
    let shapes = r.shapes();
    let cases = [
        (
            r#""risk":0.2"#,
            r#""risk":"high""#,
            "payload.risk: expected float, found string",
        ),
        (
            r#""nights":3"#,
            r#""nights":3.5"#,
            "payload.nights: expected int, found 3.5 (written with a fraction or an exponent)",
        ),
        (
            r#""nights":3"#,
            r#""nights":99999999999999999999"#,
            "payload.nights: 100000000000000000000 is too large for an int",
        ),
        (
            r#""risk":0.2"#,
            r#""risk":1e309"#,
            "payload.risk: number out of range",
        ),
        (
            // Unknown fields are skipped unread, numbers out of range included.
            r#""vip":false"#,
            r#""vip":false,"tags":[1e309]"#,
            "",
        ),
        (
            r#""email":"a@b.com","#,
            "",
            "payload.guest.email: required field is missing",
        ),
        (
            r#""airbnb""#,
            r#""expedia""#,
            r#"payload.channel: expected one of "airbnb", "vrbo", found "expedia""#,
        ),
        (
            r#""total":412.50"#,
            r#""total":"12,5""#,
            r#"payload.total: expected decimal, found "12,5""#,
        ),
    ];
    for (from, to, reason) in cases {
        let text = booking("e1", &GOOD.replace(from, to));
        let got = decode_event(shapes, &text).err().map(|e| e.to_string());
        assert_eq!(got.as_deref().unwrap_or(""), reason);
    }
    let err = decode_event(shapes, "{\"id\": 1}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "id: invalid type: integer `1`, expected a string"
    );
    let err = decode_event(shapes, "hello").unwrap_err();
    assert_eq!(
        err.to_string(),
        "envelope: the line is not JSON: expected value"
    );
    let err = decode_event(shapes, "[1, 2]").unwrap_err();
    assert!(err.to_string().contains("expected a JSON object"), "{err}");
    let err = decode_event(shapes, &booking("e1", GOOD).replace("booking", "bookin")).unwrap_err();
    assert_eq!(err.to_string(), "type: no event `bookin` is declared");
}

#[test]
fn decimals_decode_exactly_and_unknown_fields_are_ignored() {
    let r = rules("when booking then log \"{total + 0.1}\"");
    let text = booking(
        "e1",
        &GOOD
            .replace("412.50", "0.2")
            .replace("\"risk\"", "\"extra\":[1,{}],\"risk\""),
    );
    let out = run(&r, &[text]);
    assert_eq!(out.actions[0].args["text"], "0.3");
    let id = *r.shapes().events.get("booking").unwrap();
    assert!(decode_payload(r.shapes(), id, r#"{"id":"x"}"#, true).is_ok());
}

#[test]
fn decimals_keep_the_places_they_were_written_with() {
    let r = rules("when booking then log \"{total}\"");
    for (written, shown) in [
        ("240.00", "240.00"),
        ("412.50", "412.50"),
        ("\"412.50\"", "412.50"),
        ("-0.10", "-0.10"),
        ("1e3", "1000"),
        ("7", "7"),
    ] {
        let text = booking("e1", &GOOD.replace("412.50", written));
        let out = run(&r, &[text]);
        assert_eq!(out.actions[0].args["text"], shown, "{written}");
    }
    let text = booking("e1", &GOOD.replace("412.50", "true"));
    let err = decode_event(r.shapes(), &text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "payload.total: expected decimal, found bool"
    );
}

#[test]
fn a_fault_stays_in_its_rule_and_event() {
    let r = rules(
        "rule divide when booking then log \"{total / (total - total)}\" end\n\
         rule fine when booking then log \"fine\" end",
    );
    let out = run(&r, &[booking("e1", GOOD), booking("e2", GOOD)]);
    assert_eq!(out.errors.len(), 2);
    assert_eq!(out.errors[0].message, "division by zero");
    assert_eq!(&*out.errors[0].rule, "divide");
    assert_eq!(out.actions.len(), 2, "the other rule ran for both events");
}

#[test]
fn a_rule_that_triggers_itself_is_stopped() {
    let r = rules("rule echo when ping then emit ping { n: n + 1 } end");
    let text = r#"{"id":"p","tenant":"t1","type":"ping","occurred_at":"2026-11-20T10:00:00Z","payload":{"n":0}}"#;
    let out = run(&r, &[text.to_string()]);
    assert_eq!(
        out.actions.len(),
        steward::engine::runtime::MAX_CHAIN as usize
    );
    assert_eq!(out.errors.len(), 1);
    assert!(
        out.errors[0].message.contains("chain"),
        "{}",
        out.errors[0].message
    );
}

#[test]
fn a_duplicate_event_is_handled_once() {
    let r = rules("when booking then log \"once\"");
    let out = run(&r, &[booking("e1", GOOD), booking("e1", GOOD)]);
    assert_eq!(out.actions.len(), 1);
    let token = &out.actions[0].key();
    assert!(
        token.len() == 36
            && token.starts_with("stw_")
            && token[4..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    let key = steward::engine::ActionKey {
        tenant: "t1",
        rule: "r",
        version: &r.version,
        event: "e1",
        pos: 1,
    };
    let other_tenant = steward::engine::ActionKey {
        tenant: "t2",
        ..key
    };
    assert_ne!(other_tenant.token(), key.token());
}

/// Rules compiled from one file named `name`.
fn rules_in(name: &str, text: &str) -> Arc<Ruleset> {
    let files = vec![
        ("decls.stw".to_string(), DECLS.to_string()),
        (name.to_string(), text.to_string()),
    ];
    let analysis = analyze(&files, &NoFiles);
    assert!(!analysis.has_errors(), "{:?}", analysis.diagnostics);
    Arc::new(compile(&analysis).unwrap_or_else(|d| panic!("{d:?}")))
}

#[test]
fn versions_and_keys_do_not_change_with_layout_comments_or_file_names() {
    let a = rules_in(
        "rules.stw",
        "rule once when booking then log \"once\" end\n",
    );
    let b = rules_in(
        "renamed/other.stw",
        "# A comment, blank lines and another layout.\n\n\nrule once\n  when booking\n  then\n    log \"once\" # here\nend\n\ntest \"tests do not run in production\"\n  given partial booking { id: \"b\" }\n  expect log\nend\n",
    );
    assert_eq!(a.version, b.version);
    let keys = |r: &Arc<Ruleset>| run(r, &[booking("e1", GOOD)]).actions[0].key();
    assert_eq!(keys(&a), keys(&b));
    let c = rules_in(
        "rules.stw",
        "rule once when booking then log \"twice\" end\n",
    );
    assert_ne!(a.version, c.version, "what runs changed");
}

#[test]
fn step_ids_stay_when_other_statements_are_added() {
    let approval = |r: &Arc<Ruleset>| {
        let out = run(r, &[booking("e1", GOOD)]);
        out.actions
            .iter()
            .find(|a| &*a.action == "approval_requested")
            .map(|a| a.args["approval"].clone())
            .unwrap()
    };
    let a = rules(
        "rule hold when booking then\n  require approval from role owner within 1d do\n    log \"ok\"\n  end\nend",
    );
    let b = rules(
        "rule hold when booking then\n  log \"first\"\n  let n = nights + 1\n  require approval from role owner within 1d do\n    log \"ok, and more\"\n    log \"{n}\"\n  end\nend",
    );
    assert_ne!(a.version, b.version);
    assert_eq!(approval(&a), approval(&b));
}

#[test]
fn rhai_results_of_the_wrong_type_and_runaway_scripts_are_faults() {
    let host = Scripts(&[
        ("wrong.rhai", "42"),
        ("spin.rhai", "let x = 0; loop { x += 1; }"),
        ("band.rhai", "if risk < 0.5 { \"low\" } else { \"high\" }"),
    ]);
    let r = rules_with(
        "fn wrong(risk: float) -> string from rhai \"wrong.rhai\"\n\
         fn spin(risk: float) -> int from rhai \"spin.rhai\"\n\
         fn band(risk: float) -> string from rhai \"band.rhai\"\n\
         rule a when booking then log wrong(risk) end\n\
         rule b when booking then log \"{spin(risk)}\" end\n\
         rule c when booking then log band(risk) end",
        &host,
    );
    let out = run(&r, &[booking("e1", GOOD)]);
    let messages: Vec<&str> = out.errors.iter().map(|e| e.message.as_str()).collect();
    assert!(
        messages[0].contains("`wrong`") && messages[0].contains("declared to return a string"),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("`spin`") && messages[1].contains("operations"),
        "{messages:?}"
    );
    assert_eq!(out.actions.len(), 1);
    assert_eq!(out.actions[0].args["text"], "low");
}

/// What `steward replay` prints is streamed from the runtime values; it must
/// be the JSON an owned `Action` gives, key order included.
#[test]
fn replay_lines_are_the_json_of_the_actions() {
    use steward::engine::{Performed, RuleError, Sink};

    #[derive(Default)]
    struct Both {
        lines: Vec<String>,
        json: Vec<serde_json::Value>,
    }
    impl Sink for Both {
        fn action(&mut self, action: Performed<'_>) {
            let mut line = Vec::new();
            action.write_line(&mut line).unwrap();
            self.lines.push(String::from_utf8(line).unwrap());
            self.json.push(action.to_action().to_json());
        }
        fn error(&mut self, error: RuleError) {
            panic!("{}", error.message)
        }
    }

    let r = rules(
        r#"
event copied { of: Guest  tags: list<string>  ratio: float  when: datetime }
rule copy when booking then
  emit copied { of: guest, tags: ["a", "b\"q"], ratio: risk / 3.0, when: now() }
  log "{guest.email} paid {total} for {nights} nights"
  require approval from role owner within 2d do
    log "approved"
  end
end
"#,
    );
    let mut engine = Engine::new(r.clone(), MemoryStore::new());
    let mut sink = Both::default();
    engine
        .handle(
            decode_event(r.shapes(), &booking("b1", GOOD)).unwrap(),
            &mut sink,
        )
        .unwrap();
    assert_eq!(sink.lines.len(), 3, "{:?}", sink.lines);
    for (line, json) in sink.lines.iter().zip(&sink.json) {
        assert!(line.ends_with('\n'));
        assert_eq!(line.trim_end(), json.to_string());
    }
    assert!(sink.lines[0].contains(r#""of":{"email":"a@b.com","phone":null,"vip":false}"#));
    assert!(
        sink.lines[1].contains("a@b.com paid 412.5"),
        "{}",
        sink.lines[1]
    );
    assert!(
        sink.lines[0].contains(r#""tags":["a","b\"q"]"#),
        "{}",
        sink.lines[0]
    );
}

#[test]
fn non_finite_floats_from_rhai_are_faults_and_rounding_stays_finite() {
    let host = Scripts(&[("nan.rhai", "0.0 / 0.0"), ("inf.rhai", "1.0e308 * 10.0")]);
    let r = rules_with(
        "fn nan(risk: float) -> float from rhai \"nan.rhai\"\n\
         fn inf(risk: float) -> float from rhai \"inf.rhai\"\n\
         rule a when booking then log \"{nan(risk)}\" end\n\
         rule b when booking then log \"{inf(risk)}\" end\n\
         rule c when booking then log \"{round(risk * 1000000000000000000000000000.0 * 1000000000000000000000000000.0, 28)}\" end\n\
         rule d when booking then log \"{-9223372036854775808}\" end",
        &host,
    );
    let out = run(&r, &[booking("e1", GOOD)]);
    let messages: Vec<&str> = out.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages.iter().all(|m| m.contains("not a finite number")),
        "{messages:?}"
    );
    let logged: Vec<&str> = out
        .actions
        .iter()
        .filter_map(|a| a.args["text"].as_str())
        .collect();
    assert_eq!(
        logged,
        [
            format!("2{}", "0".repeat(53)).as_str(),
            "-9223372036854775808"
        ],
        "{logged:?}"
    );
}

#[test]
fn numeric_literals_fit_either_side_of_min_and_max() {
    let r = rules(
        "when booking then log \"{min(0.5, risk)} {min(1, risk)} {max(1.0, total)} {max(total, 1.0)} {min(risk, 0.5)}\"",
    );
    let out = run(&r, &[booking("e1", GOOD)]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.actions[0].args["text"], "0.2 0.2 412.50 412.50 0.2");
}

#[test]
fn a_rhai_script_that_defines_the_function_has_it_called() {
    let host = Scripts(&[
        (
            "band.rhai",
            "fn helper(x) { x * 2.0 }\nfn band(risk) { if helper(risk) < 0.5 { \"low\" } else { \"high\" } }",
        ),
        ("wrong.rhai", "fn wrong(a, b) { a + b }"),
    ]);
    let r = rules_with(
        "fn band(risk: float) -> string from rhai \"band.rhai\"\n\
         rule c when booking then log band(risk) end",
        &host,
    );
    let out = run(&r, &[booking("e1", GOOD)]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.actions[0].args["text"], "low");
    let files = vec![
        ("decls.stw".to_string(), DECLS.to_string()),
        (
            "rules.stw".to_string(),
            "fn wrong(risk: float) -> float from rhai \"wrong.rhai\"\n".to_string(),
        ),
    ];
    let analysis = analyze(&files, &host);
    let errors: Vec<String> = analysis.errors().map(|d| d.message.clone()).collect();
    assert_eq!(
        errors,
        ["the script's `fn wrong` takes 2 parameter(s), but `wrong` is declared with 1"]
    );
}

#[test]
fn of_many_rules_on_one_field_only_the_matching_one_fires() {
    let mut text = String::new();
    for i in 0..200 {
        text.push_str(&format!(
            "rule r{i} when booking if guest.email == \"c{i}\" then log \"{i}\" end\n"
        ));
    }
    let r = rules(&text);
    let got = run(&r, &[booking("e1", &GOOD.replace("a@b.com", "c7"))]);
    assert_eq!(got.actions.len(), 1);
    assert_eq!(got.actions[0].args["text"], "7");
}
