//! The `steward` binary on hostile input: files that are not UTF-8, symlink
//! loops, a file reached twice, scripts outside the rules' folder, long
//! waits in tests, an `--until` before the events. Each is a clear message
//! while the rest goes on; none crashes or hangs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DECLS: &str = "event ping { id: string  n: int }\n";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("steward-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn steward(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// `steward replay` of `rules/` over `events.jsonl` in `dir`.
fn replay(dir: &Path) -> Output {
    steward(
        dir,
        &["replay", "--rules", "rules", "--events", "events.jsonl"],
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ping(id: &str, at: &str) -> String {
    format!(
        r#"{{"id":"{id}","tenant":"t1","type":"ping","occurred_at":"{at}","payload":{{"id":"{id}","n":1}}}}"#
    )
}

fn rules_dir(name: &str, rules: &str) -> PathBuf {
    let dir = temp_dir(name);
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/decls.stw"), DECLS).unwrap();
    std::fs::write(dir.join("rules/rules.stw"), rules).unwrap();
    dir
}

#[test]
fn a_line_that_is_not_utf8_is_rejected_and_replay_goes_on() {
    let dir = rules_dir(
        "utf8",
        "rule seen when ping then\n  log \"{id}\"\n  after 1h do\n    log \"later {id}\"\n  end\nend\n",
    );
    let mut events = Vec::new();
    events.extend_from_slice(ping("a", "2026-11-20T10:00:00Z").as_bytes());
    events.extend_from_slice(b"\n{\"id\":\"\xff\"}\n\n");
    events.extend_from_slice(ping("b", "2026-11-20T12:00:00Z").as_bytes());
    events.push(b'\n');
    events.extend_from_slice(ping("a", "2026-11-20T12:00:00Z").as_bytes());
    events.push(b'\n');
    std::fs::write(dir.join("events.jsonl"), events).unwrap();
    let out = replay(&dir);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("rejected: line 2: not valid UTF-8"),
        "{stderr}"
    );
    assert!(stderr.contains("duplicate: line 5 (event `a`)"), "{stderr}");
    // Every line accounted for.
    assert!(
        stderr.contains(
            "read 5 lines: 2 events handled, 1 rejected, 1 blank, 1 duplicates (lines 5)"
        ),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("later a"),
        "the timer after the bad line fired: {stdout}"
    );
    assert!(stdout.contains("\"b\""), "{stdout}");
}

#[test]
fn a_far_future_event_is_refused_and_schedules_do_not_run_away() {
    let dir = rules_dir(
        "future",
        "rule each every 1m then log \"tick\" end\nrule seen when ping then log \"{id}\" end\n",
    );
    let events = [
        ping("a", "2026-11-20T10:00:00Z"),
        ping("far", "9999-01-01T00:00:00Z"),
        ping("b", "2026-11-20T10:03:00Z"),
    ]
    .join("\n");
    std::fs::write(dir.join("events.jsonl"), events).unwrap();
    let out = replay(&dir);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("rejected: line 2 (event `far`): occurred_at 9999-01-01T00:00:00Z is more than 366d ahead"),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("tick").count(), 3, "{stdout}");
    assert!(
        stdout.contains("\"b\""),
        "b is handled at its own time: {stdout}"
    );
}

#[test]
fn until_before_the_last_event_is_refused() {
    let dir = rules_dir("until", "rule seen when ping then log \"{id}\" end\n");
    let events = [
        ping("a", "2026-11-20T10:00:00Z"),
        ping("b", "2026-11-21T10:00:00Z"),
    ]
    .join("\n");
    std::fs::write(dir.join("events.jsonl"), events).unwrap();
    let out = steward(
        &dir,
        &[
            "replay",
            "--rules",
            "rules",
            "--events",
            "events.jsonl",
            "--until",
            "2026-11-20T12:00:00Z",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("after --until"), "{stderr}");
}

#[test]
fn a_symlink_loop_and_a_file_named_twice_are_read_once() {
    let dir = rules_dir("links", "rule seen when ping then log \"{id}\" end\n");
    std::os::unix::fs::symlink(dir.join("rules"), dir.join("rules/again")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("rules/self")).unwrap();
    std::fs::write(dir.join("events.jsonl"), ping("a", "2026-11-20T10:00:00Z")).unwrap();
    let out = steward(&dir, &["check", "rules", "rules/rules.stw", "rules"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("checked 2 files"), "{stderr}");
    let out = steward(
        &dir,
        &[
            "replay",
            "--rules",
            "rules",
            "rules/rules.stw",
            "--events",
            "events.jsonl",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 1, "one action, not two");
}

#[test]
fn a_rule_file_that_is_not_utf8_still_gets_json_diagnostics() {
    let dir = rules_dir("badfile", "rule seen when ping then log \"{id}\" end\n");
    std::fs::write(
        dir.join("rules/bad.stw"),
        b"# caf\xe9\nwhen ping then log \"x\"\n",
    )
    .unwrap();
    let out = steward(&dir, &["check", "--format", "json", "rules"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &json.as_array().unwrap()[0];
    assert_eq!(first["code"], "E0106");
    assert_eq!(first["line"], 1);
    assert_eq!(first["column"], 6);
    // fmt leaves it alone rather than replacing the byte for good.
    let out = steward(&dir, &["fmt", "rules"]);
    assert!(text(&out.stderr).contains("not valid UTF-8"));
    assert_eq!(
        std::fs::read(dir.join("rules/bad.stw")).unwrap(),
        b"# caf\xe9\nwhen ping then log \"x\"\n"
    );
}

#[test]
fn a_script_reached_through_a_link_outside_the_folder_is_not_read() {
    let dir = rules_dir(
        "rhai",
        "fn secret(n: int) -> string from rhai \"leak.rhai\"\nrule seen when ping then log secret(n) end\n",
    );
    let outside = dir.join("outside.rhai");
    std::fs::write(&outside, "\"the secret text\" +").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("rules/leak.rhai")).unwrap();
    let out = steward(&dir, &["check", "rules"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("E0410"), "{stderr}");
    assert!(!stderr.contains("secret text"), "{stderr}");
}

#[test]
fn a_test_that_produces_millions_of_actions_fails_clearly() {
    let dir = rules_dir(
        "longwait",
        "rule each every 1m then log \"tick\" end\n\ntest \"ten years\"\n  wait 3650d\n  expect nothing\nend\n\ntest \"huge wait\"\n  wait 100000000000d\nend\n",
    );
    let out = steward(&dir, &["test", "rules"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("0 passed, 2 failed"), "{stdout}");
    assert!(
        stdout.contains("skipped") || stdout.contains("the test stopped here"),
        "{stdout}"
    );
    assert!(stdout.contains("past the end of the calendar"), "{stdout}");
}

#[test]
fn a_line_longer_than_the_limit_is_skipped_unread() {
    let dir = rules_dir("long-line", "rule seen when ping then log \"{id}\" end\n");
    let mut events = ping("a", "2026-11-20T10:00:00Z");
    events.push('\n');
    // 17 MiB of one id, without a newline until its end.
    events.push_str(&ping(&"x".repeat(17 << 20), "2026-11-20T10:00:01Z"));
    events.push('\n');
    events.push_str(&ping("b", "2026-11-20T10:00:02Z"));
    events.push('\n');
    std::fs::write(dir.join("events.jsonl"), events).unwrap();
    let out = replay(&dir);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("rejected: line 2: longer than 16777216 bytes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("read 3 lines: 2 events handled, 1 rejected"),
        "{stderr}"
    );
}
