//! The server as an editor sees it: the built binary spawned and spoken to in
//! JSON-RPC over stdio. Ranges are checked in UTF-16 units after non-ASCII
//! text; hover, completion, rename, formatting and the other requests are
//! checked on a two-file workspace; a burst of edits must end with the
//! diagnostics of the final text.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

mod common;

use common::{pos, uri, workspace, Client};
use serde_json::{json, Value};

const DECLS: &str = r#"## Who is staying.
type Guest {
  ## Where we write to them.
  email: string
  first_name: string
  phone: string?
  vip: bool
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

## Sent to every low-risk booking.
message welcome {
  to: guest.email
  subject: "Welcome, {guest.first_name}!"
  body: "Thanks for booking {nights} nights."
}
"#;

const RULES: &str = r#"when reservation.created if risk < 0.5 then send welcome

rule vip_note
  when reservation.created
  if guest.vip and channel == "airbnb"
  then
    let nights_left = max(nights - 1, 0)
    log "VIP {guest.first_name} for {nights_left}"
end

rule morning
  every "0 8 * * *" in "Europe/Paris"
  then log "good morning"
end
"#;

fn start(name: &str) -> (Client, String, String) {
    let root = workspace(name, &[("decls.stw", DECLS), ("rules.stw", RULES)]);
    let decls = uri(&root.join("decls.stw"));
    let rules = uri(&root.join("rules.stw"));
    let client = Client::start(&root, json!({"debounceMs": 10}));
    (client, decls, rules)
}

fn position_params(uri: &str, at: Value) -> Value {
    json!({"textDocument": {"uri": uri}, "position": at})
}

#[test]
fn diagnostics_count_utf16_units_after_non_ascii_text() {
    let (mut client, _, rules) = start("utf16");
    let text = "when reservation.created if \"Zoë 🎉\" == \"x\" or riks < 0.5 then send welcome\n";
    client.open(&rules, text);
    let published = client.diagnostics(&rules, |p| p["version"] == 1);
    let diags = published["diagnostics"].as_array().unwrap();
    let d = diags
        .iter()
        .find(|d| d["code"] == "E0202")
        .unwrap_or_else(|| panic!("no E0202 in {diags:?}"));
    // `riks` is at character 46 counting scalar values, 47 in UTF-16 units
    // (the emoji takes two; `ë` one), and would be 50 counting bytes.
    assert_eq!(d["range"]["start"], json!({"line": 0, "character": 47}));
    assert_eq!(d["range"]["end"], json!({"line": 0, "character": 51}));
    assert_eq!(d["severity"], 1);
    assert_eq!(d["source"], "steward");
    assert!(d["message"]
        .as_str()
        .unwrap()
        .contains("help: did you mean `risk`?"));

    // The quick fix replaces exactly the misspelled name.
    let actions = client.request(
        "textDocument/codeAction",
        json!({
            "textDocument": {"uri": rules},
            "range": d["range"],
            "context": {"diagnostics": [d]},
        }),
    );
    let action = &actions[0];
    assert_eq!(action["title"], "replace with `risk`");
    assert_eq!(action["kind"], "quickfix");
    let edits = &action["edit"]["changes"][&rules];
    assert_eq!(edits[0]["range"], d["range"]);
    assert_eq!(edits[0]["newText"], "risk");
    client.shutdown();
}

#[test]
fn files_on_disk_are_checked_as_one_program_with_open_documents() {
    let root = workspace(
        "disk",
        &[
            ("decls.stw", DECLS),
            (
                "broken.stw",
                "when reservation.created if riks < 1 then send welcome\n",
            ),
        ],
    );
    let broken = uri(&root.join("broken.stw"));
    let mut client = Client::start(&root, json!({"debounceMs": 10}));
    // Never opened: published from the file on disk, with the declarations
    // of the other file known.
    let published = client.diagnostics(&broken, |p| {
        !p["diagnostics"].as_array().unwrap().is_empty()
    });
    assert_eq!(published["diagnostics"][0]["code"], "E0202");
    // Opening it with fixed text clears them.
    client.open(
        &broken,
        "when reservation.created if risk < 1 then send welcome\n",
    );
    let fixed = client.diagnostics(&broken, |p| p["version"] == 1);
    assert_eq!(fixed["diagnostics"], json!([]));
    client.shutdown();
}

#[test]
fn hover_shows_types_docs_and_cron_fire_times() {
    let (mut client, _, rules) = start("hover");
    client.open(&rules, RULES);
    let hover = client.request(
        "textDocument/hover",
        position_params(&rules, pos(RULES, "risk < 0.5", 1)),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(text.contains("(field) risk: float"), "{text}");
    assert!(
        text.contains("The fraud score, from 0 (safe) to 1."),
        "{text}"
    );
    assert!(text.contains("in event `reservation.created`"), "{text}");
    assert_eq!(hover["range"]["start"], pos(RULES, "risk < 0.5", 0));

    let hover = client.request(
        "textDocument/hover",
        position_params(&rules, pos(RULES, "nights_left =", 2)),
    );
    assert!(hover["contents"]["value"]
        .as_str()
        .unwrap()
        .contains("let nights_left: int"));

    let hover = client.request(
        "textDocument/hover",
        position_params(&rules, pos(RULES, "0 8 * * *", 2)),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(text.contains("Next fires in Europe/Paris"), "{text}");
    assert_eq!(text.matches(" 08:00 ").count(), 3, "{text}");

    let hover = client.request(
        "textDocument/hover",
        position_params(&rules, pos(RULES, "send welcome", 6)),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(text.contains("message welcome"), "{text}");
    assert!(text.contains("Sent to every low-risk booking."), "{text}");

    // The standard library's docs.
    let hover = client.request(
        "textDocument/hover",
        position_params(&rules, pos(RULES, "max(", 1)),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(text.contains("extern fn max<T>(a: T, b: T) -> T"), "{text}");
    assert!(
        text.contains("The larger of two values of the same type."),
        "{text}"
    );
    client.shutdown();
}

fn labels(result: &Value) -> Vec<String> {
    result
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn completion_offers_events_fields_messages_and_union_members() {
    let (mut client, _, rules) = start("complete");
    let text = "rule r\n  when reservation.created\n  if guest.\n  then log \"x\"\nend\n";
    client.open(&rules, text);
    let items = client.request(
        "textDocument/completion",
        position_params(&rules, pos(text, "guest.", 6)),
    );
    let got = labels(&items);
    assert!(got.contains(&"email".to_string()), "{got:?}");
    assert!(got.contains(&"phone".to_string()), "{got:?}");
    let email = items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["label"] == "email")
        .unwrap();
    assert_eq!(email["detail"], "string");
    assert!(email["documentation"]["value"]
        .as_str()
        .unwrap()
        .contains("Where we write to them."));

    let text = "when reserv";
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": rules, "version": 2}, "contentChanges": [{"text": text}]}),
    );
    let got = labels(&client.request(
        "textDocument/completion",
        position_params(&rules, pos(text, "reserv", 6)),
    ));
    assert_eq!(got, vec!["reservation.created"]);

    let text = "when reservation.created if channel == \"a\" then send w";
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": rules, "version": 3}, "contentChanges": [{"text": text}]}),
    );
    let items = client.request(
        "textDocument/completion",
        position_params(&rules, pos(text, "\"a\"", 2)),
    );
    assert_eq!(labels(&items), vec!["airbnb", "vrbo", "direct"]);
    // The member replaces what is typed between the quotes.
    assert_eq!(
        items[0]["textEdit"]["range"]["start"],
        pos(text, "\"a\"", 1)
    );
    let got = labels(&client.request(
        "textDocument/completion",
        position_params(&rules, pos(text, "send w", 6)),
    ));
    assert_eq!(got, vec!["welcome"]);
    client.shutdown();
}

#[test]
fn definition_references_and_rename_span_files() {
    let (mut client, decls, rules) = start("rename");
    client.open(&rules, RULES);
    let at = position_params(&rules, pos(RULES, "guest.vip", 7));
    let def = client.request("textDocument/definition", at.clone());
    assert_eq!(def["uri"], decls);
    assert_eq!(def["range"]["start"], pos(DECLS, "vip: bool", 0));

    let refs = client.request(
        "textDocument/references",
        json!({"textDocument": {"uri": rules}, "position": pos(RULES, "guest.vip", 7), "context": {"includeDeclaration": true}}),
    );
    assert_eq!(refs.as_array().unwrap().len(), 2, "{refs}");

    // Renaming `guest` (a field of the event) from a use in the rules file
    // edits the declaration, the rules and the message's templates.
    let at = position_params(&rules, pos(RULES, "guest.vip", 2));
    let range = client.request("textDocument/prepareRename", at.clone());
    assert_eq!(range["start"], pos(RULES, "guest.vip", 0));
    let mut params = at.clone();
    params["newName"] = json!("visitor");
    let edit = client.request("textDocument/rename", params);
    let in_decls = edit["changes"][&decls].as_array().unwrap();
    let in_rules = edit["changes"][&rules].as_array().unwrap();
    assert_eq!(
        in_decls.len(),
        3,
        "declaration, `to:` and the subject: {edit}"
    );
    assert_eq!(in_rules.len(), 2, "{edit}");
    assert!(in_rules.iter().all(|e| e["newText"] == "visitor"));

    // Refused, with a reason: a taken name, an invalid one, the stdlib.
    let mut params = at.clone();
    params["newName"] = json!("risk");
    let refused = client.call("textDocument/rename", params);
    assert_eq!(refused["error"]["message"], "`risk` is already declared");
    let mut params = at;
    params["newName"] = json!("not a name");
    let refused = client.call("textDocument/rename", params);
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not a valid name"));
    let refused = client.call(
        "textDocument/prepareRename",
        position_params(&rules, pos(RULES, "max(", 1)),
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("standard library"),
        "{refused}"
    );
    client.shutdown();
}

#[test]
fn formatting_symbols_tokens_and_inlay_hints() {
    let (mut client, _, rules) = start("format");
    let messy = "when   reservation.created if risk<0.5 then send welcome\n";
    client.open(&rules, messy);
    let edits = client.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": rules}, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    assert_eq!(
        edits[0]["newText"],
        "when reservation.created if risk < 0.5 then send welcome\n"
    );
    // A file that does not parse is left alone, without an error.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": rules, "version": 2}, "contentChanges": [{"text": "when reservation.created if"}]}),
    );
    let edits = client.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": rules}, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    assert_eq!(edits, json!([]));

    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": rules, "version": 3}, "contentChanges": [{"text": RULES}]}),
    );
    let symbols = client.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": rules}}),
    );
    let names: Vec<&str> = symbols
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["when reservation.created", "vip_note", "morning"]
    );

    let tokens = client.request(
        "textDocument/semanticTokens/full",
        json!({"textDocument": {"uri": rules}}),
    );
    let data = tokens["data"].as_array().unwrap();
    // The first token is `when` (keyword, index 0) at 0:0, four units long;
    // the second is the event name (index 3) right after it.
    assert_eq!(
        data[..5],
        [json!(0), json!(0), json!(4), json!(0), json!(0)]
    );
    assert_eq!(data[5..9], [json!(0), json!(5), json!(19), json!(3)]);

    let hints = client.request(
        "textDocument/inlayHint",
        json!({"textDocument": {"uri": rules}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 20, "character": 0}}}),
    );
    assert_eq!(hints.as_array().unwrap().len(), 1, "{hints}");
    assert_eq!(hints[0]["label"], ": int");
    assert_eq!(hints[0]["position"], pos(RULES, " = max(", 0));
    assert_eq!(hints[0]["textEdits"][0]["newText"], ": int");
    client.shutdown();
}

