//! `steward migrate`, `steward push` and `steward run`: the engine on a
//! database (SQLite by default, PostgreSQL when configured) and the wall
//! clock.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use steward::engine::{decode_event, Engine, Handled, Refused, Ruleset};
use steward_db::{Attempt, Durable, PgStore, PushError, SqliteStore, Target};

use super::deliver::Deliverer;

use super::replay::{load_rules, Printer};

/// `steward migrate`: creates or updates the tables.
pub fn migrate(database: Option<&str>) -> Result<bool, String> {
    let target = Target::choose(database);
    target.migrate().map_err(|e| e.to_string())?;
    eprintln!("migrated {target}");
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

/// Pushing needs no rules: the payloads are checked when handled.
fn empty_rules() -> Result<Arc<Ruleset>, String> {
    let analysis = steward::check::analyze(&[], &steward::check::NoFiles);
    steward::engine::compile(&analysis)
        .map(Arc::new)
        .map_err(|_| "the standard library does not check".to_string())
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

pub struct RunOptions<'a> {
    pub database: Option<&'a str>,
    pub rules: &'a [PathBuf],
    pub exit_when_idle: bool,
    pub poll: Duration,
    pub deliverer: Deliverer,
}

/// `steward run`: handles pending events and due work on the wall clock,
/// recording every action in the outbox (and printing it as a JSON line).
pub fn run(opts: RunOptions<'_>) -> Result<bool, String> {
    let Some(rules) = load_rules(opts.rules)? else {
        return Ok(false);
    };
    let target = Target::choose(opts.database);
    eprintln!(
        "steward run: {} rules (version {}), state in {target}",
        rules.rules.len(),
        rules.version
    );
    match &target {
        Target::Sqlite(path) => {
            let store = SqliteStore::open(path, rules.clone()).map_err(|e| e.to_string())?;
            drive(store, rules, &opts)
        }
        Target::Postgres(url) => {
            let store = PgStore::open(url, rules.clone()).map_err(|e| e.to_string())?;
            drive(store, rules, &opts)
        }
    }
}

/// The lease a worker holds while it runs: one `steward run` at a time
/// works on a database; a second waits until the first exits, or until its
/// lease expires (it died).
const LEASE: &str = "worker";
const LEASE_FOR: chrono::Duration = chrono::Duration::seconds(60);

fn drive<S: Durable>(store: S, rules: Arc<Ruleset>, opts: &RunOptions<'_>) -> Result<bool, String> {
    let mut engine = Engine::new(rules.clone(), store);
    engine.limits.missed_ticks_once = true;
    let holder = format!(
        "pid {} since {}",
        std::process::id(),
        steward::engine::value::show_datetime(&Utc::now())
    );
    let mut waiting = false;
    loop {
        let now = Utc::now();
        if engine
            .store
            .lease(LEASE, &holder, now, now + LEASE_FOR)
            .map_err(|e| e.to_string())?
        {
            break;
        }
        if !waiting {
            let other = engine
                .store
                .lease_holder(LEASE)
                .map_err(|e| e.to_string())?;
            if let Some((who, until)) = other {
                eprintln!(
                    "waiting: another worker ({who}) is running on this database; its lease ends {}",
                    steward::engine::value::show_datetime(&until)
                );
            }
            waiting = true;
        }
        std::thread::sleep(opts.poll);
    }
    let result = work(&mut engine, &rules, opts, &holder);
    let released = engine.store.release(LEASE, &holder);
    let done = result?;
    released.map_err(|e| e.to_string())?;
    Ok(done)
}

fn work<S: Durable>(
    engine: &mut Engine<S>,
    rules: &Arc<Ruleset>,
    opts: &RunOptions<'_>,
    holder: &str,
) -> Result<bool, String> {
    let stdout = std::io::stdout();
    let mut printer = Printer::new(stdout.lock());
    let (mut handled, mut rejected) = (0u64, 0u64);
    loop {
        let now = Utc::now();
        let renewed = engine
            .store
            .lease(LEASE, holder, now, now + LEASE_FOR)
            .map_err(|e| e.to_string())?;
        if !renewed {
            return Err("this worker lost its lease on the database (stopped for more than a minute?), so it stops".into());
        }
        let batch = engine
            .store
            .pending_events(256)
            .map_err(|e| e.to_string())?;
        for e in &batch {
            let reason = match decode_event(rules.shapes(), &e.line) {
                Err(why) => Some(why.to_string()),
                Ok(event) => match engine.handle(event, &mut printer) {
                    Ok(Handled::Ran) => None,
                    Ok(Handled::Duplicate) => {
                        Some("an event of this id was handled already".into())
                    }
                    Err(Refused::Store(err)) => return Err(err.to_string()),
                    Err(other) => Some(other.to_string()),
                },
            };
            match reason {
                None => handled += 1,
                Some(reason) => {
                    eprintln!(
                        "rejected event `{}` of tenant `{}`: {reason}",
                        e.id, e.tenant
                    );
                    engine
                        .store
                        .reject(&e.tenant, &e.id, &reason)
                        .map_err(|e| e.to_string())?;
                    rejected += 1;
                }
            }
        }
        let now = Utc::now();
        engine
            .advance_to(now, &mut printer)
            .map_err(|e| e.to_string())?;
        printer
            .flush()
            .map_err(|e| format!("cannot write the actions: {e}"))?;
        let due = engine
            .store
            .due_deliveries(now, 64)
            .map_err(|e| e.to_string())?;
        for d in &due {
            let outcome = opts.deliverer.deliver(rules, d, Utc::now());
            if let Attempt::Failed { error, retry_at } = &outcome {
                match retry_at {
                    Some(t) => eprintln!(
                        "delivery of {} ({}) failed: {error}; trying again at {}",
                        d.key,
                        d.action,
                        steward::engine::value::show_datetime(t)
                    ),
                    None => eprintln!("delivery of {} ({}) is dead: {error}", d.key, d.action),
                }
            }
            engine
                .store
                .attempted(d, &outcome)
                .map_err(|e| e.to_string())?;
        }
        if batch.is_empty() && due.is_empty() {
            let next = engine.store.next_due().map_err(|e| e.to_string())?;
            let [_, delivered, retrying, dead] =
                engine.store.delivery_counts().map_err(|e| e.to_string())?;
            if opts.exit_when_idle && next.is_none_or(|t| t > now) {
                let timers = engine.store.pending_timers().map_err(|e| e.to_string())?;
                let approvals = engine
                    .store
                    .pending_approvals()
                    .map_err(|e| e.to_string())?;
                let outbox = engine.store.outbox().map_err(|e| e.to_string())?;
                eprintln!(
                    "idle: {handled} events handled, {rejected} rejected; {} actions in the outbox ({delivered} delivered, {retrying} to be retried, {dead} dead); pending: {timers} timers{}, {} approvals",
                    outbox.len(),
                    next.map_or(String::new(), |t| format!(" (next due {})", steward::engine::value::show_datetime(&t))),
                    approvals.len(),
                );
                return Ok(true);
            }
            std::thread::sleep(opts.poll);
        }
    }
}

impl<W: Write> Printer<W> {
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
