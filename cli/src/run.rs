//! `steward migrate`, `steward pg capture` and `steward push`: the
//! database's tables, the capture trigger, and events in. `steward run`
//! is the `steward-worker` crate.

use std::io::BufRead;
use std::path::Path;

use steward_db::{Durable, PgStore, PushError, SqliteStore, Target};
use steward_worker::empty_rules;

/// `steward migrate`: creates or updates the tables.
pub fn migrate(database: Option<&str>) -> Result<bool, String> {
    let target = Target::choose(database);
    target.migrate().map_err(|e| e.to_string())?;
    eprintln!("migrated {target}");
    Ok(true)
}

/// `steward pg capture`: prints the trigger's SQL, or (`apply` given, with
/// the database it names) installs it.
pub fn capture(
    capture: &steward_db::capture::Capture<'_>,
    apply: Option<Option<&str>>,
) -> Result<bool, String> {
    let sql = capture.sql()?;
    match apply {
        None => print!("{sql}"),
        Some(database) => {
            let target = Target::choose(database);
            let Target::Postgres(url) = &target else {
                return Err(format!(
                    "`steward pg capture --apply` needs PostgreSQL, not {target}"
                ));
            };
            steward_db::capture::apply(url, &sql)?;
            eprintln!(
                "installed: inserts and updates of `{}` become `{}.created` and `{}.updated` events in {target}",
                capture.table, capture.event, capture.event
            );
        }
    }
    Ok(true)
}

/// `steward push`: inserts envelopes (JSON lines) as pending events. A
/// line that is not an envelope is reported with its number and skipped;
/// an id the tenant already has is kept as it was.
pub fn push(database: Option<&str>, file: &Path) -> Result<bool, String> {
    let target = Target::choose(database);
    target.migrate().map_err(|e| e.to_string())?;
    let reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    match &target {
        Target::Sqlite(path) => push_lines(&open_sqlite(path)?, reader, &target),
        Target::Postgres(url) => {
            let store = PgStore::open(url, empty_rules()?).map_err(|e| e.to_string())?;
            push_lines(&store, reader, &target)
        }
    }
}

fn open_sqlite(path: &str) -> Result<SqliteStore, String> {
    SqliteStore::open(path, empty_rules()?).map_err(|e| e.to_string())
}

fn push_lines<S: Durable>(
    store: &S,
    reader: Box<dyn BufRead>,
    target: &Target,
) -> Result<bool, String> {
    let (mut pushed, mut duplicates, mut bad) = (0u64, 0u64, 0u64);
    for (n, line) in reader.lines().enumerate() {
        let n = n + 1;
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                eprintln!("line {n}: {e}");
                bad += 1;
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match store.push(&line) {
            Ok(true) => pushed += 1,
            Ok(false) => duplicates += 1,
            Err(PushError::Envelope(why)) => {
                eprintln!("line {n}: {why}");
                bad += 1;
            }
            Err(PushError::Store(e)) => return Err(e.to_string()),
        }
    }
    eprintln!(
        "pushed {pushed} events into {target} ({duplicates} already there, {bad} not envelopes)"
    );
    Ok(bad == 0)
}
