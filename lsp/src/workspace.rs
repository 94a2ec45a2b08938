//! The documents the server knows and the analysis of them as one program.
//!
//! A workspace is every `.stw` file under the root folder (read from disk)
//! with the open documents' texts in place of their files, plus the embedded
//! standard library. Edits are applied in the order they arrive; the analysis
//! is recomputed on demand when something changed since the last one, and
//! re-parses only the files whose text changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;

use lsp_types::{TextDocumentContentChangeEvent, Url};
use steward::check::{analyze_cached, Analysis, ParseCache};
use steward::diag::{FileId, LineIndex};
use steward::files::FsHost;

use crate::convert;

/// Documents longer than this (in bytes) are left out of the analysis: they
/// get one diagnostic saying so, and no hover, completion, tokens or
/// formatting, so one huge file cannot stall the server. Rule files are
/// rarely over 100 KiB; `steward check` checks a file of any size.
pub const MAX_ANALYSED: usize = 1 << 20;

/// One file of the workspace.
#[derive(Clone, Debug)]
pub struct Document {
    pub uri: Url,
    pub text: String,
    /// The client's version, for open documents.
    pub version: Option<i32>,
    pub open: bool,
}

/// The documents and their latest analysis.
pub struct Workspace {
    root: Option<PathBuf>,
    /// By name: the file's path, or the URI for documents not on disk. The
    /// order gives the files their ids, so it must be stable.
    docs: BTreeMap<String, Document>,
    cache: ParseCache,
    analysis: Option<Arc<Analysis>>,
    /// Where analyses no longer needed go to be freed: freeing one is a
    /// sixth of an analysis' time, which the next edit need not wait for.
    freed: Sender<Arc<Analysis>>,
}

/// The name a document has in the analysis (and in diagnostics).
pub fn name_of(uri: &Url) -> String {
    match uri.to_file_path() {
        Ok(path) if uri.scheme() == "file" => path.display().to_string(),
        _ => uri.to_string(),
    }
}

impl Document {
    /// Whether the document is too long to analyse (see [`MAX_ANALYSED`]).
    pub fn too_large(&self) -> bool {
        self.text.len() > MAX_ANALYSED
    }
}

/// A thread that frees what it is sent. Should it not start, the receiver
/// goes with it, sending fails, and what is sent is freed where it is.
fn freeing() -> Sender<Arc<Analysis>> {
    let (send, receive) = channel::<Arc<Analysis>>();
    let _thread = std::thread::Builder::new()
        .name("free-analyses".into())
        .spawn(move || receive.into_iter().for_each(drop));
    send
}

impl Workspace {
    /// The analysis no longer holds: the next request makes a new one.
    fn stale(&mut self) {
        if let Some(old) = self.analysis.take() {
            // Sending fails only if the thread is gone; then it is freed here.
            let _ = self.freed.send(old);
        }
    }

    /// A workspace holding every `.stw` file under `root`.
    pub fn new(root: Option<PathBuf>) -> (Workspace, Vec<String>) {
        let mut ws = Workspace {
            root,
            docs: BTreeMap::new(),
            cache: ParseCache::default(),
            analysis: None,
            freed: freeing(),
        };
        let mut problems = Vec::new();
        if let Some(root) = ws.root.clone() {
            match steward::files::find(&root) {
                Ok(paths) => {
                    for path in paths {
                        if let Err(e) = ws.load(&path) {
                            problems.push(e);
                        }
                    }
                }
                Err(e) => problems.push(e),
            }
        }
        (ws, problems)
    }

