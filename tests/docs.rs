//! The documentation stays true: every code in docs/errors.md has a wrong
//! example that produces it and a right example that checks clean.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use steward::check::{analyze, Host, RhaiSourceError};
use steward::diag::Code;

struct RulesDir;

impl Host for RulesDir {
    fn rhai_source(&self, _file: &str, path: &str) -> Result<String, RhaiSourceError> {
        if path.starts_with('/') || path.contains("..") {
            return Err(RhaiSourceError::Outside);
        }
        ["rules", "tests/data/check-fail"]
            .iter()
            .find_map(|dir| std::fs::read_to_string(std::path::Path::new(dir).join(path)).ok())
            .ok_or(RhaiSourceError::Missing)
    }

    /// The tenant the examples are checked for has set `pms_token`.
    fn has_secret(&self, name: &str) -> Option<bool> {
        Some(name == "pms_token")
    }
}

fn check(text: &str) -> Vec<String> {
    let mut files: Vec<(String, String)> = ["rules/declarations.stw", "rules/functions.stw"]
        .iter()
        .map(|p| (p.to_string(), std::fs::read_to_string(p).unwrap()))
        .collect();
    files.push(("example.stw".into(), text.into()));
    analyze(&files, &RulesDir)
        .diagnostics
        .iter()
        .map(|d| format!("{} {}", d.code, d.message))
        .collect()
}

/// E0106 comes from reading a file: the example's `\\xff` becomes a raw byte
/// in a file read the way `steward check` reads it.
fn not_utf8(text: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("steward-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("example.stw");
    let bytes: Vec<u8> = text
        .replace("\\xff", "\u{1}")
        .bytes()
        .map(|b| if b == 1 { 0xff } else { b })
        .collect();
    std::fs::write(&file, bytes).unwrap();
    let loaded = steward::files::read_all(&[file]).unwrap();
    let out = loaded
        .analyze()
        .diagnostics
        .iter()
        .map(|d| format!("{} {}", d.code, d.message))
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

#[test]
fn every_code_is_documented_with_examples_that_hold() {
    let doc = std::fs::read_to_string("docs/errors.md").unwrap();
    for code in Code::ALL {
        let heading = format!("## {}\n", code.as_str());
        let Some(start) = doc.find(&heading) else {
            panic!("{code} is not in docs/errors.md")
        };
        let section = &doc[start + heading.len()..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        let blocks: Vec<&str> = section
            .split("```stw\n")
            .skip(1)
            .map(|b| &b[..b.find("```").unwrap()])
            .collect();
        assert_eq!(
            blocks.len(),
            2,
            "{code}: expected a wrong and a right example"
        );
        let wrong = if *code == Code::NotUtf8 {
            not_utf8(blocks[0])
        } else {
            check(blocks[0])
        };
        assert!(
            wrong.iter().any(|d| d.starts_with(code.as_str())),
            "{code}: the wrong example gives {wrong:?}"
        );
        let right = check(blocks[1]);
        assert!(
            right.is_empty(),
            "{code}: the right example gives {right:?}"
        );
    }
}

/// docs/stdlib.md is generated from `stdlib/` and `check::actions`;
/// `STEWARD_BLESS=1` writes it.
#[test]
fn the_stdlib_reference_is_current() {
    let generated = steward::check::stdlib::reference();
    let path = "docs/stdlib.md";
    if std::env::var_os("STEWARD_BLESS").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let written = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        written == generated,
        "docs/stdlib.md is stale: run `STEWARD_BLESS=1 cargo test --test docs` and commit it"
    );
    // That every `extern fn` overload has an implementation is checked by
    // the tests of `engine::builtins`.
}
