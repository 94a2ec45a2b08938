//! Finding and reading rule files, and answering the checker's questions
//! about Rhai scripts from the file system: what the command line and the
//! language server share.
//!
//! Invariants: every folder is visited once and every file read once, by its
//! canonical path (symlink loops and a file named twice cannot repeat work or
//! load a rule twice); a Rhai script is only read from inside the folders the
//! rule files came from; a file that is not UTF-8 is still checked, with a
//! diagnostic at its first bad byte.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::check::{analyze, Analysis, Host, RhaiSourceError};
use crate::diag::{Code, Diagnostic, Span};

/// Rule files as read: (name, text) pairs for the checker, and where a file
/// was not valid UTF-8 (its index in `sources`, the byte offset of the first
/// bad sequence in the decoded text).
#[derive(Debug, Default)]
pub struct Loaded {
    pub sources: Vec<(String, String)>,
    pub not_utf8: Vec<(usize, usize)>,
    /// The canonical folders the files came from: where Rhai scripts may be.
    pub roots: Vec<PathBuf>,
}

impl Loaded {
    /// Checks the files, with Rhai scripts read from their folders; a file
    /// that was not UTF-8 gets an E0106 at its first bad byte.
    pub fn analyze(&self) -> Analysis {
        let mut analysis = analyze(&self.sources, &self.host());
        self.add_diagnostics(&mut analysis);
        analysis
    }

    /// The host that answers for these files' Rhai scripts.
    pub fn host(&self) -> FsHost {
        FsHost {
            roots: self.roots.clone(),
        }
    }

    /// Adds the diagnostics of reading (not UTF-8) to an analysis of `sources`.
    pub fn add_diagnostics(&self, analysis: &mut Analysis) {
        let ids: Vec<_> = analysis.user_files().map(|f| f.id).collect();
        for &(index, offset) in &self.not_utf8 {
            let Some(&file) = ids.get(index) else {
                continue;
            };
            analysis.diagnostics.push(
                Diagnostic::new(
                    Code::NotUtf8,
                    file,
                    Span::new(offset, offset),
                    "this file is not valid UTF-8",
                )
                .with_label("the first invalid byte is here")
                .with_help("save the file as UTF-8; invalid bytes are read as `\u{FFFD}`"),
            );
        }
        crate::diag::sort(&mut analysis.diagnostics);
    }
}

/// Reads the `.stw` files named by `paths` (folders are searched
/// recursively, in name order, skipping hidden folders and build output).
/// A file reached twice (named twice, or through a link) is read once.
pub fn read_all(paths: &[PathBuf]) -> Result<Loaded, String> {
    let mut walker = Walker::default();
    let mut roots = Vec::new();
    for path in paths {
        let canonical = path
            .canonicalize()
            .map_err(|_| format!("`{}`: no such file or folder", path.display()))?;
        if canonical.is_dir() {
            roots.push(canonical.clone());
            walker.walk(path, &canonical)?;
        } else if canonical.is_file() {
            if let Some(parent) = canonical.parent() {
                roots.push(parent.to_path_buf());
            }
            walker.file(path.clone(), canonical);
        } else {
            return Err(format!("`{}`: no such file or folder", path.display()));
        }
    }
    let mut loaded = Loaded {
        roots,
        ..Loaded::default()
    };
    for path in walker.found {
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                loaded.not_utf8.push((loaded.sources.len(), valid));
                String::from_utf8_lossy(e.as_bytes()).into_owned()
            }
        };
        loaded.sources.push((path.display().to_string(), text));
    }
    Ok(loaded)
}

/// The `.stw` files under `dir`, in name order, each once.
pub fn find(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let canonical = dir
        .canonicalize()
        .map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
    let mut walker = Walker::default();
    walker.walk(dir, &canonical)?;
    Ok(walker.found)
}

/// Folders never searched: hidden ones (`.git`), and build and package output.
fn skipped(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') || n == "target" || n == "node_modules")
}

/// A search that visits each canonical folder and file once.
#[derive(Default)]
struct Walker {
    dirs: HashSet<PathBuf>,
    files: HashSet<PathBuf>,
    found: Vec<PathBuf>,
}

impl Walker {
    fn file(&mut self, shown: PathBuf, canonical: PathBuf) {
        if self.files.insert(canonical) {
            self.found.push(shown);
        }
    }

    /// `dir` as the user names it, `canonical` its resolved path.
    fn walk(&mut self, dir: &Path, canonical: &Path) -> Result<(), String> {
        if !self.dirs.insert(canonical.to_path_buf()) {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            // A dangling or looping link has no canonical path: skip it.
            let Ok(resolved) = path.canonicalize() else {
                continue;
            };
            if resolved.is_dir() {
                if !skipped(&path) {
                    self.walk(&path, &resolved)?;
                }
            } else if resolved.is_file() && path.extension().is_some_and(|e| e == "stw") {
                self.file(path, resolved);
            }
        }
        Ok(())
    }
}

/// Answers the checker's questions from the file system. A script is read
/// only when its path is relative and resolves (after links) inside the
/// folder of the file naming it or inside one of `roots`.
#[derive(Clone, Debug, Default)]
pub struct FsHost {
    pub roots: Vec<PathBuf>,
}

impl Host for FsHost {
    fn rhai_source(&self, file: &str, path: &str) -> Result<String, RhaiSourceError> {
        if leaves_its_folder(path) {
            return Err(RhaiSourceError::Outside);
        }
        let base = Path::new(file).parent().unwrap_or(Path::new("."));
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        let Ok(resolved) = base.join(path).canonicalize() else {
            return Err(RhaiSourceError::Missing);
        };
        let allowed = base.canonicalize().is_ok_and(|b| resolved.starts_with(b))
            || self.roots.iter().any(|r| resolved.starts_with(r));
        if !allowed {
            return Err(RhaiSourceError::Outside);
        }
        if !resolved.is_file() {
            return Err(RhaiSourceError::Missing);
        }
        let bytes = std::fs::read(&resolved).map_err(|e| RhaiSourceError::Unreadable(e.kind()))?;
        String::from_utf8(bytes).map_err(|_| RhaiSourceError::NotUtf8)
    }
}

/// Whether a script path written in a rule file is absolute or climbs out of
/// the folder it is relative to (before any link is followed).
fn leaves_its_folder(path: &str) -> bool {
    use std::path::Component;
    if path.starts_with(['/', '\\']) {
        return true;
    }
    let mut depth = 0usize;
    for part in Path::new(path).components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    false
}
