//! Finding and reading rule files, and answering the checker's questions
//! about Rhai scripts from the file system: what the command line and the
//! language server share.

use std::path::{Path, PathBuf};

/// Reads the `.stw` files named by `paths` (folders are searched
/// recursively, in name order, skipping hidden folders and build output), as
/// (name, text) pairs.
pub fn read_all(paths: &[PathBuf]) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut found)?;
        } else if path.is_file() {
            found.push(path.clone());
        } else {
            return Err(format!("`{}`: no such file or folder", path.display()));
        }
    }
    found.dedup();
    found
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| format!("cannot read `{}`: {e}", p.display()))?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

/// The `.stw` files under `dir`, in name order.
pub fn find(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    walk(dir, &mut found)?;
    Ok(found)
}

/// Folders never searched: hidden ones (`.git`), and build and package output.
fn skipped(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') || n == "target" || n == "node_modules")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if !skipped(&path) {
                walk(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "stw") {
            out.push(path);
        }
    }
    Ok(())
}

/// Answers the checker's questions from the file system.
pub struct FsHost;

impl crate::check::Host for FsHost {
    fn rhai_file_exists(&self, file: &str, path: &str) -> bool {
        let base = Path::new(file).parent().unwrap_or(Path::new("."));
        base.join(path).is_file()
    }

    fn rhai_source(&self, file: &str, path: &str) -> Option<String> {
        let base = Path::new(file).parent().unwrap_or(Path::new("."));
        std::fs::read_to_string(base.join(path)).ok()
    }
}
