//! Corpus tests: one folder of `.stw` files per stage; a new case is a new file.
//!
//! - `check-pass/`: must check with no diagnostics at all.
//! - `check-fail/`: named `CODE_what.stw`; must produce that code. The rendered
//!   diagnostics are snapshots.
//! - `parse/`: the syntax tree (with spans) and parse diagnostics are snapshots.
//! - `format/`: the formatted output is a snapshot.
//!
//! A diagnostic's mechanical fix (what the editor offers as a quick fix) must
//! make that diagnostic go away.
//!
//! Cases are checked together with the example declarations in `rules/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::path::Path;

use steward::check::{analyze, Analysis, NoFiles};
use steward::diag::{render_human, without_spans, Code};
use steward::files::FsHost;
use steward::syntax::{format::format_source, parse};

/// A corpus file's text (a case that is not UTF-8 reads as `steward check`
/// reads it).
fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

fn prelude() -> Vec<(String, String)> {
    ["rules/declarations.stw", "rules/functions.stw"]
        .iter()
        .map(|p| (p.to_string(), read(Path::new(p))))
        .collect()
}

/// The case as `steward check` reads it (a file that is not UTF-8
/// included), with the example declarations.
fn analyze_case(path: &Path) -> Analysis {
    let dir = path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let name = format!(
        "tests/data/{dir}/{}",
        path.file_name().unwrap().to_str().unwrap()
    );
    let mut paths: Vec<std::path::PathBuf> = ["rules/declarations.stw", "rules/functions.stw"]
        .iter()
        .map(std::path::PathBuf::from)
        .collect();
    paths.push(name.into());
    // The tenant the cases are checked for has set the secret `pms_token`.
    let loaded = steward::files::read_all(&paths).unwrap();
    let secrets = ["pms_token".to_string()].into_iter().collect();
    let host = steward::boundary::Knowing {
        inner: &loaded.host(),
        secrets: &secrets,
    };
    let mut analysis = analyze(&loaded.sources, &host);
    loaded.add_diagnostics(&mut analysis);
    analysis
}

fn rendered(analysis: &Analysis) -> String {
    analysis
        .diagnostics
        .iter()
        .map(|d| render_human(d, &analysis.sources, false))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn check_pass() {
    insta::glob!("data/check-pass/*.stw", |path| {
        let analysis = analyze_case(path);
        assert!(analysis.diagnostics.is_empty(), "{}", rendered(&analysis));
    });
}

#[test]
fn check_fail() {
    insta::glob!("data/check-fail/*.stw", |path| {
        let analysis = analyze_case(path);
        let name = path.file_stem().unwrap().to_str().unwrap();
        let code = name.split('_').next().unwrap();
        assert!(
            analysis.diagnostics.iter().any(|d| d.code.as_str() == code),
            "{name} should produce {code}, got:\n{}",
            rendered(&analysis)
        );
        // The prelude itself is clean: every diagnostic is about the case.
        assert!(analysis
            .diagnostics
            .iter()
            .all(|d| analysis.sources.name(d.primary.file).contains("check-fail")));
        insta::assert_snapshot!(rendered(&analysis));
    });
}

#[test]
fn every_code_has_a_failing_case() {
    let names: Vec<String> = std::fs::read_dir("tests/data/check-fail")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut missing = Vec::new();
    for code in Code::ALL {
        if !names.iter().any(|n| n.starts_with(code.as_str())) {
            missing.push(code.as_str());
        }
    }
    assert!(
        missing.is_empty(),
        "no case in tests/data/check-fail for {missing:?}"
    );
    assert!(names.len() >= 40, "only {} failing cases", names.len());
}

#[test]
fn parse_snapshots() {
    insta::glob!("data/parse/*.stw", |path| {
        let text = read(path);
        let (tree, diags) = parse(0, &text);
        let codes: Vec<String> = diags
            .iter()
            .map(|d| format!("{} {:?} {}", d.code, d.primary.span, d.message))
            .collect();
        insta::assert_snapshot!(format!("{}\n{tree:#?}", codes.join("\n")));
    });
}

#[test]
fn format_snapshots() {
    insta::glob!("data/format/*.stw", |path| {
        let formatted = format_source(&read(path)).unwrap();
        insta::assert_snapshot!(formatted);
    });
}

/// Every `.stw` file of the project.
fn all_corpus_files() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in [
        "rules",
        "tests/data/check-pass",
        "tests/data/check-fail",
        "tests/data/parse",
        "tests/data/format",
        "stdlib",
    ] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "stw") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn formatting_is_idempotent_and_keeps_meaning() {
    let mut formatted_count = 0;
    for path in all_corpus_files() {
        let text = read(&path);
        let Ok(once) = format_source(&text) else {
            continue;
        };
        formatted_count += 1;
        let twice = format_source(&once).unwrap_or_else(|d| {
            panic!(
                "{}: formatted output does not parse: {d:?}\n{once}",
                path.display()
            )
        });
        assert_eq!(
            once,
            twice,
            "{}: formatting is not idempotent",
            path.display()
        );
        let before = without_spans(|| format!("{:#?}", parse(0, &text).0.items));
        let after = without_spans(|| format!("{:#?}", parse(0, &once).0.items));
        assert_eq!(
            before,
            after,
            "{}: formatting changed the meaning",
            path.display()
        );
        // No comment is lost.
        assert_eq!(
            parse(0, &text).0.comments.len(),
            parse(0, &once).0.comments.len(),
            "{}: a comment was lost",
            path.display()
        );
    }
    assert!(formatted_count > 20);
}

#[test]
fn example_rules_are_formatted_and_check_clean() {
    let mut files = Vec::new();
    for entry in std::fs::read_dir("rules").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "stw") {
            let text = read(&path);
            assert_eq!(
                format_source(&text).unwrap(),
                text,
                "{} is not formatted",
                path.display()
            );
            files.push((path.display().to_string(), text));
        }
    }
    let analysis = analyze(&files, &NoFiles);
    assert!(analysis.diagnostics.is_empty(), "{}", rendered(&analysis));
}

#[test]
fn every_fix_removes_its_diagnostic() {
    let mut fixed = 0;
    for path in std::fs::read_dir("tests/data/check-fail").unwrap() {
        let path = path.unwrap().path();
        if path.extension().is_none_or(|e| e != "stw") {
            continue;
        }
        let analysis = analyze_case(&path);
        let file = analysis.user_files().last().unwrap().id;
        let text = analysis.sources.text(file).to_string();
        for d in analysis
            .diagnostics
            .iter()
            .filter(|d| d.primary.file == file)
        {
            let Some(fix) = &d.fix else { continue };
            let mut repaired = text.clone();
            repaired.replace_range(fix.span.range(), &fix.replacement);
            let mut files = prelude();
            files.push((analysis.sources.name(file).to_string(), repaired));
            let after = analyze(&files, &FsHost::default());
            let after_file = after.user_files().last().unwrap().id;
            let still = after.diagnostics.iter().any(|a| {
                a.primary.file == after_file
                    && a.code == d.code
                    && a.primary.span.start == d.primary.span.start
            });
            assert!(
                !still,
                "{}: the fix `{}` leaves {} in place",
                path.display(),
                fix.title,
                d.code.as_str()
            );
            fixed += 1;
        }
    }
    // The did-you-mean cases (events, fields, messages, functions, union
    // members...) and the unchecked optionals.
    assert!(fixed >= 8, "only {fixed} fixes in the corpus");
}
