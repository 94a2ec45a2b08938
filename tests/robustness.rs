//! Garbage in, diagnostics out: the parser, checker and formatter never
//! panic and never hang on arbitrary input.

use proptest::prelude::*;
use steward::check::{analyze, NoFiles};
use steward::syntax::{format::format_source, parse};

/// Tokens of the language, so generated text gets deep into the grammar.
const TOKENS: &[&str] = &[
    "when",
    "rule",
    "event",
    "type",
    "message",
    "action",
    "fn",
    "if",
    "then",
    "else",
    "end",
    "do",
    "let",
    "send",
    "notify",
    "role",
    "create",
    "task",
    "for",
    "due",
    "emit",
    "log",
    "after",
    "at",
    "unless",
    "on",
    "require",
    "approval",
    "from",
    "within",
    "every",
    "in",
    "throttle",
    "per",
    "by",
    "and",
    "or",
    "not",
    "??",
    "==",
    "!=",
    "<",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ".",
    "?",
    "|",
    "reservation.created",
    "risk",
    "nights",
    "guest",
    "email",
    "welcome",
    "0.5",
    "2",
    "2d",
    "30m",
    "2026-12-01",
    "\"text {risk}\"",
    "\"a\"",
    "r\"x\"",
    "none",
    "true",
    "#c\n",
    "\n",
    " ",
    "->",
    "=",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|t| t.join(" "))
}

fn exercise(text: &str) {
    let (_tree, _diags) = parse(0, text);
    let declarations = std::fs::read_to_string("rules/declarations.stw").unwrap();
    let analysis = analyze(
        &[
            ("decl.stw".into(), declarations),
            ("input.stw".into(), text.to_string()),
        ],
        &NoFiles,
    );
    // Every diagnostic points inside its file.
    for d in &analysis.diagnostics {
        assert!(d.primary.span.end as usize <= analysis.sources.text(d.primary.file).len());
    }
    if let Ok(formatted) = format_source(text) {
        assert_eq!(
            format_source(&formatted).ok().as_deref(),
            Some(formatted.as_str()),
            "not idempotent for {text:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_text_gives_diagnostics_not_panics(text in "\\PC{0,200}") {
        exercise(&text);
    }

    #[test]
    fn token_soup_gives_diagnostics_not_panics(text in token_soup()) {
        exercise(&text);
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!(
        "fn f() -> int = {}1{}",
        "(".repeat(5_000),
        ")".repeat(5_000)
    );
    let (_, diags) = parse(0, &deep);
    assert!(!diags.is_empty());
    let long = format!("fn f() -> int = {}1", "1 + ".repeat(20_000));
    let (_, diags) = parse(0, &long);
    assert!(
        diags
            .iter()
            .any(|d| d.message.contains("nested too deeply")),
        "{diags:?}"
    );
}

#[test]
fn three_broken_items_give_three_diagnostics_and_keep_the_rest() {
    let text = "event a.b { x: int }\nrule one\n  when a.b\n  if x = 3 then log \"x\"\nend\n\nwhen a.b if x > && 2 then log \"z\"\n\nrule two when a.b then\n  if x > 1 then log \"y\"\nend\n\nwhen a.b then log \"{x}\"\n";
    let (tree, diags) = parse(0, text);
    assert_eq!(diags.len(), 3, "{diags:?}");
    assert_eq!(tree.items.len(), 5);
    let errors = tree
        .items
        .iter()
        .filter(|i| matches!(i, steward::syntax::ast::Item::Error(_)))
        .count();
    assert_eq!(errors, 3);
}
