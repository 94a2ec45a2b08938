//! The protocol loop. One thread reads messages in order and handles each to
//! the end before the next, so edits are applied in the order they were sent
//! and every answer is about the text as it is at that point.
//!
//! Diagnostics are debounced: an edit schedules a publication `debounce`
//! later, and further edits before then push it back, so a burst of edits is
//! analysed once, for its final text. A request in between (hover,
//! completion...) analyses the current text at once if it changed.
//!
//! Before a request is handled, the messages already received are read
//! ahead: a `$/cancelRequest` for it among them answers it with
//! `RequestCancelled` and no work. A document longer than
//! [`MAX_ANALYSED`] is left out of the analysis and gets one diagnostic that
//! says so, so no single file can stall the loop.
//!
//! Handlers run under `catch_unwind`: a bug answers `null` and is logged,
//! and the server goes on.

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{
    Cancel, DidChangeTextDocument, DidChangeWatchedFiles, DidCloseTextDocument,
    DidOpenTextDocument, LogMessage, Notification as _, PublishDiagnostics,
};
use lsp_types::request::{
    CodeActionRequest, Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest,
    InlayHintRequest, PrepareRenameRequest, References, RegisterCapability, Rename, Request as _,
    SemanticTokensFullRequest,
};
use lsp_types::{
    CodeActionKind, CodeActionOptions, CodeActionProviderCapability, CompletionOptions,
    CompletionResponse, DidChangeWatchedFilesRegistrationOptions, DocumentSymbolResponse,
    FileSystemWatcher, GlobPattern, GotoDefinitionResponse, HoverProviderCapability,
    InitializeParams, InitializeResult, LogMessageParams, MessageType, OneOf,
    PrepareRenameResponse, PublishDiagnosticsParams, Registration, RegistrationParams,
    RenameOptions, SemanticTokens, SemanticTokensFullOptions, SemanticTokensOptions,
    SemanticTokensServerCapabilities, ServerCapabilities, ServerInfo, TextDocumentPositionParams,
    TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions, Url,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use steward::check::Analysis;
use steward::diag::FileId;

use crate::convert;
use crate::features::{actions, completion, diagnostics, hover, navigation, symbols, tokens};
use crate::workspace::{Workspace, MAX_ANALYSED};

/// How long after the last edit diagnostics are published, unless the client
/// sets `debounceMs` in its initialization options.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(10);

/// What the server announces it can do.
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                ..Default::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), "\"".into()]),
            ..Default::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: Default::default(),
        })),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        semantic_tokens_provider: Some(SemanticTokensServerCapabilities::SemanticTokensOptions(
            SemanticTokensOptions {
                legend: tokens::legend(),
                full: Some(SemanticTokensFullOptions::Bool(true)),
                range: None,
                work_done_progress_options: Default::default(),
            },
        )),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
            ..Default::default()
        })),
        inlay_hint_provider: Some(OneOf::Left(true)),
        ..Default::default()
    }
}

/// Runs the server over stdin and stdout until the client says `exit`.
pub fn run_stdio() -> Result<(), String> {
    let (connection, reader, writer) = crate::transport::stdio();
    let result = run(&connection);
    drop(connection);
    // The reader may be blocked on stdin after a server error; only the
    // writer must finish (it flushes what is left).
    let _ = writer.join();
    if result.is_ok() {
        let _ = reader.join();
    }
    result
}