    fn load(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let uri = Url::from_file_path(path)
            .map_err(|()| format!("`{}` is not an absolute path", path.display()))?;
        self.docs.insert(
            path.display().to_string(),
            Document {
                uri,
                text,
                version: None,
                open: false,
            },
        );
        self.stale();
        Ok(())
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    pub fn document(&self, uri: &Url) -> Option<&Document> {
        self.docs.get(&name_of(uri))
    }

    pub fn documents(&self) -> impl Iterator<Item = &Document> {
        self.docs.values()
    }

    pub fn open(&mut self, uri: Url, text: String, version: i32) {
        self.docs.insert(
            name_of(&uri),
            Document {
                uri,
                text,
                version: Some(version),
                open: true,
            },
        );
        self.stale();
    }

    /// Applies the changes of one `didChange`, in order. Ranges are in the
    /// text as each earlier change left it, as the protocol says.
    pub fn change(
        &mut self,
        uri: &Url,
        version: i32,
        changes: Vec<TextDocumentContentChangeEvent>,
    ) -> Result<(), String> {
        let doc = self
            .docs
            .get_mut(&name_of(uri))
            .filter(|d| d.open)
            .ok_or_else(|| format!("change to `{uri}`, which is not open"))?;
        if doc.version.is_some_and(|v| version <= v) {
            // Versions only grow; an older change arriving late would undo
            // newer text, so it is refused rather than applied.
            return Err(format!(
                "change to `{uri}` has version {version}, but the document is already at {}",
                doc.version.unwrap_or_default()
            ));
        }
        for change in changes {
            match change.range {
                None => doc.text = change.text,
                Some(range) => {
                    let lines = LineIndex::new(&doc.text);
                    let start = convert::offset(&lines, range.start) as usize;
                    let end = (convert::offset(&lines, range.end) as usize).max(start);
                    doc.text.replace_range(start..end, &change.text);
                }
            }
        }
        doc.version = Some(version);
        self.stale();
        Ok(())
    }

    /// A document closed: its file on disk takes its place again, if any.
    pub fn close(&mut self, uri: &Url) {
        let name = name_of(uri);
        self.docs.remove(&name);
        self.stale();
        if let Ok(path) = uri.to_file_path() {
            if path.is_file() && self.is_under_root(&path) {
                let _ = self.load(&path);
            }
        }
    }

    /// A file changed on disk (created, changed or deleted). Open documents
    /// keep the editor's text.
    pub fn file_changed(&mut self, uri: &Url) {
        let name = name_of(uri);
        if self.docs.get(&name).is_some_and(|d| d.open) {
            return;
        }
        self.docs.remove(&name);
        self.stale();
        if let Ok(path) = uri.to_file_path() {
            if path.is_file() && path.extension().is_some_and(|e| e == "stw") {
                let _ = self.load(&path);
            }
        }
    }

    fn is_under_root(&self, path: &Path) -> bool {
        self.root.as_ref().is_some_and(|r| path.starts_with(r))
    }

    /// Whether the analysis is out of date.
    pub fn is_stale(&self) -> bool {
        self.analysis.is_none()
    }

    /// The analysis of the current texts, computed if anything changed.
    pub fn analysis(&mut self) -> Arc<Analysis> {
        if let Some(a) = &self.analysis {
            return a.clone();
        }
        let files: Vec<(String, String)> = self
            .docs
            .iter()
            .map(|(name, doc)| {
                // In the analysis as an empty file, so it keeps its id.
                let text = if doc.too_large() {
                    String::new()
                } else {
                    doc.text.clone()
                };
                (name.clone(), text)
            })
            .collect();
        let host = FsHost {
            roots: self
                .root
                .iter()
                .filter_map(|r| r.canonicalize().ok())
                .collect(),
        };
        let analysis = Arc::new(analyze_cached(&files, &host, &mut self.cache));
        self.analysis = Some(analysis.clone());
        analysis
    }

    /// The id a document has in `analysis`.
    pub fn file_id(&self, analysis: &Analysis, uri: &Url) -> Option<FileId> {
        let name = name_of(uri);
        analysis
            .user_files()
            .map(|f| f.id)
            .find(|&id| analysis.sources.name(id) == name)
    }

    /// The URI of a file of `analysis` (none for the standard library).
    pub fn uri(&self, analysis: &Analysis, file: FileId) -> Option<Url> {
        self.docs
            .get(analysis.sources.name(file))
            .map(|d| d.uri.clone())
    }
}
