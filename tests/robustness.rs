//! Garbage in, diagnostics out: the parser, checker and formatter never
//! panic and never hang on arbitrary input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

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

/// Runs `f` on a thread with a small stack (the size of a language server's
/// worker), so a recursion that would overflow fails this test, not CI.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn deep_statement_nesting_and_deep_types_are_refused_not_overflowed() {
    on_small_stack(|| {
        let decls = "event e { n: int }\n";
        for (open, close) in [
            ("  if n > 0 then\n", "  end\n"),
            ("  after 1m do\n", "  end\n"),
        ] {
            for depth in [3_000, 65] {
                let text = format!(
                    "{decls}rule r when e then\n{}  log \"x\"\n{}end\n",
                    open.repeat(depth),
                    close.repeat(depth)
                );
                let (_, diags) = parse(0, &text);
                assert!(
                    diags
                        .iter()
                        .any(|d| d.message.contains("more than 64 levels")),
                    "{depth}: {diags:?}"
                );
                exercise(&text);
            }
        }
        let types = format!(
            "type T {{ a: {}int{} }}",
            "list<".repeat(30_000),
            ">".repeat(30_000)
        );
        let (_, diags) = parse(0, &types);
        assert!(
            diags.iter().any(|d| d.message.contains("levels deep")),
            "{diags:?}"
        );
        exercise(&types);
        // Just inside the limits (the rule's own block is one level)
        // everything still works, on a small stack.
        let ok = format!(
            "{decls}rule r when e then\n{}  log \"x\"\n{}end\n",
            "  after 1m do\n".repeat(63),
            "  end\n".repeat(63)
        );
        let analysis = analyze(&[("a.stw".into(), ok.clone())], &NoFiles);
        assert!(!analysis.has_errors(), "{:?}", analysis.diagnostics);
        format_source(&ok).unwrap();
    });
}

#[test]
fn a_file_of_comments_only_is_an_empty_program() {
    let analysis = analyze(
        &[("a.stw".into(), "# nothing yet\n\n# still nothing\n".into())],
        &NoFiles,
    );
    assert!(
        analysis.diagnostics.is_empty(),
        "{:?}",
        analysis.diagnostics
    );
}

#[test]
fn a_lone_carriage_return_ends_a_line_and_a_comment() {
    let text = "event e { n: int }\rwhen e then log \"a\" # one\rwhen e then log \"b\"\r";
    let (tree, diags) = parse(0, text);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(tree.items.len(), 3);
    let analysis = analyze(
        &[("a.stw".into(), format!("{text}when e then log nope\r"))],
        &NoFiles,
    );
    let d = analysis.diagnostics.first().expect("a diagnostic");
    let file = analysis.sources.get(d.primary.file);
    // Line 4 for the CLI, the JSON and the language server alike.
    assert_eq!(file.lines.line_col(d.primary.span.start).line, 3);
    let human = steward::diag::render_human(d, &analysis.sources, false);
    assert!(human.contains("a.stw:4:"), "{human}");
}

#[test]
fn a_continuation_line_starting_with_event_is_not_a_new_item() {
    let text =
        "event e { n: int }\nwhen e\n  if n > 1 and\n    event.id != \"x\"\n  then log \"a\"\n";
    let (tree, diags) = parse(0, text);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(tree.items.len(), 2);
}

/// pest's error-detail switch is process-wide: checking files on several
/// threads at once must give each file the diagnostics it gets alone.
#[test]
fn diagnostics_do_not_depend_on_other_threads() {
    let mut cases: Vec<String> = std::fs::read_dir("tests/data/check-fail")
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "stw").then(|| std::fs::read_to_string(path).ok())?
        })
        .collect();
    cases.sort();
    let diagnostics = |text: &str| -> Vec<String> {
        analyze(&[("case.stw".to_string(), text.to_string())], &NoFiles)
            .diagnostics
            .iter()
            .map(|d| format!("{} {} {:?}", d.code, d.message, d.primary.span))
            .collect()
    };
    let alone: Vec<Vec<String>> = cases.iter().map(|c| diagnostics(c)).collect();
    let cases = std::sync::Arc::new(cases);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let cases = cases.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for round in 0..2 {
                    // Each thread walks the cases in its own order.
                    for i in 0..cases.len() {
                        let at = (i * (t + 1) + round) % cases.len();
                        seen.push((at, diagnostics(&cases[at])));
                    }
                }
                seen
            })
        })
        .collect();
    for thread in threads {
        for (at, got) in thread.join().unwrap() {
            assert_eq!(got, alone[at], "case {at}");
        }
    }
}

#[test]
fn a_notify_at_the_end_of_the_file_is_reported_inside_it() {
    // Found by the token soup: the label pointed one byte past the end.
    exercise("when notify");
    exercise("rule r when reservation.created then\n  create task \"x\" for");
}
