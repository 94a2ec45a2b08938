//! The stdio transport: `Content-Length` frames in, messages out, and a
//! reader that survives whatever the other side sends.
//!
//! `lsp_server::Connection::stdio` stops the server on the first malformed
//! frame and allocates whatever length a header claims. This reader instead
//! answers a body that is not JSON with -32700 and one that is JSON but not a
//! JSON-RPC message with -32600 (both with a null id, as JSON-RPC says),
//! refuses a frame longer than [`MAX_FRAME`] without allocating it, and after
//! any bad frame (no `Content-Length`, a length that lies) resynchronises at
//! the next `Content-Length:` header.

use std::io::{self, BufRead, Write};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use lsp_server::{Connection, Message};

/// The largest frame read (64 MiB): an open document larger than this could
/// not be worked on anyway.
pub const MAX_FRAME: usize = 64 << 20;

/// The longest header block read before giving up on it.
const MAX_HEADER: usize = 8 << 10;

const HEADER: &[u8] = b"Content-Length:";

/// A connection over stdin and stdout with the forgiving reader; join the
/// handle after the server returns.
pub fn stdio() -> (Connection, JoinHandle<()>, JoinHandle<()>) {
    let out = Arc::new(Mutex::new(io::stdout()));
    let (writer_tx, writer_rx) = crossbeam_channel::bounded::<Message>(0);
    let writer_out = out.clone();
    let writer = std::thread::spawn(move || {
        for message in writer_rx {
            let Ok(mut out) = writer_out.lock() else {
                return;
            };
            if message.write(&mut *out).is_err() {
                return;
            }
        }
    });
    let (reader_tx, reader_rx) = crossbeam_channel::bounded::<Message>(0);
    let reader = std::thread::spawn(move || {
        let stdin = io::stdin();
        let mut frames = Frames::new(stdin.lock());
        read_loop(&mut frames, &reader_tx, &mut |error| {
            if let Ok(mut out) = out.lock() {
                let _ = write_frame(&mut *out, &error);
            }
        });
    });
    (
        Connection {
            sender: writer_tx,
            receiver: reader_rx,
        },
        reader,
        writer,
    )
}

/// Reads messages until the input ends or `exit` arrives; each bad frame's
/// error response goes to `reply`.
pub fn read_loop<R: BufRead>(
    frames: &mut Frames<R>,
    to_server: &Sender<Message>,
    reply: &mut dyn FnMut(serde_json::Value),
) {
    loop {
        match frames.next_frame() {
            Ok(Frame::End) => return,
            Ok(Frame::Body(body)) => match decode(&body) {
                Ok(message) => {
                    let exit = matches!(&message, Message::Notification(n) if n.method == "exit");
                    if to_server.send(message).is_err() || exit {
                        return;
                    }
                }
                Err(error) => {
                    reply(error);
                    frames.resync_within(body);
                }
            },
            Ok(Frame::Refused(reason)) => reply(error_response(-32600, &reason)),
            Err(_) => return,
        }
    }
}

/// A body as a message, or the error response it gets.
fn decode(body: &[u8]) -> Result<Message, serde_json::Value> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| error_response(-32700, &format!("parse error: {e}")))?;
    serde_json::from_value::<Message>(value).map_err(|e| {
        error_response(
            -32600,
            &format!("not a JSON-RPC request, response or notification: {e}"),
        )
    })
}

fn error_response(code: i64, message: &str) -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message },
    })
}

fn write_frame(out: &mut impl Write, value: &serde_json::Value) -> io::Result<()> {
    let text = value.to_string();
    write!(out, "Content-Length: {}\r\n\r\n{text}", text.len())?;
    out.flush()
}

pub enum Frame {
    Body(Vec<u8>),
    /// A frame that was not read (too long, or its header is broken); the
    /// reader has moved on to the next header.
    Refused(String),
    End,
}

/// `Content-Length` framing over a reader, with a buffer of bytes read but
/// not yet used (what follows a body whose length lied).
pub struct Frames<R> {
    input: R,
    pending: Vec<u8>,
}

impl<R: BufRead> Frames<R> {
    pub fn new(input: R) -> Frames<R> {
        Frames {
            input,
            pending: Vec::new(),
        }
    }

    /// Reads one more chunk into `pending`; false at the end of the input.
    fn fill(&mut self) -> io::Result<bool> {
        let chunk = self.input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(false);
        }
        let n = chunk.len();
        self.pending.extend_from_slice(chunk);
        self.input.consume(n);
        Ok(true)
    }

    pub fn next_frame(&mut self) -> io::Result<Frame> {
        // The header block, up to the blank line.
        let end = loop {
            if let Some(i) = find(&self.pending, b"\r\n\r\n") {
                break i;
            }
            if self.pending.len() > MAX_HEADER {
                self.skip_to_header(1);
                if self.pending.len() > MAX_HEADER {
                    self.pending.clear();
                }
                return Ok(Frame::Refused("a header block that never ends".into()));
            }
            if !self.fill()? {
                return Ok(Frame::End);
            }
        };
        // Garbage before a header: drop it and say so.
        let head = self.pending.get(..end).unwrap_or_default();
        if let Some(i) = find(head, HEADER).filter(|&i| i > 0) {
            let line_start = head.get(..i).is_some_and(|h| h.ends_with(b"\n"));
            if !line_start {
                self.pending.drain(..i);
                return Ok(Frame::Refused("bytes outside any frame".into()));
            }
        }
        let header =
            String::from_utf8_lossy(self.pending.get(..end).unwrap_or_default()).into_owned();
        self.pending.drain(..end + 4);
        let length = header.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<u64>())
        });
        let length = match length {
            Some(Ok(n)) if n <= MAX_FRAME as u64 => n as usize,
            Some(Ok(n)) => {
                self.skip_to_header(0);
                return Ok(Frame::Refused(format!(
                    "a frame of {n} bytes is longer than the {MAX_FRAME} this server reads"
                )));
            }
            Some(Err(_)) => {
                self.skip_to_header(0);
                return Ok(Frame::Refused(
                    "a Content-Length that is not a number".into(),
                ));
            }
            None => {
                self.skip_to_header(0);
                return Ok(Frame::Refused("a frame without Content-Length".into()));
            }
        };
        while self.pending.len() < length {
            if !self.fill()? {
                return Ok(Frame::End);
            }
        }
        let rest = self.pending.split_off(length);
        let body = std::mem::replace(&mut self.pending, rest);
        Ok(Frame::Body(body))
    }

    /// Drops pending bytes up to the next `Content-Length:` at or after
    /// `from` (all of them if there is none yet; more input may bring it).
    fn skip_to_header(&mut self, from: usize) {
        let from = from.min(self.pending.len());
        match find(self.pending.get(from..).unwrap_or_default(), HEADER) {
            Some(i) => {
                self.pending.drain(..from + i);
            }
            None => {
                // Keep a tail that could be the start of a header.
                let keep = self.pending.len().saturating_sub(HEADER.len());
                self.pending.drain(..keep.max(from).min(self.pending.len()));
            }
        }
    }

    /// After a body that was not a message: if a header starts inside it (its
    /// length claimed more than the message had), read on from there.
    pub fn resync_within(&mut self, body: Vec<u8>) {
        if let Some(i) = find(&body, HEADER) {
            let mut rest = body.get(i..).unwrap_or_default().to_vec();
            rest.extend_from_slice(&self.pending);
            self.pending = rest;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
