//! The features on the analysis, without the protocol: a source with a `$0`
//! cursor marker, the feature's answer rendered as text, and an insta
//! snapshot of it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use lsp_types::{CompletionItemKind, DocumentSymbol, HoverContents};
use steward::check::{analyze, Analysis, NoFiles};
use steward::diag::{FileId, Span};
use steward_lsp::features::{actions, completion, hover, symbols};

const DECLS: &str = r#"## A guest as the channels report them.
type Guest {
  ## Where we write to them.
  email: string
  first_name: string
  phone: string?
  address: Address?
}

type Address {
  city: string
  country: string
}

## A booking was made on any channel.
event reservation.created {
  id: string
  ## The fraud score, from 0 (safe) to 1.
  risk: float
  nights: int
  guest: Guest
  channel: "airbnb" | "vrbo" | "direct"
}

event reservation.cancelled {
  id: string
  reason: string?
}

message welcome {
  to: guest.email
  subject: "Welcome"
  body: "Hello"
}

action page_owner(text: string) via webhook "https://hooks.example.com/page"
"#;

/// Analyses the declarations with `source` (its `$0` removed) and returns
/// the analysis, the file of `source` and the marker's offset.
fn at(source: &str) -> (Analysis, FileId, u32) {
    let offset = source.find("$0").expect("a $0 marker") as u32;
    let text = source.replacen("$0", "", 1);
    let files = vec![
        ("decls.stw".to_string(), DECLS.to_string()),
        ("doc.stw".to_string(), text),
    ];
    let analysis = analyze(&files, &NoFiles);
    let file = analysis
        .user_files()
        .map(|f| f.id)
        .find(|&id| analysis.sources.name(id) == "doc.stw")
        .unwrap();
    (analysis, file, offset)
}

/// The completions, one per line: label, kind and detail. Functions and
/// keywords are counted rather than listed, to keep the snapshots readable.
fn completions(source: &str) -> String {
    let (analysis, file, offset) = at(source);
    let items = completion::complete(&analysis, None, file, offset);
    let mut out = String::new();
    let (mut functions, mut keywords) = (0, 0);
    for item in &items {
        match item.kind {
            Some(CompletionItemKind::FUNCTION) => functions += 1,
            Some(CompletionItemKind::KEYWORD) => keywords += 1,
            kind => out.push_str(&format!(
                "{} ({:?}){}\n",
                item.label,
                kind.unwrap(),
                item.detail
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            )),
        }
    }
    if functions + keywords > 0 {
        out.push_str(&format!("+ {functions} functions, {keywords} keywords\n"));
    }
    out
}

fn hover_text(source: &str) -> String {
    let (analysis, file, offset) = at(source);
    let now = "2026-11-24T12:00:00Z".parse().unwrap();
    match hover::hover(&analysis, file, offset, now) {
        Some(h) => match h.contents {
            HoverContents::Markup(m) => m.value,
            other => format!("{other:?}"),
        },
        None => "(no hover)".into(),
    }
}

#[test]
fn completion_of_nested_fields() {
    insta::assert_snapshot!(completions(
        "when reservation.created if guest.$0 then send welcome\n"
    ));
    insta::assert_snapshot!(completions(
        "when reservation.created if guest.address.$0 then send welcome\n"
    ));
}

#[test]
fn completion_in_a_half_typed_rule_uses_the_trigger_and_lets() {
    insta::assert_snapshot!(completions(
        "rule r\n  when reservation.created\n  then\n    let label = \"x\"\n    log \"{$0\nend\n"
    ));
}

#[test]
fn completion_after_keywords() {
    insta::assert_snapshot!(completions("when reservation.$0"));
    insta::assert_snapshot!(completions(
        "rule r\n  when reservation.created\n  then\n    after 2h unless reservation.cancelled on $0 do\n      log \"x\"\n    end\nend\n"
    ));
    insta::assert_snapshot!(completions(
        "test \"t\"\n  given partial reservation.created { id: \"r1\" }\n  expect $0\nend\n"
    ));
    insta::assert_snapshot!(completions("$0"));
}

