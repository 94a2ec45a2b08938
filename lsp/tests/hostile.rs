//! The language server binary fed malformed frames, lying lengths and
//! garbage: each gets an error response (or is skipped), and a normal request
//! after them is still answered.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::io::{BufReader, Write};
use std::process::{Command, Stdio};

use steward_lsp::transport::{Frame, Frames};

fn frame(body: &str) -> Vec<u8> {
    format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

#[test]
fn malformed_frames_are_answered_and_the_server_goes_on() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_steward-lsp"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = Vec::new();
    // Garbage before any frame, and a frame without Content-Length.
    input.extend_from_slice(b"hello there");
    input.extend_from_slice(b"Content-Type: text/plain\r\n\r\n");
    // Invalid JSON with a correct length; JSON that is not JSON-RPC.
    input.extend(frame("{not json"));
    input.extend(frame("[1, 2, 3]"));
    // Lengths too large to allocate.
    input.extend_from_slice(b"Content-Length: 99999999999\r\n\r\n{}");
    input.extend_from_slice(b"Content-Length: 1000000000\r\n\r\n{}");
    input.extend_from_slice(b"Content-Length: many\r\n\r\n{}");
    // The handshake.
    input.extend(frame(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}"#,
    ));
    input.extend(frame(
        r#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#,
    ));
    // A length that claims more than the message has: it swallows the start
    // of the next frame, which the reader must find again.
    let short = r#"{"jsonrpc":"2.0","method":"$/x"}"#;
    input.extend(format!("Content-Length: {}\r\n\r\n{short}", short.len() + 40).into_bytes());
    let padding = format!(
        r#"{{"jsonrpc":"2.0","method":"$/cancelRequest","params":{{"id":12345}},"pad":"{}"}}"#,
        "x".repeat(100)
    );
    input.extend(frame(&padding));
    // The request that must be answered.
    input.extend(frame(r#"{"jsonrpc":"2.0","id":99,"method":"shutdown"}"#));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&input).unwrap();
    stdin.flush().unwrap();

    let mut frames = Frames::new(BufReader::new(child.stdout.take().unwrap()));
    let mut errors = Vec::new();
    let mut initialized = false;
    loop {
        let body = match frames.next_frame().unwrap() {
            Frame::Body(body) => body,
            Frame::Refused(reason) => panic!("the server wrote a bad frame: {reason}"),
            Frame::End => panic!("the server stopped; errors so far: {errors:?}"),
        };
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if value["id"].is_null() && value.get("error").is_some() {
            errors.push(value["error"]["code"].as_i64().unwrap());
        } else if value["id"] == 1 {
            initialized = true;
        } else if value["id"] == 99 {
            assert!(value.get("error").is_none(), "{value}");
            break;
        }
    }
    assert!(initialized);
    assert!(errors.contains(&-32700), "{errors:?}");
    assert!(errors.contains(&-32600), "{errors:?}");
    // The garbage and the header without a length (one header block), bad
    // JSON, not JSON-RPC, two oversized lengths, not a number, the lying length.
    assert_eq!(errors.len(), 7, "{errors:?}");
    stdin
        .write_all(&frame(r#"{"jsonrpc":"2.0","method":"exit"}"#))
        .unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
