//! Which statements ran on which database, for the test suite's check that
//! every statement the stores hold has run on both (`scripts/statements.sh`).
//!
//! Off unless `STEWARD_STATEMENTS_LOG` names a folder: then each process
//! appends to `<folder>/<pid>.txt` a line per statement (the place of its
//! `Query::new` in the source) the first time it runs on each database.

use std::collections::HashSet;
use std::io::Write;
use std::panic::Location;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, PoisonError};

struct Recorder {
    file: PathBuf,
    seen: Mutex<HashSet<(&'static str, &'static Location<'static>)>>,
}

static RECORDER: LazyLock<Option<Recorder>> = LazyLock::new(|| {
    let dir = std::env::var_os("STEWARD_STATEMENTS_LOG")?;
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).ok()?;
    Some(Recorder {
        file: dir.join(format!("{}.txt", std::process::id())),
        seen: Mutex::new(HashSet::new()),
    })
});

/// The statement written at `site` ran on `database`.
pub(crate) fn ran(database: &'static str, site: &'static Location<'static>) {
    let Some(recorder) = RECORDER.as_ref() else {
        return;
    };
    let mut seen = recorder.seen.lock().unwrap_or_else(PoisonError::into_inner);
    if !seen.insert((database, site)) {
        return;
    }
    let line = format!("{database} {}:{}\n", site.file(), site.line());
    // A line not written shows in the check as a statement that did not run.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&recorder.file)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .ok();
}