#[test]
fn a_burst_of_edits_ends_with_the_diagnostics_of_the_final_text() {
    let (mut client, _, rules) = start("burst");
    // Not in the canonical layout, so formatting shows the server's text.
    let start = "when reservation.created if risk<0.5 then log \"\"\n";
    client.open(&rules, start);
    client.diagnostics(&rules, |p| p["version"] == 1);
    // 50 edits, each typing at the start of the log text, sent at once; the
    // 25th types an unknown field, the 50th deletes it again.
    let insert_at = pos(start, "\"\"", 1);
    for version in 2..=51 {
        let (text, at) = match version {
            26 => (" {riks}".to_string(), insert_at.clone()),
            51 => (String::new(), insert_at.clone()),
            _ => ("x".to_string(), insert_at.clone()),
        };
        let change = if version == 51 {
            // Delete the ` {riks}` typed at version 26, now after the 24
            // `x`s typed since.
            let from = at["character"].as_u64().unwrap() + 24;
            let start = json!({"line": 0, "character": from});
            let end = json!({"line": 0, "character": from + 7});
            json!({"range": {"start": start, "end": end}, "text": text})
        } else {
            json!({"range": {"start": at, "end": at}, "text": text})
        };
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": rules, "version": version}, "contentChanges": [change]}),
        );
    }
    let last = client.diagnostics(&rules, |p| p["version"] == 51);
    assert_eq!(last["diagnostics"], json!([]), "{last}");
    // The final text is the one the server holds: 48 `x`s, no `riks`.
    let edits = client.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": rules}, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    let expected = format!(
        "when reservation.created if risk < 0.5 then log \"{}\"\n",
        "x".repeat(48)
    );
    assert_eq!(edits[0]["newText"], expected);
    // Nothing about an earlier version was published after the last one.
    std::thread::sleep(std::time::Duration::from_millis(100));
    client.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": rules}}),
    );
    assert!(!client.notifications.iter().any(|m| {
        m["method"] == "textDocument/publishDiagnostics"
            && m["params"]["uri"] == rules
            && m["params"]["version"].as_i64().unwrap_or(0) < 51
    }));
    client.shutdown();
}