/// Runs the server on a connection: the `initialize` handshake, then the
/// message loop.
pub fn run(connection: &Connection) -> Result<(), String> {
    let (id, params) = connection.initialize_start().map_err(|e| e.to_string())?;
    let params: InitializeParams = serde_json::from_value(params).map_err(|e| e.to_string())?;
    let result = InitializeResult {
        capabilities: capabilities(),
        server_info: Some(ServerInfo {
            name: "steward".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
    };
    connection
        .initialize_finish(id, serde_json::to_value(result).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let mut server = Server::new(connection, &params);
    server.run()
}

#[allow(deprecated)] // `root_uri` is how older clients give the root.
fn root_of(params: &InitializeParams) -> Option<std::path::PathBuf> {
    params
        .workspace_folders
        .as_ref()
        .and_then(|f| f.first())
        .map(|f| f.uri.clone())
        .or_else(|| params.root_uri.clone())
        .and_then(|uri| uri.to_file_path().ok())
}

/// Why a request got no answer.
enum Failure {
    /// The parameters did not fit the method.
    Invalid(String),
    /// The request was understood and refused (a rename onto a taken name).
    Refused(String),
    Unknown,
}

struct Server<'a> {
    connection: &'a Connection,
    workspace: Workspace,
    /// The latest analysis in which every file parsed: the types of `let`s
    /// in an item being typed come from it.
    earlier: Option<Arc<Analysis>>,
    debounce: Duration,
    /// When to publish diagnostics, if an edit is waiting for it.
    deadline: Option<Instant>,
    /// Documents edited since the last publication: they get diagnostics
    /// (for their new version) even if unchanged.
    edited: HashSet<Url>,
    published: HashMap<Url, Vec<lsp_types::Diagnostic>>,
    watch_files: bool,
    next_request: i32,
    /// Messages read ahead (to find cancellations), to handle in order.
    queued: VecDeque<Message>,
    /// `shutdown` was answered: only `exit` is expected.
    shut_down: bool,
}

impl<'a> Server<'a> {
    fn new(connection: &'a Connection, params: &InitializeParams) -> Server<'a> {
        let debounce = params
            .initialization_options
            .as_ref()
            .and_then(|o| o.get("debounceMs"))
            .and_then(Value::as_u64)
            .map_or(DEFAULT_DEBOUNCE, Duration::from_millis);
        let watch_files = params
            .capabilities
            .workspace
            .as_ref()
            .and_then(|w| w.did_change_watched_files.as_ref())
            .and_then(|w| w.dynamic_registration)
            .unwrap_or(false);
        let (workspace, problems) = Workspace::new(root_of(params));
        let server = Server {
            connection,
            workspace,
            earlier: None,
            debounce,
            deadline: None,
            edited: HashSet::new(),
            published: HashMap::new(),
            watch_files,
            next_request: 0,
            queued: VecDeque::new(),
            shut_down: false,
        };
        for problem in problems {
            server.log(MessageType::WARNING, problem);
        }
        server
    }

    fn run(&mut self) -> Result<(), String> {
        // The files on disk get their diagnostics at once.
        if self.workspace.documents().next().is_some() {
            self.deadline = Some(Instant::now());
        }
        loop {
            // A publication that is due goes first, however many messages wait.
            if self.deadline.is_some_and(|d| d <= Instant::now()) {
                self.publish();
            }
            let message = match self.queued.pop_front() {
                Some(message) => message,
                None => match self.deadline {
                    Some(deadline) => match self.connection.receiver.recv_deadline(deadline) {
                        Ok(message) => message,
                        Err(RecvTimeoutError::Timeout) => {
                            self.publish();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return Ok(()),
                    },
                    None => match self.connection.receiver.recv() {
                        Ok(message) => message,
                        Err(_) => return Ok(()),
                    },
                },
            };
            match message {
                // Not `Connection::handle_shutdown`: it reads `exit` from the
                // channel, and it may be queued here already.
                Message::Request(request) if request.method == "shutdown" => {
                    self.shut_down = true;
                    self.send(Message::Response(Response::new_ok(request.id, Value::Null)));
                }
                Message::Request(request) if self.shut_down => {
                    self.send(Message::Response(Response::new_err(
                        request.id,
                        ErrorCode::InvalidRequest as i32,
                        "the server is shutting down".into(),
                    )));
                }
                Message::Request(request) => {
                    if self.cancelled(&request.id) {
                        self.send(Message::Response(Response::new_err(
                            request.id,
                            ErrorCode::RequestCanceled as i32,
                            "cancelled by the client before it was handled".into(),
                        )));
                        continue;
                    }
                    self.request(request);
                }
                Message::Notification(n) if n.method == "exit" => return Ok(()),
                Message::Notification(n) => self.notification(n),
                Message::Response(_) => {}
            }
        }
    }

    /// Whether the client cancelled request `id` in a message already
    /// received: requests are handled in order, so a cancellation can only
    /// reach one still waiting. The messages read to find out stay queued.
    fn cancelled(&mut self, id: &RequestId) -> bool {
        while let Ok(message) = self.connection.receiver.try_recv() {
            self.queued.push_back(message);
        }
        let cancel = self.queued.iter().position(|m| match m {
            Message::Notification(n) if n.method == Cancel::METHOD => {
                serde_json::from_value::<lsp_types::CancelParams>(n.params.clone()).is_ok_and(|p| {
                    match p.id {
                        lsp_types::NumberOrString::Number(n) => *id == RequestId::from(n),
                        lsp_types::NumberOrString::String(s) => *id == RequestId::from(s),
                    }
                })
            }
            _ => false,
        });
        cancel.is_some_and(|at| self.queued.remove(at).is_some())
    }

    fn send(&self, message: Message) {
        // A closed channel means the client is gone; the loop ends on its own.
        let _ = self.connection.sender.send(message);
    }

    fn log(&self, typ: MessageType, message: String) {
        self.send(Message::Notification(Notification::new(
            LogMessage::METHOD.into(),
            LogMessageParams { typ, message },
        )));
    }

    fn schedule(&mut self) {
        self.deadline = Some(Instant::now() + self.debounce);
    }

    /// Publishes the diagnostics of every file that was edited or whose
    /// diagnostics changed, and clears those of files that are gone.
    fn publish(&mut self) {
        self.deadline = None;
        let analysis = self.workspace.analysis();
        if !analysis
            .diagnostics
            .iter()
            .any(|d| d.code.as_str().starts_with("E01"))
        {
            self.earlier = Some(analysis.clone());
        }
        let uri_of = |file: FileId| self.workspace.uri(&analysis, file);
        let mut current = HashMap::new();
        for doc in self.workspace.documents() {
            let Some(file) = self.workspace.file_id(&analysis, &doc.uri) else {
                continue;
            };
            let diagnostics = if doc.too_large() {
                vec![too_large(doc.text.len())]
            } else {
                diagnostics::of_file(&analysis, file, &uri_of)
            };
            let changed = self.published.get(&doc.uri) != Some(&diagnostics);
            if changed || self.edited.contains(&doc.uri) {
                self.send(Message::Notification(Notification::new(
                    PublishDiagnostics::METHOD.into(),
                    PublishDiagnosticsParams {
                        uri: doc.uri.clone(),
                        diagnostics: diagnostics.clone(),
                        version: doc.version,
                    },
                )));
            }
            current.insert(doc.uri.clone(), diagnostics);
        }
        for uri in self.published.keys() {
            if !current.contains_key(uri) {
                self.send(Message::Notification(Notification::new(
                    PublishDiagnostics::METHOD.into(),
                    PublishDiagnosticsParams {
                        uri: uri.clone(),
                        diagnostics: Vec::new(),
                        version: None,
                    },
                )));
            }
        }
        self.published = current;
        self.edited.clear();
    }

    fn notification(&mut self, n: Notification) {
        let method = n.method.clone();
        let outcome = catch_unwind(AssertUnwindSafe(|| self.handle_notification(n)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(problem)) => self.log(MessageType::WARNING, format!("{method}: {problem}")),
            Err(panic) => self.log(
                MessageType::ERROR,
                format!("{method}: internal error: {}", panic_text(&panic)),
            ),
        }
    }

    fn handle_notification(&mut self, n: Notification) -> Result<(), String> {
        match n.method.as_str() {
            "initialized" if self.watch_files => self.register_watcher(),
            DidOpenTextDocument::METHOD => {
                let p: lsp_types::DidOpenTextDocumentParams = params(n.params)?;
                let doc = p.text_document;
                self.edited.insert(doc.uri.clone());
                self.workspace.open(doc.uri, doc.text, doc.version);
                self.schedule();
            }
            DidChangeTextDocument::METHOD => {
                let p: lsp_types::DidChangeTextDocumentParams = params(n.params)?;
                let doc = p.text_document;
                self.workspace
                    .change(&doc.uri, doc.version, p.content_changes)?;
                self.edited.insert(doc.uri);
                self.schedule();
            }
            DidCloseTextDocument::METHOD => {
                let p: lsp_types::DidCloseTextDocumentParams = params(n.params)?;
                self.workspace.close(&p.text_document.uri);
                self.schedule();
            }
            DidChangeWatchedFiles::METHOD => {
                let p: lsp_types::DidChangeWatchedFilesParams = params(n.params)?;
                for change in p.changes {
                    self.workspace.file_changed(&change.uri);
                }
                self.schedule();
            }
            _ => {}
        }
        Ok(())
    }

    /// Asks the client to report `.stw` files created, changed or deleted
    /// outside the editor.
    fn register_watcher(&mut self) {
        let options = DidChangeWatchedFilesRegistrationOptions {
            watchers: vec![FileSystemWatcher {
                glob_pattern: GlobPattern::String("**/*.stw".into()),
                kind: None,
            }],
        };
        let params = RegistrationParams {
            registrations: vec![Registration {
                id: "steward-watch-stw".into(),
                method: DidChangeWatchedFiles::METHOD.into(),
                register_options: serde_json::to_value(options).ok(),
            }],
        };
        self.next_request += 1;
        self.send(Message::Request(Request::new(
            RequestId::from(format!("steward-{}", self.next_request)),
            RegisterCapability::METHOD.into(),
            params,
        )));
    }

    fn request(&mut self, request: Request) {
        let id = request.id.clone();
        let method = request.method.clone();
        let outcome = catch_unwind(AssertUnwindSafe(|| self.handle_request(request)));
        let response = match outcome {
            Ok(Ok(value)) => Response::new_ok(id, value),
            Ok(Err(Failure::Invalid(problem))) => {
                Response::new_err(id, ErrorCode::InvalidParams as i32, problem)
            }
            Ok(Err(Failure::Refused(problem))) => {
                Response::new_err(id, ErrorCode::RequestFailed as i32, problem)
            }
            Ok(Err(Failure::Unknown)) => Response::new_err(
                id,
                ErrorCode::MethodNotFound as i32,
                format!("`{method}` is not supported"),
            ),
            Err(panic) => {
                self.log(
                    MessageType::ERROR,
                    format!("{method}: internal error: {}", panic_text(&panic)),
                );
                Response::new_ok(id, Value::Null)
            }
        };
        self.send(Message::Response(response));
    }

    /// The analysis, the file and the byte offset a position request is about.
    fn at(
        &mut self,
        position: &TextDocumentPositionParams,
    ) -> Option<(Arc<Analysis>, FileId, u32)> {
        let analysis = self.workspace.analysis();
        let file = self
            .workspace
            .file_id(&analysis, &position.text_document.uri)?;
        let offset = convert::offset(&analysis.sources.get(file).lines, position.position);
        Some((analysis, file, offset))
    }

    fn file(&mut self, uri: &Url) -> Option<(Arc<Analysis>, FileId)> {
        let analysis = self.workspace.analysis();
        let file = self.workspace.file_id(&analysis, uri)?;
        Some((analysis, file))
    }

    /// Answers a request: its parameters read, and given to the method's
    /// handler.
    fn handle_request(&mut self, request: Request) -> Result<Value, Failure> {
        let p = request.params;
        match request.method.as_str() {
            HoverRequest::METHOD => self.hover(params(p).map_err(Failure::Invalid)?),
            Completion::METHOD => self.completion(params(p).map_err(Failure::Invalid)?),
            GotoDefinition::METHOD => self.definition(params(p).map_err(Failure::Invalid)?),
            References::METHOD => self.references(params(p).map_err(Failure::Invalid)?),
            PrepareRenameRequest::METHOD => {
                self.prepare_rename(params(p).map_err(Failure::Invalid)?)
            }
            Rename::METHOD => self.rename(params(p).map_err(Failure::Invalid)?),
            DocumentSymbolRequest::METHOD => {
                self.document_symbols(params(p).map_err(Failure::Invalid)?)
            }
            Formatting::METHOD => self.formatting(params(p).map_err(Failure::Invalid)?),
            SemanticTokensFullRequest::METHOD => {
                self.semantic_tokens(params(p).map_err(Failure::Invalid)?)
            }
            CodeActionRequest::METHOD => self.code_actions(params(p).map_err(Failure::Invalid)?),
            InlayHintRequest::METHOD => self.inlay_hints(params(p).map_err(Failure::Invalid)?),
            _ => Err(Failure::Unknown),
        }
    }

    /// `textDocument/hover`: what is under the cursor.
    fn hover(&mut self, p: lsp_types::HoverParams) -> Result<Value, Failure> {
        let found =
            self.at(&p.text_document_position_params)
                .and_then(|(analysis, file, offset)| {
                    hover::hover(&analysis, file, offset, chrono::Utc::now())
                });
        Ok(to_json(found))
    }

    /// `textDocument/completion`: what may be written at the cursor.
    fn completion(&mut self, p: lsp_types::CompletionParams) -> Result<Value, Failure> {
        let earlier = self.earlier.clone();
        let items = self
            .at(&p.text_document_position)
            .map(|(analysis, file, offset)| {
                completion::complete(&analysis, earlier.as_deref(), file, offset)
            })
            .unwrap_or_default();
        Ok(to_json(CompletionResponse::Array(items)))
    }

    /// `textDocument/definition`: where the name under the cursor is
    /// declared.
    fn definition(&mut self, p: lsp_types::GotoDefinitionParams) -> Result<Value, Failure> {
        let found =
            self.at(&p.text_document_position_params)
                .and_then(|(analysis, file, offset)| {
                    let uri_of = |f: FileId| self.workspace.uri(&analysis, f);
                    navigation::definition(&analysis, file, offset, &uri_of)
                });
        Ok(to_json(found.map(GotoDefinitionResponse::Scalar)))
    }

    /// `textDocument/references`: where the name under the cursor is used.
    fn references(&mut self, p: lsp_types::ReferenceParams) -> Result<Value, Failure> {
        let found = self
            .at(&p.text_document_position)
            .map(|(analysis, file, offset)| {
                let uri_of = |f: FileId| self.workspace.uri(&analysis, f);
                navigation::references(
                    &analysis,
                    file,
                    offset,
                    p.context.include_declaration,
                    &uri_of,
                )
            })
            .unwrap_or_default();
        Ok(to_json(found))
    }

    /// `textDocument/prepareRename`: the name under the cursor, when it
    /// can be renamed.
    fn prepare_rename(&mut self, p: TextDocumentPositionParams) -> Result<Value, Failure> {
        Ok(match self.at(&p) {
            None => Value::Null,
            Some((analysis, file, offset)) => {
                let range = navigation::prepare_rename(&analysis, file, offset)
                    .map_err(Failure::Refused)?;
                to_json(PrepareRenameResponse::Range(range))
            }
        })
    }

    /// `textDocument/rename`: the edits renaming the name under the cursor
    /// everywhere.
    fn rename(&mut self, p: lsp_types::RenameParams) -> Result<Value, Failure> {
        Ok(match self.at(&p.text_document_position) {
            None => Value::Null,
            Some((analysis, file, offset)) => {
                let uri_of = |f: FileId| self.workspace.uri(&analysis, f);
                let edit = navigation::rename(&analysis, file, offset, &p.new_name, &uri_of)
                    .map_err(Failure::Refused)?;
                to_json(edit)
            }
        })
    }

    /// `textDocument/documentSymbol`: the outline of a file.
    fn document_symbols(&mut self, p: lsp_types::DocumentSymbolParams) -> Result<Value, Failure> {
        let found = self
            .file(&p.text_document.uri)
            .map(|(analysis, file)| symbols::document_symbols(&analysis, file))
            .unwrap_or_default();
        Ok(to_json(DocumentSymbolResponse::Nested(found)))
    }

    /// `textDocument/formatting`: the edits formatting a file, refused for a
    /// file too large to analyse.
    fn formatting(&mut self, p: lsp_types::DocumentFormattingParams) -> Result<Value, Failure> {
        let doc = self.workspace.document(&p.text_document.uri);
        if let Some(doc) = doc.filter(|d| d.too_large()) {
            return Err(Failure::Refused(format!(
                "this file is {}; the editor formats files up to {} (`steward fmt` formats any file)",
                size(doc.text.len()),
                size(MAX_ANALYSED)
            )));
        }
        let edits = doc
            .map(|doc| actions::format(&doc.text))
            .unwrap_or_default();
        Ok(to_json(edits))
    }

    /// `textDocument/semanticTokens/full`: the kind of each token of a file.
    fn semantic_tokens(&mut self, p: lsp_types::SemanticTokensParams) -> Result<Value, Failure> {
        let data = self
            .file(&p.text_document.uri)
            .map(|(analysis, file)| tokens::semantic_tokens(&analysis, file))
            .unwrap_or_default();
        Ok(to_json(SemanticTokens {
            result_id: None,
            data,
        }))
    }

    /// `textDocument/codeAction`: the fixes and rewrites offered in a range.
    fn code_actions(&mut self, p: lsp_types::CodeActionParams) -> Result<Value, Failure> {
        let found = self
            .file(&p.text_document.uri)
            .map(|(analysis, file)| {
                let span = convert::span(&analysis.sources.get(file).lines, p.range);
                actions::code_actions(&analysis, file, span, &p.text_document.uri)
            })
            .unwrap_or_default();
        Ok(to_json(found))
    }

    /// `textDocument/inlayHint`: the hints shown in a range.
    fn inlay_hints(&mut self, p: lsp_types::InlayHintParams) -> Result<Value, Failure> {
        let found = self
            .file(&p.text_document.uri)
            .map(|(analysis, file)| {
                let span = convert::span(&analysis.sources.get(file).lines, p.range);
                actions::inlay_hints(&analysis, file, span)
            })
            .unwrap_or_default();
        Ok(to_json(found))
    }
}

/// The diagnostic a document too long to analyse gets instead of its own.
fn too_large(len: usize) -> lsp_types::Diagnostic {
    lsp_types::Diagnostic {
        range: lsp_types::Range::default(),
        severity: Some(lsp_types::DiagnosticSeverity::WARNING),
        source: Some("steward".into()),
        message: format!(
            "this file is {}: the editor analyses files up to {}, so this one has no diagnostics, hover, completion or highlighting; `steward check` checks it in full. Split it into smaller files.",
            size(len),
            size(MAX_ANALYSED)
        ),
        ..Default::default()
    }
}

/// A size in bytes as people read it.
fn size(bytes: usize) -> String {
    let mib = bytes as f64 / (1u64 << 20) as f64;
    if mib >= 1.0 {
        format!("{mib:.1} MiB")
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}

fn params<P: DeserializeOwned>(value: Value) -> Result<P, String> {
    serde_json::from_value(value).map_err(|e| format!("invalid parameters: {e}"))
}

fn to_json(value: impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}
