//! Parsing again after an edit, reusing the items that did not change
//! (`syntax::parse_reusing`, what the language server does on every
//! keystroke), gives exactly the tree and diagnostics of a fresh parse.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use proptest::prelude::*;
use steward::syntax::{parse, parse_reusing, Reuse};

/// The example rules, each file's text.
fn examples() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut texts: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "stw"))
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    texts.sort();
    texts
}

/// What an editor types: a character, a line, a new item, a half item, a
/// comment or string opened, a block closed, an item keyword.
const INSERTS: &[&str] = &[
    "",
    "x",
    " ",
    "\n",
    "\n\n",
    "#",
    "\"",
    "end",
    "\nend\n",
    "rule r when reservation.created then\n  log \"x\"\nend\n",
    "\nrule ",
    "if risk > 0.5 then",
    "{",
    "}",
    "(",
    "type T {\n  a: string\n}\n",
    "\u{e9}",
    "3mo",
    "notify ",
];

/// One edit: where (a fraction of the text), how much to delete, what to
/// insert.
fn edit() -> impl Strategy<Value = (f64, usize, &'static str)> {
    (0.0..=1.0f64, 0usize..40, prop::sample::select(INSERTS))
}

fn apply(text: &str, (at, delete, insert): (f64, usize, &str)) -> String {
    let mut start = ((text.len() as f64) * at) as usize;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + delete).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{insert}{}", &text[..start], &text[end..])
}

/// The tree and diagnostics of `text`, parsed again with `reuse`, and
/// parsed afresh, as text to compare.
fn both(text: &str, reuse: &mut Reuse) -> (String, String) {
    (
        format!("{:?}", parse_reusing(3, text, reuse)),
        format!("{:?}", parse(3, text)),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn reparsing_after_edits_is_parsing_afresh(
        file in 0usize..64,
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let texts = examples();
        let mut text = texts[file % texts.len()].clone();
        let mut reuse = Reuse::default();
        let (again, fresh) = both(&text, &mut reuse);
        prop_assert_eq!(again, fresh);
        for e in edits {
            text = apply(&text, e);
            let (again, fresh) = both(&text, &mut reuse);
            prop_assert_eq!(again, fresh, "after the edit {:?}, the text:\n{}", e, text);
        }
    }
}

#[test]
fn an_item_moved_by_an_edit_above_it_keeps_its_places() {
    let text = "rule a when reservation.created then\n  log \"a\"\nend\n\nrule b when reservation.created if risk > 0.5 then\n  notify role ops \"{risk}\"\nend\n";
    let mut reuse = Reuse::default();
    parse_reusing(0, text, &mut reuse);
    // Longer, shorter, and the first item broken (its message names the
    // next item, which moved).
    for edited in [
        format!("# a comment\n{text}"),
        text.replacen("log \"a\"", "log \"\"", 1),
        text.replacen("then\n  log", "then\n  lg", 1),
        text.replacen("end\n", "", 1),
    ] {
        let (again, fresh) = both(&edited, &mut reuse);
        assert_eq!(again, fresh, "{edited}");
    }
}
