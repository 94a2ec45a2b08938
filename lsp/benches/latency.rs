//! B5, the editor half: the time from a `didChange` to the
//! `publishDiagnostics` for that version, on a 5,000-line workspace, p50 and
//! p99, and the memory the server holds. The server is the release binary,
//! spoken to over stdio like an editor does, with its default debounce.
//!
//! Run: `cargo bench -p steward-lsp --bench latency` (see docs/performance.md);
//! `STEWARD_LSP=path` runs another build of the server instead.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../../benches/support/rules.rs"]
mod generated;

use std::time::{Duration, Instant};

use common::{uri, workspace, Client};
use serde_json::{json, Value};

const EDITS: usize = 300;

/// A workspace of `files` generated files, 5,000 lines in all with the
/// example declarations, and the name of the file to edit.
fn setup(name: &str, files: usize) -> (std::path::PathBuf, String) {
    let declarations = std::fs::read_to_string("../rules/declarations.stw").unwrap();
    let per_file = (5_000 - declarations.lines().count()) / files;
    let mut texts = vec![("declarations.stw".to_string(), declarations)];
    for f in 0..files {
        texts.push((
            format!("rules_{f:02}.stw"),
            generated::lines(per_file, f * 1_000),
        ));
    }
    let total: usize = texts.iter().map(|(_, t)| t.lines().count()).sum();
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let root = workspace(name, &refs);
    println!(
        "{name}: {} files, {total} lines, {} KiB",
        texts.len(),
        texts.iter().map(|(_, t)| t.len()).sum::<usize>() / 1024
    );
    (root, "rules_00.stw".to_string())
}

/// How many of a `publishDiagnostics`' diagnostics are errors.
fn errors(published: &Value) -> usize {
    published["diagnostics"]
        .as_array()
        .map_or(0, |all| all.iter().filter(|d| d["severity"] == 1).count())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn memory(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!("RSS {}, peak {}", field("VmRSS:"), field("VmHWM:"))
}

/// Types into the edited file `EDITS` times, alternately breaking a field
/// name (`risk` becomes `rsk`, an error) and fixing it, each edit waiting
/// for its diagnostics. The edit changes the text's length, so every item
/// after it moves.
fn run(name: &str, files: usize, debounce_ms: Option<u64>) {
    let (root, edited) = setup(name, files);
    let file = root.join(&edited);
    let doc = uri(&file);
    let text = std::fs::read_to_string(&file).unwrap();
    let options = match debounce_ms {
        Some(ms) => json!({"debounceMs": ms}),
        None => json!({}),
    };
    let mut client = Client::start(&root, options);
    client.open(&doc, &text);
    let first = client.diagnostics(&doc, |p| p["version"] == 1);
    // The generated rules repeat one another, so the checker warns of
    // rules doing the same thing (W0106); errors there are none.
    assert_eq!(errors(&first), 0, "the workspace has no errors: {first}");
    // `risk` in the condition of the first generated rule, line 4.
    let line = text.lines().position(|l| l.contains("if risk <")).unwrap();
    let col = text.lines().nth(line).unwrap().find("risk").unwrap();
    let range = |len: usize| json!({"start": {"line": line, "character": col}, "end": {"line": line, "character": col + len}});
    let mut times = Vec::with_capacity(EDITS);
    for version in 2..EDITS as i64 + 2 {
        let broken = version % 2 == 0;
        let new_text = if broken { "rsk" } else { "risk" };
        let started = Instant::now();
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": doc, "version": version}, "contentChanges": [{"range": range(if broken { 4 } else { 3 }), "text": new_text}]}),
        );
        let published = client.diagnostics(&doc, |p| p["version"] == version);
        times.push(started.elapsed());
        assert_eq!(errors(&published), usize::from(broken), "{published}");
        client
            .notifications
            .retain(|m: &Value| m["method"] != "window/logMessage");
    }
    times.sort();
    let debounce = debounce_ms.map_or("default".to_string(), |ms| format!("{ms} ms"));
    println!(
        "  didChange -> publishDiagnostics, {EDITS} edits, debounce {debounce}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; server {}",
        percentile(&times, 0.50).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
        memory(client.pid()),
    );
    client.shutdown();
    std::fs::remove_dir_all(root).ok();
}

fn main() {
    // `cargo bench` passes `--bench`; a filter is not supported.
    println!("B5 editor latency (steward-lsp, release build)");
    run("b5-25-files", 25, None);
    run("b5-25-files", 25, Some(0));
    run("b5-one-file", 1, None);
    run("b5-one-file", 1, Some(0));
}