#[test]
fn requests_on_a_half_typed_file_never_fail() {
    let (mut client, _, rules) = start("halfway");
    let text = "rule r\n  when reservation.created\n  if guest. and \"é\" == channel == \n  then\n    let x = \n    send\nend\nwhen reserva\nevery \"0 61 * * *\" then log {\n";
    client.open(&rules, text);
    let lines: Vec<&str> = text.split('\n').collect();
    for (line, content) in lines.iter().enumerate() {
        let width: usize = content.chars().map(char::len_utf16).sum();
        for character in 0..=width + 1 {
            let at = json!({"line": line, "character": character});
            for method in [
                "textDocument/hover",
                "textDocument/completion",
                "textDocument/definition",
            ] {
                client.request(method, position_params(&rules, at.clone()));
            }
        }
    }
    for method in [
        "textDocument/documentSymbol",
        "textDocument/semanticTokens/full",
    ] {
        client.request(method, json!({"textDocument": {"uri": rules}}));
    }
    // Positions past the end of the file, or in a document never opened.
    client.request(
        "textDocument/hover",
        position_params(&rules, json!({"line": 400, "character": 9})),
    );
    client.request(
        "textDocument/hover",
        position_params("file:///nowhere.stw", json!({"line": 0, "character": 0})),
    );
    client.shutdown();
}