#[test]
fn completion_of_union_members_inside_a_string() {
    insta::assert_snapshot!(completions(
        "when reservation.created if channel != \"v$0\" then send welcome\n"
    ));
    insta::assert_snapshot!(completions(
        "when reservation.created if channel in [\"airbnb\", \"$0\"] then send welcome\n"
    ));
    // Not compared with a union: nothing to offer.
    insta::assert_snapshot!(completions(
        "when reservation.created if id == \"$0\" then send welcome\n"
    ));
}

#[test]
fn hover_on_declarations_uses_and_expressions() {
    insta::assert_snapshot!(hover_text(
        "when reservation.cre$0ated if risk < 0.5 then send welcome\n"
    ));
    insta::assert_snapshot!(hover_text(
        "when reservation.created if guest.ema$0il != \"\" then send welcome\n"
    ));
    insta::assert_snapshot!(hover_text(
        "when reservation.created if risk < 0.5 and nights >$0 2 then send welcome\n"
    ));
    insta::assert_snapshot!(hover_text(
        "when reservation.created then page_ow$0ner(text: id)\n"
    ));
    insta::assert_snapshot!(hover_text(
        "rule digest\n  every \"0 8 * * 1-5\" in \"America/Tor$0onto\"\n  then log \"x\"\nend\n"
    ));
}

#[test]
fn history_forms_complete_and_hover() {
    // After `count(`: the event types.
    insta::assert_snapshot!(completions(
        "when work_order.created if count(work_$0 within 90d) > 2 then log \"x\"\n"
    ));
    // The words, and what a recalled value is.
    insta::assert_snapshot!(hover_text(
        "rule r when reservation.created if channel chan$0ged to \"vrbo\" then log \"x\" end\n"
    ));
    insta::assert_snapshot!(hover_text(
        "rule r when reservation.created if prev$0ious nights != none then log \"x\" end\n"
    ));
    insta::assert_snapshot!(hover_text(
        "rule r when reservation.created if previous nig$0hts != none then log \"x\" end\n"
    ));
}

#[test]
fn quick_fixes_for_misspellings_and_unchecked_optionals() {
    let (analysis, file, _) =
        at("$0when reservation.created if guest.phone starts_with \"+1\" then send welcom\n");
    let fixes: Vec<String> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.primary.file == file)
        .filter_map(|d| {
            let fix = d.fix.as_ref()?;
            let text = analysis.sources.text(file);
            Some(format!(
                "{}: {} (`{}` -> `{}`)",
                d.code.as_str(),
                fix.title,
                &text[fix.span.range()],
                fix.replacement
            ))
        })
        .collect();
    insta::assert_snapshot!(fixes.join("\n"));
    let actions = actions::code_actions(
        &analysis,
        file,
        Span::new(0, 200),
        &"file:///doc.stw".parse().unwrap(),
    );
    assert_eq!(actions.len(), 2);
}

#[test]
fn inlay_hints_and_symbols() {
    let (analysis, file, _) = at(
        "$0rule r \"Title\"\n  when reservation.created\n  then\n    let share = risk * 2.0\n    let name: string = guest.first_name\n    let home = guest.address\n    log \"{share} {name}\"\nend\n\nevery 1h then log \"tick\"\n",
    );
    let hints: Vec<String> = actions::inlay_hints(&analysis, file, Span::new(0, 10_000))
        .into_iter()
        .map(|h| {
            let label = match h.label {
                lsp_types::InlayHintLabel::String(s) => s,
                other => format!("{other:?}"),
            };
            format!("{}:{} {label}", h.position.line, h.position.character)
        })
        .collect();
    let mut outline = String::new();
    fn show(out: &mut String, depth: usize, s: &DocumentSymbol) {
        out.push_str(&format!(
            "{}{} [{:?}] {} ({}:{}-{}:{})\n",
            "  ".repeat(depth),
            s.name,
            s.kind,
            s.detail.as_deref().unwrap_or(""),
            s.range.start.line,
            s.range.start.character,
            s.range.end.line,
            s.range.end.character
        ));
        for c in s.children.iter().flatten() {
            show(out, depth + 1, c);
        }
    }
    for s in symbols::document_symbols(&analysis, file) {
        show(&mut outline, 0, &s);
    }
    insta::assert_snapshot!(format!("{}\n---\n{outline}", hints.join("\n")));
}
