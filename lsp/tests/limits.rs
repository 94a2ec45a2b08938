//! What keeps the server responsive: a document too long to analyse gets one
//! diagnostic saying so (and no work), and a request the client cancelled
//! before it was handled is answered `RequestCancelled` without being run.
//! The server runs on an in-memory connection with every message already
//! queued, so what it reads ahead is known.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use lsp_server::{Connection, Message, Notification, Request, RequestId, Response};
use serde_json::{json, Value};

const URI: &str = "untitled:big.stw";

/// Runs the server over `messages` (after the handshake) to the end and
/// returns what it sent.
fn session(messages: Vec<Message>) -> Vec<Message> {
    let (server, client) = Connection::memory();
    let mut all = vec![
        Message::Request(Request::new(
            RequestId::from(0),
            "initialize".into(),
            json!({"capabilities": {}, "initializationOptions": {"debounceMs": 0}}),
        )),
        Message::Notification(Notification::new("initialized".into(), json!({}))),
    ];
    all.extend(messages);
    all.push(Message::Request(Request::new(
        RequestId::from(999),
        "shutdown".into(),
        Value::Null,
    )));
    all.push(Message::Notification(Notification::new(
        "exit".into(),
        Value::Null,
    )));
    for m in all {
        client.sender.send(m).unwrap();
    }
    steward_lsp::run(&server).unwrap();
    drop(server);
    client.receiver.try_iter().collect()
}

fn open(text: &str) -> Message {
    Message::Notification(Notification::new(
        "textDocument/didOpen".into(),
        json!({"textDocument": {"uri": URI, "languageId": "steward", "version": 1, "text": text}}),
    ))
}

fn request(id: i32, method: &str, params: Value) -> Message {
    Message::Request(Request::new(RequestId::from(id), method.into(), params))
}

fn response(out: &[Message], id: i32) -> &Response {
    out.iter()
        .find_map(|m| match m {
            Message::Response(r) if r.id == RequestId::from(id) => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no response to {id} in {out:?}"))
}

fn doc() -> Value {
    json!({"textDocument": {"uri": URI}})
}

#[test]
fn a_document_too_long_to_analyse_says_so_and_costs_nothing() {
    let mut text = String::from("event booking { id: string  nights: int }\n");
    while text.len() <= steward_lsp::workspace::MAX_ANALYSED {
        text.push_str("when booking if nights > 3 then log \"long stay {id}\"\n");
    }
    let out = session(vec![
        open(&text),
        request(1, "textDocument/semanticTokens/full", doc()),
        request(
            2,
            "textDocument/formatting",
            json!({"textDocument": {"uri": URI}, "options": {"tabSize": 2, "insertSpaces": true}}),
        ),
        request(
            3,
            "textDocument/hover",
            json!({"textDocument": {"uri": URI}, "position": {"line": 1, "character": 6}}),
        ),
    ]);
    assert_eq!(
        response(&out, 1).result,
        Some(json!({"data": []})),
        "no tokens"
    );
    let refused = response(&out, 2)
        .error
        .as_ref()
        .expect("formatting is refused");
    assert!(refused.message.contains("`steward fmt`"), "{refused:?}");
    assert_eq!(response(&out, 3).result, Some(Value::Null), "no hover");
    let published: Vec<&Value> = out
        .iter()
        .filter_map(|m| match m {
            Message::Notification(n) if n.method == "textDocument/publishDiagnostics" => {
                Some(&n.params)
            }
            _ => None,
        })
        .collect();
    let last = published.last().expect("diagnostics are published");
    let diagnostics = last["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let message = diagnostics[0]["message"].as_str().unwrap();
    assert!(
        message.contains("1.0 MiB") && message.contains("`steward check`"),
        "{message}"
    );
}

#[test]
fn a_request_cancelled_before_it_is_handled_is_not_run() {
    let out = session(vec![
        open("event booking { id: string }\nwhen booking then log \"{id}\"\n"),
        request(1, "textDocument/semanticTokens/full", doc()),
        Message::Notification(Notification::new(
            "$/cancelRequest".into(),
            json!({"id": 1}),
        )),
        request(2, "textDocument/semanticTokens/full", doc()),
    ]);
    let cancelled = response(&out, 1).error.as_ref().expect("cancelled");
    assert_eq!(cancelled.code, -32800, "{cancelled:?}");
    let answered = response(&out, 2).result.as_ref().expect("answered");
    assert!(
        !answered["data"].as_array().unwrap().is_empty(),
        "{answered}"
    );
}
