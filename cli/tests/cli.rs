//! The `steward` binary: exit codes, JSON diagnostics, `fmt --check`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::process::Command;

fn steward(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(args)
        .output()
        .unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("steward-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn check_rules_passes() {
    let out = steward(&["check", "rules/"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no problems"));
}

#[test]
fn json_columns_count_characters_after_non_ascii_text() {
    let dir = temp_dir("json");
    let file = dir.join("bad.stw");
    // `riks` comes after `é` and an emoji on the same line.
    std::fs::write(
        &file,
        "when reservation.created if \"é🎉\" == \"x\" and riks < 0.5 then send welcome\n",
    )
    .unwrap();
    let out = steward(&[
        "check",
        "--format",
        "json",
        "rules/declarations.stw",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let diags = json.as_array().unwrap();
    let d = diags
        .iter()
        .find(|d| d["code"] == "E0202")
        .expect("unknown field reported");
    assert_eq!(d["line"], 1);
    // 1-based character columns: `riks` is the 45th character (the 49th byte).
    assert_eq!(d["column"], 45);
    assert_eq!(d["end_column"], 49);
    assert_eq!(d["end_line"], 1);
    assert_eq!(d["severity"], "error");
    assert_eq!(d["help"], "did you mean `risk`?");
    assert!(d["file"].as_str().unwrap().ends_with("bad.stw"));
    assert_eq!(d["message"], "no field `riks` on `reservation.created`");
    // The fix, in the same columns, and the labels.
    assert_eq!(d["fix"]["replacement"], "risk");
    assert_eq!(d["fix"]["column"], 45);
    assert_eq!(d["fix"]["end_column"], 49);
    assert_eq!(d["label"], "unknown field");
}

#[test]
fn json_diagnostics_carry_secondary_labels() {
    let dir = temp_dir("json-labels");
    let file = dir.join("twice.stw");
    std::fs::write(
        &file,
        "event a.b { id: string }
event a.b { id: string }
",
    )
    .unwrap();
    let out = steward(&["check", "--format", "json", file.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &json[0];
    assert_eq!(d["code"], "E0207");
    assert_eq!(d["line"], 2);
    assert_eq!(d["labels"][0]["line"], 1);
    assert_eq!(d["labels"][0]["message"], "first declared here");
}

#[test]
fn warnings_alone_exit_zero_and_usage_errors_exit_two() {
    let dir = temp_dir("warn");
    let file = dir.join("warn.stw");
    std::fs::write(
        &file,
        "when reservation.created if 1 > 2 then send welcome\n",
    )
    .unwrap();
    let out = steward(&["check", "rules/declarations.stw", file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("W0102"));

    let out = steward(&["check", "no/such/path.stw"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file or folder"));
    assert_eq!(steward(&["check"]).status.code(), Some(2));
}

#[test]
fn fmt_check_names_files_and_fmt_rewrites_them() {
    let dir = temp_dir("fmt");
    let file = dir.join("messy.stw");
    std::fs::write(
        &file,
        "when reservation.created   if risk<0.5 then send welcome\n",
    )
    .unwrap();
    let out = steward(&["fmt", "--check", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("messy.stw"));
    let out = steward(&["fmt", dir.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "when reservation.created if risk < 0.5 then send welcome\n"
    );
    assert_eq!(
        steward(&["fmt", "--check", dir.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
}
