//! `steward replay` and `steward test` end to end, on the repository's rules.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

/// `steward ARGS` run in `dir`, which must succeed.
fn steward_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    out
}

/// The repository root, where `rules/` is.
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[test]
fn replay_prints_actions_and_reports_rejections() {
    let dir = std::env::temp_dir().join(format!("steward-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    std::fs::write(
        &events,
        [
            r#"{"id":"w1","tenant":"acme","type":"work_order.created","occurred_at":"2026-11-21T09:00:00Z","payload":{"id":"w1","listing_id":"l1","description":"Kitchen leak"}}"#,
            r#"{"id":"bad","tenant":"acme","type":"work_order.created","occurred_at":"2026-11-21T09:30:00Z","payload":{"id":7}}"#,
            "",
        ]
        .join("\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(ROOT)
        .args(["replay", "--rules", "rules", "--events"])
        .arg(&events)
        .args(["--until", "2026-11-21T14:00:00Z", "--explain", "w1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let notify = lines
        .iter()
        .find(|l| l["action"] == "notify")
        .expect(&stdout);
    assert_eq!(notify["at"], "2026-11-21T13:00:00Z");
    assert_eq!(notify["rule"], "work_order_sla");
    assert_eq!(notify["tenant"], "acme");
    let key = notify["key"].as_str().unwrap_or_default();
    assert!(
        key.starts_with("stw_") && key.len() == 36,
        "a key safe in a header: {key}"
    );
    assert_eq!(notify["args"]["text"], "Work order w1 unresolved after 4h");
    assert!(
        stderr
            .contains("rejected: line 2 (event `bad`): payload.id: expected string, found number"),
        "{stderr}"
    );
    assert!(stderr.contains("rule work_order_sla: matched"), "{stderr}");
    assert!(
        stderr.contains("(description = \"Kitchen leak\")"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_rules_folder_passes_its_own_tests() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(ROOT)
        .args(["test", "rules"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    let last = stdout.lines().last().unwrap();
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
}

#[test]
fn decimals_keep_their_places_in_replay_and_in_tests() {
    let dir = std::env::temp_dir().join(format!("steward-places-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("sale.stw"),
        "event sale { id: string  total: decimal }\n\
         when sale then log \"{total}\"\n\
         test \"places are kept\"\n  given sale { id: \"s1\", total: 240.00 }\n  expect log { text: \"240.00\" }\nend\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("events.jsonl"),
        r#"{"id":"s1","tenant":"t1","type":"sale","occurred_at":"2026-11-20T10:00:00Z","payload":{"id":"s1","total":240.00}}
{"id":"s2","tenant":"t1","type":"sale","occurred_at":"2026-11-20T10:00:00Z","payload":{"id":"s2","total":"412.50"}}
"#,
    )
    .unwrap();
    let run = |args: &[&str]| String::from_utf8(steward_in(&dir, args).stdout).unwrap();
    let test = run(&["test", "."]);
    assert!(test.contains("1 passed, 0 failed"), "{test}");
    let replay = run(&["replay", "--rules", ".", "--events", "events.jsonl"]);
    let texts: Vec<String> = replay
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["args"]["text"].to_string())
        .collect();
    assert_eq!(texts, ["\"240.00\"", "\"412.50\""]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn explain_names_the_tenant_and_can_pick_one() {
    let dir = std::env::temp_dir().join(format!("steward-explain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("r.stw"),
        "event ping { n: int }\nrule big when ping if n > 5 then log \"big\" end\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("events.jsonl"),
        r#"{"id":"p1","tenant":"acme","type":"ping","occurred_at":"2026-11-20T10:00:00Z","payload":{"n":1}}
{"id":"p1","tenant":"globex","type":"ping","occurred_at":"2026-11-20T10:00:00Z","payload":{"n":9}}
"#,
    )
    .unwrap();
    let stderr = |args: &[&str]| String::from_utf8(steward_in(&dir, args).stderr).unwrap();
    let base = [
        "replay",
        "--rules",
        ".",
        "--events",
        "events.jsonl",
        "--explain",
        "p1",
    ];
    let both = stderr(&base);
    assert!(both.contains("explain p1 of tenant acme"), "{both}");
    assert!(both.contains("explain p1 of tenant globex"), "{both}");
    let one = stderr(&[&base[..], &["--tenant", "globex"]].concat());
    assert!(!one.contains("of tenant acme"), "{one}");
    assert!(one.contains("explain p1 of tenant globex"), "{one}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["explain", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(!help.contains("diagnostic"), "{help}");
    assert!(help.contains("each condition's value"), "{help}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn explain_json_has_the_trace_the_actions_and_the_errors() {
    let event =
        std::env::temp_dir().join(format!("steward-explain-json-{}.json", std::process::id()));
    let first = std::fs::read_to_string(format!("{ROOT}/examples/events.jsonl")).unwrap();
    std::fs::write(&event, first.lines().next().unwrap()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(ROOT)
        .args(["explain", "--rules", "rules", "--format", "json", "--event"])
        .arg(&event)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["trace"]["event"], "evt_01");
    assert_eq!(json["trace"]["tenant"], "acme");
    let rule = &json["trace"]["rules"][0];
    assert!(rule["conditions"][0]["reads"].is_object(), "{rule}");
    assert!(rule.get("skipped").is_none(), "absent, not null: {rule}");
    assert!(json["actions"][0]["key"]
        .as_str()
        .unwrap()
        .starts_with("stw_"));
    assert!(json["errors"].as_array().unwrap().is_empty());
    std::fs::remove_file(&event).ok();
}

/// Decision lines in the events file: one request approved, another
/// rejected, by the rule and event that asked; a decision that finds
/// nothing pending is reported by its line.
#[test]
fn replay_takes_decisions_from_the_events_file() {
    let dir = std::env::temp_dir().join(format!("steward-decisions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    std::fs::write(
        &events,
        [
            r#"{"id":"p1","tenant":"acme","type":"pricing.recommended","occurred_at":"2026-11-21T09:00:00Z","payload":{"listing_id":"l1","current":"100.00","recommended":"150.00"}}"#,
            r#"{"id":"p2","tenant":"acme","type":"pricing.recommended","occurred_at":"2026-11-21T09:05:00Z","payload":{"listing_id":"l2","current":"100.00","recommended":"50.00"}}"#,
            r#"{"decision":"approve","rule":"price_changes","event":"p1","at":"2026-11-21T10:00:00Z","by":"owner@acme.com"}"#,
            r#"{"decision":"reject","rule":"price_changes","event":"p2","tenant":"acme","at":"2026-11-21T10:30:00Z"}"#,
            r#"{"decision":"reject","rule":"price_changes","event":"p2","at":"2026-11-21T10:31:00Z"}"#,
            r#"{"decision":"maybe","rule":"price_changes","event":"p2"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(ROOT)
        .args(["replay", "--rules", "rules", "--events"])
        .arg(&events)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let actions: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|a: &serde_json::Value| a["action"] != "approval_requested")
        .collect();
    assert_eq!(actions.len(), 2, "{stdout}");
    assert_eq!(actions[0]["action"], "apply_price");
    assert_eq!(actions[0]["args"]["listing_id"], "l1");
    assert_eq!(actions[0]["at"], "2026-11-21T10:00:00Z");
    assert_eq!(actions[1]["action"], "notify");
    assert_eq!(actions[1]["event"], "p2");
    assert_eq!(actions[1]["at"], "2026-11-21T10:30:00Z");
    assert!(
        stderr.contains("decided: line 3: approved `acme/price_changes/p1/")
            && stderr.contains("by owner@acme.com at 2026-11-21T10:00:00Z"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "rejected: line 5: no pending approval by rule `price_changes` for event `p2`"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("rejected: line 6: a decision: unknown variant `maybe`"),
        "{stderr}"
    );
    assert!(stderr.contains("2 decisions"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--until` past the horizon names the clock and `--horizon`, not an event.
#[test]
fn until_past_the_horizon_names_the_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(ROOT)
        .args([
            "replay",
            "--rules",
            "rules",
            "--events",
            "examples/events.jsonl",
            "--until",
            "2036-01-01T00:00:00Z",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot run the clock to --until 2036-01-01T00:00:00Z: it is more than 366d after the engine's clock")
            && stderr.contains("raise it with --horizon"),
        "{stderr}"
    );
    assert!(!stderr.contains("the event was not handled"), "{stderr}");
}

/// `explain` says what a watch on what did not happen started, and which
/// watches an event started again; and what a `changed` read.
#[test]
fn explain_shows_watches_and_what_changed() {
    let explain = |id: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
            .current_dir(ROOT)
            .args([
                "replay",
                "--rules",
                "rules",
                "--events",
                "examples/events.jsonl",
            ])
            .args(["--explain", id])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let started = explain("evt_09");
    assert!(
        started.contains("watches for `activity.logged` on `deal_id` = `d1`: runs at 2026-12-02T11:00:00Z if none comes"),
        "{started}"
    );
    let again = explain("evt_11");
    assert!(
        again.contains(
            "rule `stale_deal`: the quiet period of `d1` starts again, until 2026-12-03T10:00:00Z"
        ),
        "{again}"
    );
    // What a rule left for later: a timer, an approval, a schedule.
    assert!(
        explain("evt_01").contains("scheduled: a timer for `res_42` at 2026-11-29T15:00:00Z, unless `reservation.cancelled` with id = `res_42`")
    );
    assert!(explain("evt_04")
        .contains("scheduled: an approval from role `owner` until 2026-11-22T12:30:00Z"));
    assert!(
        explain("evt_17").contains("scheduled: a schedule for `u1`, first at 2026-11-28T13:00:00Z")
    );
    let changed = explain("evt_10");
    assert!(
        changed.contains(r#"if stage changed to "negotiation"  =>  true   (previous stage = "proposal", stage = "negotiation")"#),
        "{changed}"
    );
}
