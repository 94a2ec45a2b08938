//! `steward migrate`, `steward push` and `steward run`: the engine on a
//! database (SQLite by default, PostgreSQL when configured) and the wall
//! clock.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use steward::engine::store::StoreError;
use steward::engine::{decode_event, Collect, Engine, Handled, Refused, Ruleset};
use steward_db::api::Api;
use steward_db::control::{Control, ControlError, EVERY_TENANT};
use steward_db::{Attempt, Delivery, Durable, PgStore, PushError, SqliteStore, Target};

use super::deliver::Deliverer;

use super::replay::{load_sources, report_error};

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

/// Pushing needs no rules: the payloads are checked when handled.
pub fn empty_rules() -> Result<Arc<Ruleset>, String> {
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

pub struct RunOptions {
    pub database: Option<String>,
    pub rules: Vec<PathBuf>,
    /// The tenant `rules` are deployed for (else every tenant's).
    pub tenant: Option<String>,
    pub exit_when_idle: bool,
    /// With `exit_when_idle`: how soon a failed delivery's next attempt
    /// must be for the run to wait for it.
    pub idle_wait: Duration,
    pub poll: Duration,
    /// Poll only: no `LISTEN` (for connection poolers that do not pass it).
    pub poll_only: bool,
    /// Events claimed by one batch (one transaction).
    pub batch: i64,
    /// Deliveries made at once, each on a thread of its own.
    pub delivery_threads: usize,
    /// How long handled events, their ids and finished actions are kept.
    pub retain: chrono::Duration,
    /// Where Prometheus metrics are served, if anywhere.
    pub metrics: Option<String>,
    pub deliverer: Deliverer,
    /// Run beside the HTTP API (`steward serve`): start with no rules
    /// deployed (tenants deploy theirs).
    pub serving: bool,
    /// Set to stop the worker after its batch (SIGTERM and SIGINT set it).
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    /// Where approval links point (`http://host:port` of `steward serve`):
    /// with it, an approval asked is mailed to its role's holders.
    pub public_url: Option<String>,
}

/// `steward run`: handles pending events and due work on the wall clock,
/// recording every action in the outbox (and printing it as a JSON line),
/// and delivers the outbox.
/// How a run that exits when idle ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// Every action was delivered (or, serving, the worker was stopped).
    Clean,
    /// The rules have errors: nothing ran.
    Problems,
    /// Some actions were not (dead, or their next attempt too far off).
    Undelivered,
}

pub fn run(opts: RunOptions) -> Result<Finished, String> {
    super::observe::init_logging();
    if let Some(addr) = &opts.metrics {
        super::observe::serve_metrics(addr)?;
    }
    work_on_target(&opts)
}

/// Runs the worker on the database `opts` names.
pub fn work_on_target(opts: &RunOptions) -> Result<Finished, String> {
    let target = Target::choose(opts.database.as_deref());
    let empty = empty_rules()?;
    match &target {
        Target::Sqlite(path) => {
            let store = SqliteStore::open(path, empty).map_err(|e| e.to_string())?;
            start(store, &target, opts)
        }
        Target::Postgres(url) => {
            let store = PgStore::open(url, empty).map_err(|e| e.to_string())?;
            start(store, &target, opts)
        }
    }
}

/// The ruleset `--rules` deploys (a new version only when the program
/// changed): for every tenant without rules of its own, or for `--tenant`.
const RULESET: &str = "default";

fn start<S: Durable + Control + Api>(
    mut store: S,
    target: &Target,
    opts: &RunOptions,
) -> Result<Finished, String> {
    if !opts.rules.is_empty() {
        let Some((sources, rules)) = load_sources(&opts.rules)? else {
            return Ok(Finished::Problems);
        };
        let tenant = opts.tenant.as_deref().unwrap_or(EVERY_TENANT);
        let who = if tenant == EVERY_TENANT {
            "steward run --rules".to_string()
        } else {
            format!("steward run --rules --tenant {tenant}")
        };
        let deployed = match store.deploy_ruleset(tenant, RULESET, &sources, &who) {
            Ok(d) => d,
            Err(ControlError::Invalid(diagnostics)) => {
                for d in &diagnostics {
                    eprintln!("{}:{}:{}: {}", d.file, d.line, d.column, d.message);
                }
                return Err(format!(
                    "the rules do not check with tenant `{tenant}`'s other rulesets"
                ));
            }
            Err(e) => return Err(e.to_string()),
        };
        let count = rules.rules.len();
        let whose = if tenant == EVERY_TENANT {
            "every tenant without rules of its own".to_string()
        } else {
            format!("tenant `{tenant}`")
        };
        let version = deployed.version;
        if deployed.new {
            eprintln!(
                "steward run: deployed ruleset `{RULESET}` version {version} ({count} rules) for {whose} to {target}"
            );
        } else {
            eprintln!(
                "steward run: ruleset `{RULESET}` version {version} ({count} rules) for {whose} in {target} is unchanged"
            );
        }
    }
    let programs = Programs::load(&mut store)?;
    if programs.is_empty() && !opts.serving {
        return Err(format!(
            "no rules: {target} has no ruleset deployed; give `--rules PATH`"
        ));
    }
    if !opts.poll_only {
        store.listen().map_err(|e| e.to_string())?;
    }
    drive(store, target, programs, opts)
}

/// The programs the worker runs: the tenant `*`'s for every tenant without
/// one of its own, and each tenant's own; reloaded when their generation
/// moves (a deploy, a rollback, an enable or disable, a delete).
struct Programs {
    generation: i64,
    every: Arc<Ruleset>,
    own: std::collections::HashMap<Arc<str>, Arc<Ruleset>>,
    /// Tenants whose stored program no longer builds, with why: their
    /// events are rejected with that reason rather than run without rules.
    broken: std::collections::HashMap<String, String>,
    /// Built programs by digest, kept across reloads.
    built: std::collections::HashMap<String, Arc<Ruleset>>,
    checked: std::time::Instant,
    /// A batch found the programs changed: look at once.
    stale: bool,
}

/// How often a worker looks whether a program changed.
const PROGRAMS_EVERY: Duration = Duration::from_secs(1);

impl Programs {
    fn load<S: Durable + Control + Api>(store: &mut S) -> Result<Programs, String> {
        let mut programs = Programs {
            generation: -1,
            every: empty_rules()?,
            own: Default::default(),
            broken: Default::default(),
            built: Default::default(),
            checked: std::time::Instant::now(),
            stale: false,
        };
        programs.reload(store)?;
        Ok(programs)
    }

    fn is_empty(&self) -> bool {
        self.own.is_empty() && self.broken.is_empty() && self.every.rules.is_empty()
    }

    /// Loads the programs again if they changed; says whether they did.
    fn reload<S: Durable + Control + Api>(&mut self, store: &mut S) -> Result<bool, String> {
        self.checked = std::time::Instant::now();
        self.stale = false;
        // The database unavailable: keep what runs, and look again next
        // round (the batch waits the outage out).
        let unavailable =
            |e: &ControlError| matches!(e, ControlError::Store(StoreError::Unavailable(_)));
        let generation = match store.program_generation() {
            Ok(g) => g,
            Err(e) if unavailable(&e) => {
                self.stale = true;
                return Ok(false);
            }
            Err(e) => return Err(e.to_string()),
        };
        if generation == self.generation {
            return Ok(false);
        }
        let rows = match store.programs() {
            Ok(rows) => rows,
            Err(e) if unavailable(&e) => {
                self.stale = true;
                return Ok(false);
            }
            Err(e) => return Err(e.to_string()),
        };
        let mut every = None;
        let mut own = std::collections::HashMap::new();
        let mut broken = std::collections::HashMap::new();
        for row in rows {
            let rules = match &row.program {
                None => Ok(empty_rules()?),
                Some((digest, _)) if self.built.contains_key(digest) => {
                    Ok(self.built[digest].clone())
                }
                Some((digest, sources)) => match sources.build().rules {
                    Ok(rules) if &rules.version == digest => Ok(rules),
                    Ok(_) => Err(
                        "its stored program builds to another version with this Steward"
                            .to_string(),
                    ),
                    Err(e) => Err(format!("its stored program no longer checks: {e}")),
                },
            };
            match rules {
                Ok(rules) => {
                    self.built.insert(rules.version.clone(), rules.clone());
                    store.use_rules(rules.clone());
                    if row.tenant == EVERY_TENANT {
                        every = Some(rules);
                    } else {
                        own.insert(Arc::from(row.tenant.as_str()), rules);
                    }
                }
                Err(why) => {
                    eprintln!("tenant `{}`: {why}; its events are rejected", row.tenant);
                    broken.insert(row.tenant, why);
                }
            }
        }
        if self.generation >= 0 {
            eprintln!("steward run: the deployed rules changed; reloaded");
        }
        self.every = match every {
            Some(rules) => rules,
            None => empty_rules()?,
        };
        self.own = own;
        self.broken = broken;
        self.generation = generation;
        Ok(true)
    }

    fn has_schedules(&self) -> bool {
        self.every.has_schedules() || self.own.values().any(|r| r.has_schedules())
    }

    /// Puts the programs into `engine`.
    fn install<S: Durable>(&self, engine: &mut Engine<S>) {
        engine.rules = self.every.clone();
        engine.programs = self.own.clone();
    }
}

/// The lease a worker holds while it runs on a database whose workers
/// cannot share the work (SQLite, one writer): a second waits until the
/// first exits, or until its lease expires (it died). On PostgreSQL any
/// number of workers run at once, each batch's claims locked by its own
/// transaction.
const LEASE: &str = "worker";
/// The lease of the worker that fires the schedules, where several share
/// the work; another takes it over when it expires (the holder died).
const SCHEDULER: &str = "scheduler";
const SCHEDULER_FOR: chrono::Duration = chrono::Duration::seconds(10);
const LEASE_FOR: chrono::Duration = chrono::Duration::seconds(60);

fn drive<S: Durable + Control + Api>(
    store: S,
    target: &Target,
    mut programs: Programs,
    opts: &RunOptions,
) -> Result<Finished, String> {
    let holder = format!(
        "pid {} since {}",
        std::process::id(),
        steward::engine::value::show_datetime(&Utc::now())
    );
    let exclusive = !store.shares_work();
    if exclusive {
        wait_for_lease(&store, &holder, opts.poll)?;
    }
    let outbox = Outbox::default();
    let mut slot = Some(store);
    let result = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..opts.delivery_threads.max(1))
            .map(|_| scope.spawn(|| deliver_loop(target, opts, &outbox)))
            .collect();
        let result = work(&mut slot, &mut programs, opts, &holder, exclusive, &outbox);
        outbox.stop();
        let mut result = result;
        for t in threads {
            let joined = t
                .join()
                .unwrap_or_else(|_| Err("a delivery thread panicked".to_string()));
            if let (Ok(_), Err(e)) = (&result, joined) {
                result = Err(e);
            }
        }
        result
    });
    if let Some(store) = &slot {
        let lease = if exclusive { LEASE } else { SCHEDULER };
        store.release(lease, &holder).map_err(|e| e.to_string())?;
    }
    result
}

fn wait_for_lease<S: Durable>(store: &S, holder: &str, poll: Duration) -> Result<(), String> {
    let mut waiting = false;
    loop {
        let now = Utc::now();
        if store
            .lease(LEASE, holder, now, now + LEASE_FOR)
            .map_err(|e| e.to_string())?
        {
            return Ok(());
        }
        if !waiting {
            if let Some((who, until)) = store.lease_holder(LEASE).map_err(|e| e.to_string())? {
                eprintln!(
                    "waiting: another worker ({who}) is running on this SQLite database; its lease ends {}",
                    steward::engine::value::show_datetime(&until)
                );
            }
            waiting = true;
        }
        std::thread::sleep(poll);
    }
}

/// What the event loop and the delivery threads share: a bell rung when a
/// batch recorded actions, the deliveries in flight, and the stop signal.
#[derive(Default)]
struct Outbox {
    state: Mutex<(u64, bool)>,
    bell: Condvar,
    in_flight: AtomicUsize,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, bool)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ring(&self) {
        self.lock().0 += 1;
        self.bell.notify_all();
    }

    fn stop(&self) {
        self.lock().1 = true;
        self.bell.notify_all();
    }

    fn stopped(&self) -> bool {
        self.lock().1
    }

    /// Waits for the bell, the stop signal, or `poll`.
    fn wait(&self, rung: u64, poll: Duration) -> u64 {
        let guard = self.lock();
        let (guard, _) = self
            .bell
            .wait_timeout_while(guard, poll, |(n, stop)| *n == rung && !*stop)
            .unwrap_or_else(|e| e.into_inner());
        guard.0
    }
}

/// A delivery thread: claims one due action at a time, delivers it, and
/// records the attempt, on a connection of its own; so a slow endpoint
/// holds one thread, not the others.
fn deliver_loop(target: &Target, opts: &RunOptions, outbox: &Outbox) -> Result<(), String> {
    let rules = empty_rules()?;
    match target {
        Target::Sqlite(path) => {
            let store = SqliteStore::open(path, rules).map_err(|e| e.to_string())?;
            deliveries(&store, opts, outbox)
        }
        Target::Postgres(url) => {
            let store = PgStore::open(url, rules).map_err(|e| e.to_string())?;
            deliveries(&store, opts, outbox)
        }
    }
}

fn deliveries<S: Durable + Api>(
    store: &S,
    opts: &RunOptions,
    outbox: &Outbox,
) -> Result<(), String> {
    let deliverer = &opts.deliverer;
    // A claim is held for the attempt's timeout and as long again: past
    // that, the worker that claimed it is taken to be dead.
    let hold = chrono::Duration::from_std(deliverer.timeout.saturating_mul(2))
        .unwrap_or(chrono::Duration::minutes(1));
    let mut rung = 0;
    let mut unavailable = 0u32;
    while !outbox.stopped() {
        outbox.in_flight.fetch_add(1, Ordering::SeqCst);
        let now = Utc::now();
        let until = now
            .checked_add_signed(hold)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let claimed = store.claim_deliveries(now, until, 1);
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(StoreError::Unavailable(why)) => {
                outbox.in_flight.fetch_sub(1, Ordering::SeqCst);
                unavailable_wait(&mut unavailable, &why, &|| outbox.stopped());
                continue;
            }
            Err(e) => {
                outbox.in_flight.fetch_sub(1, Ordering::SeqCst);
                return Err(e.to_string());
            }
        };
        unavailable = 0;
        let mut failed = None;
        for d in &claimed {
            let span = tracing::info_span!("delivery", key = %d.key, action = %d.action);
            let started = std::time::Instant::now();
            let outcome = span.in_scope(|| {
                if d.action == "approval_requested" {
                    approval_mail(store, opts, d)
                } else {
                    deliverer.deliver(d, Utc::now())
                }
            });
            record_delivery(d, &outcome, started);
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
            match store.attempted(d, &outcome) {
                Ok(()) => {}
                // Not recorded: its claim runs out and it is delivered
                // again, with the same key (the receiver drops the repeat).
                Err(StoreError::Unavailable(why)) => {
                    unavailable_wait(&mut unavailable, &why, &|| outbox.stopped());
                    break;
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        outbox.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(e) = failed {
            return Err(e);
        }
        if claimed.is_empty() {
            rung = outbox.wait(rung, opts.poll);
        }
    }
    Ok(())
}

/// An approval asked, mailed with links to the holders of its role (see
/// `PUT /v1/roles/{role}`), when links can be made (`--public-url`, which
/// `steward serve` sets).
fn approval_mail<S: Durable + Api>(store: &S, opts: &RunOptions, d: &Delivery) -> Attempt {
    let now = Utc::now();
    let Some(base) = &opts.public_url else {
        return Attempt::Delivered;
    };
    let args: serde_json::Value = serde_json::from_str(&d.args).unwrap_or_default();
    let role = args["role"].as_str().unwrap_or_default();
    let approval = args["approval"].as_str().unwrap_or_default().to_string();
    let holders = match store.roles(&d.tenant) {
        Ok(roles) => roles
            .into_iter()
            .find(|(r, _)| r == role)
            .map(|(_, emails)| emails)
            .unwrap_or_default(),
        Err(e) => {
            return Attempt::Failed {
                error: e.to_string(),
                retry_at: now.checked_add_signed(chrono::Duration::seconds(5)),
            }
        }
    };
    let tenant = d.tenant.clone();
    let mut link = |deadline: &str| -> Result<String, String> {
        let secret = steward_server::auth::random(32).map_err(|p| p.detail)?;
        let token = format!("{tenant}.{secret}");
        let hash = steward_server::auth::digest(&token);
        store
            .create_link(&tenant, &hash, &approval, deadline)
            .map_err(|e| e.to_string())?;
        Ok(format!("{}/approve/{token}", base.trim_end_matches('/')))
    };
    opts.deliverer.approval(d, &holders, &mut link, now)
}

/// The metrics of a committed batch.
fn record_batch(
    started: std::time::Instant,
    occurred: &[DateTime<Utc>],
    rejected: usize,
    errors: usize,
) {
    if occurred.is_empty() && rejected == 0 {
        return;
    }
    let now = Utc::now();
    metrics::counter!("steward_batches_total").increment(1);
    metrics::histogram!("steward_batch_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("steward_events_processed_total").increment(occurred.len() as u64);
    metrics::counter!("steward_events_rejected_total").increment(rejected as u64);
    metrics::counter!("steward_rule_errors_total").increment(errors as u64);
    let lag = metrics::histogram!("steward_event_lag_seconds");
    for t in occurred {
        let ms = now.signed_duration_since(*t).num_milliseconds().max(0);
        lag.record(ms as f64 / 1000.0);
    }
}

/// The metrics of a delivery attempt, labelled by action.
fn record_delivery(d: &Delivery, outcome: &Attempt, started: std::time::Instant) {
    let action = d.action.clone();
    metrics::histogram!("steward_delivery_seconds", "action" => action.clone())
        .record(started.elapsed().as_secs_f64());
    let name = match outcome {
        Attempt::Delivered => "steward_actions_delivered_total",
        Attempt::Failed {
            retry_at: Some(_), ..
        } => "steward_actions_failed_total",
        Attempt::Failed { retry_at: None, .. } => "steward_actions_dead_total",
    };
    metrics::counter!(name, "action" => action).increment(1);
}

/// A batch that did not commit: another worker's change conflicted with it
/// (it is done again), or the store failed (the worker stops).
enum Failed {
    Store(StoreError),
    Other(String),
    /// The programs changed since the worker loaded them: it loads them
    /// and does the batch again.
    Reload,
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Failed {
        Failed::Store(e)
    }
}

impl From<ControlError> for Failed {
    fn from(e: ControlError) -> Failed {
        match e {
            ControlError::Store(e) => Failed::Store(e),
            other => Failed::Other(other.to_string()),
        }
    }
}

impl From<Refused> for Failed {
    fn from(e: Refused) -> Failed {
        match e {
            Refused::Store(e) => Failed::Store(e),
            other => Failed::Other(other.to_string()),
        }
    }
}

/// An engine on `store`, knowing the tenants its schedules fire for.
fn engine_on<S: Durable>(programs: &Programs, store: S) -> Result<Engine<S>, String> {
    let tenants = if programs.has_schedules() {
        store.tenants().map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    let mut engine = Engine::new(programs.every.clone(), store);
    programs.install(&mut engine);
    engine.limits.missed_ticks_once = true;
    // Every event's trace is kept, for `GET /v1/events/{id}/trace`.
    engine.explain_all = true;
    for t in tenants {
        engine.add_tenant(&Arc::from(t.as_str()));
    }
    Ok(engine)
}

/// Conflicting batches in a row before a worker gives up (a conflict that
/// comes back every time is not another worker's doing).
const MAX_CONFLICTS_IN_A_ROW: u32 = 1000;

const WAIT_SLICE: Duration = Duration::from_secs(1);

/// Renews the worker's lease while it waits (SQLite).
fn renew<S: Durable>(engine: &Engine<S>, holder: &str, exclusive: bool) -> Result<(), String> {
    if !exclusive {
        return Ok(());
    }
    let now = Utc::now();
    if engine
        .store
        .lease(LEASE, holder, now, now + LEASE_FOR)
        .map_err(|e| e.to_string())?
    {
        Ok(())
    } else {
        Err("this worker lost its lease on the database, so it stops".into())
    }
}

/// The database is unavailable (a restart, a network blip): waits 2, 4,
/// ... up to 32 seconds (the `n`th time in a row), heeding a stop.
fn unavailable_wait(n: &mut u32, why: &str, stopped: &dyn Fn() -> bool) {
    *n = n.saturating_add(1);
    let wait = Duration::from_secs(1u64 << (*n).min(5));
    eprintln!(
        "the database is unavailable ({why}); trying again in {}s",
        wait.as_secs()
    );
    metrics::counter!("steward_store_unavailable_total").increment(1);
    let until = std::time::Instant::now() + wait;
    while std::time::Instant::now() < until && !stopped() {
        std::thread::sleep(WAIT_SLICE.min(wait));
    }
}

const PRUNE_EVERY: Duration = Duration::from_secs(60);
const PRUNE_BATCH: i64 = 500;

#[derive(Default)]
struct Tally {
    pruned: u64,
    handled: u64,
    rejected: u64,
    conflicts: u64,
}

/// One batch, in one transaction: claimed events handled (or rejected with
/// the reason), then what is due by `now`. Says how many events it claimed.
fn batch<S: Durable + Control + Api>(
    engine: &mut Engine<S>,
    programs: &Programs,
    limit: i64,
    sink: &mut Collect,
    rejected: &mut Vec<(String, String, String)>,
    occurred: &mut Vec<DateTime<Utc>>,
) -> Result<usize, Failed> {
    engine.store.begin_batch()?;
    let claimed = engine.store.claim_events(limit)?;
    // Read after the claims: an event inserted after a deploy committed
    // is run by the programs deployed.
    if engine.store.program_generation()? != programs.generation {
        return Err(Failed::Reload);
    }
    tracing::Span::current().record("claimed", claimed.len());
    for e in &claimed {
        let _span = tracing::debug_span!("event", tenant = %e.tenant, id = %e.id).entered();
        let decoded = match programs.broken.get(&e.tenant) {
            Some(why) => Err(format!("tenant `{}`: {why}", e.tenant)),
            None => decode_event(engine.program_for(&e.tenant).shapes(), &e.line)
                .map_err(|why| why.to_string()),
        };
        let reason = match decoded {
            Err(why) => Some(why),
            Ok(event) => match (event.occurred_at, engine.handle(event, sink)) {
                (at, Ok(Handled::Ran)) => {
                    occurred.push(at);
                    None
                }
                (_, Ok(Handled::Duplicate)) => {
                    Some("an event of this id was handled already".into())
                }
                (_, Err(Refused::Store(err))) => return Err(Failed::Store(err)),
                (_, Err(other)) => Some(other.to_string()),
            },
        };
        if let Some(reason) = reason {
            engine.store.reject(&e.tenant, &e.id, &reason)?;
            rejected.push((e.tenant.clone(), e.id.clone(), reason));
        }
    }
    // Decisions recorded over HTTP (`steward serve`), each taken once.
    for d in engine.store.decision_requests(limit)? {
        let by = format!("{} (via {})", d.by, d.via);
        match engine.decide(&d.approval, d.approved, &by, Utc::now(), sink) {
            Ok(_) => {}
            Err(Refused::Store(e)) => return Err(Failed::Store(e)),
            Err(other) => eprintln!("the decision on `{}` was not taken: {other}", d.approval),
        }
        engine.store.took_decision(&d.tenant, &d.approval)?;
    }
    engine.advance_to(Utc::now(), sink)?;
    let traces = traces_of(engine, sink);
    engine.store.put_traces(&traces)?;
    engine.store.commit_batch()?;
    Ok(claimed.len())
}

/// The batch's explain traces as stored: each with the actions and the
/// errors of its event.
fn traces_of<S: Durable>(engine: &mut Engine<S>, sink: &Collect) -> Vec<(String, String, String)> {
    let traces = std::mem::take(&mut engine.traces);
    if traces.is_empty() {
        return Vec::new();
    }
    let mut actions: std::collections::HashMap<(&str, &str), Vec<steward::engine::Action>> =
        std::collections::HashMap::new();
    for a in &sink.actions {
        actions
            .entry((&a.tenant, &a.event))
            .or_default()
            .push(a.clone());
    }
    traces
        .iter()
        .map(|t| {
            let key = (t.tenant.as_str(), t.event.as_str());
            let errors: Vec<_> = sink
                .errors
                .iter()
                .filter(|e| *e.event == *t.event)
                .cloned()
                .collect();
            let json = steward::boundary::explain_json(
                t,
                actions.get(&key).map_or(&[][..], Vec::as_slice),
                &errors,
            );
            (t.tenant.clone(), t.event.clone(), json.to_string())
        })
        .collect()
}

fn work<S: Durable + Control + Api>(
    slot: &mut Option<S>,
    programs: &mut Programs,
    opts: &RunOptions,
    holder: &str,
    exclusive: bool,
    outbox: &Outbox,
) -> Result<Finished, String> {
    let Some(store) = slot.take() else {
        return Err("no store".into());
    };
    let mut engine = Some(engine_on(programs, store)?);
    let result = work_on(&mut engine, programs, opts, holder, exclusive, outbox);
    *slot = engine.map(Engine::into_store);
    result
}

/// The event loop. `engine` is `None` only if a fresh engine could not be
/// made after a conflict (then the loop has returned that error).
fn work_on<S: Durable + Control + Api>(
    slot: &mut Option<Engine<S>>,
    programs: &mut Programs,
    opts: &RunOptions,
    holder: &str,
    exclusive: bool,
    outbox: &Outbox,
) -> Result<Finished, String> {
    let mut tally = Tally::default();
    let mut in_a_row = 0u32;
    // Batches in a row the database was unavailable for.
    let mut unavailable = 0u32;
    let mut pruned_at: Option<std::time::Instant> = None;
    // SIGTERM or SIGINT: finish the batch, give the leases up, exit 0.
    let stop = opts.stop.clone();
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| format!("cannot handle signal {signal}: {e}"))?;
    }
    // A store call outside the batch: the database being unavailable is
    // waited out (the round starts again); another error stops the worker.
    macro_rules! soft {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(StoreError::Unavailable(why)) => {
                    unavailable_wait(&mut unavailable, &why, &|| stop.load(Ordering::SeqCst));
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            }
        };
    }
    while slot.is_some() {
        // A deploy (here or by another process) changed the programs: a
        // fresh engine runs them, knowing the tenants their schedules need.
        if programs.stale || programs.checked.elapsed() >= PROGRAMS_EVERY {
            let changed = match slot.as_mut() {
                Some(engine) => programs.reload(&mut engine.store)?,
                None => false,
            };
            if changed {
                if let Some(old) = slot.take() {
                    *slot = Some(engine_on(programs, old.into_store())?);
                }
            }
        }
        let Some(engine) = slot.as_mut() else {
            break;
        };
        if stop.load(Ordering::SeqCst) {
            eprintln!("stopping: asked to (SIGTERM or SIGINT)");
            idle(engine, &tally, None)?;
            return Ok(Finished::Clean);
        }
        let now = Utc::now();
        // Retention, in rounds of a bounded size: once a minute, and at
        // once again while a round finds a full batch to forget.
        if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            let gone = soft!(engine.store.prune(
                now.checked_sub_signed(opts.retain)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
                PRUNE_BATCH,
            ));
            tally.pruned = tally.pruned.saturating_add(gone);
            metrics::counter!("steward_rows_pruned_total").increment(gone);
            let full = gone >= PRUNE_BATCH.unsigned_abs();
            pruned_at = if full {
                None
            } else {
                Some(std::time::Instant::now())
            };
        }
        if exclusive && !soft!(engine.store.lease(LEASE, holder, now, now + LEASE_FOR)) {
            return Err("this worker lost its lease on the database (stopped for more than a minute?), so it stops".into());
        }
        if !exclusive && programs.has_schedules() {
            // Of the workers sharing a database, the one holding this
            // lease fires the schedules, so a tick fires once.
            engine.fire_schedules =
                soft!(engine
                    .store
                    .lease(SCHEDULER, holder, now, now + SCHEDULER_FOR));
        }
        let mut sink = Collect::default();
        let mut rejected = Vec::new();
        let mut occurred = Vec::new();
        let started = std::time::Instant::now();
        let span = tracing::info_span!("batch", claimed = tracing::field::Empty);
        let done = span.in_scope(|| {
            batch(
                engine,
                programs,
                opts.batch,
                &mut sink,
                &mut rejected,
                &mut occurred,
            )
        });
        let claimed = match done {
            Ok(n) => n,
            Err(failed) => {
                let rolled_back = engine.store.rollback_batch();
                match failed {
                    Failed::Store(StoreError::Conflict(_)) => {
                        // Another worker changed what this batch read:
                        // start again from what the store holds.
                        tally.conflicts = tally.conflicts.saturating_add(1);
                        in_a_row = in_a_row.saturating_add(1);
                        if in_a_row > MAX_CONFLICTS_IN_A_ROW {
                            return Err(format!(
                                "{in_a_row} batches in a row conflicted with other workers; stopping rather than trying forever"
                            ));
                        }
                        metrics::counter!("steward_batch_conflicts_total").increment(1);
                        rolled_back.map_err(|e| e.to_string())?;
                        if let Some(old) = slot.take() {
                            *slot = Some(engine_on(programs, old.into_store())?);
                        }
                        continue;
                    }
                    Failed::Reload => {
                        rolled_back.map_err(|e| e.to_string())?;
                        programs.stale = true;
                        continue;
                    }
                    Failed::Store(StoreError::Unavailable(why)) => {
                        // Wait, and start again from what the store holds.
                        unavailable_wait(&mut unavailable, &why, &|| stop.load(Ordering::SeqCst));
                        if let Some(old) = slot.take() {
                            *slot = Some(engine_on(programs, old.into_store())?);
                        }
                        continue;
                    }
                    Failed::Store(e) => return Err(e.to_string()),
                    Failed::Other(e) => return Err(e),
                }
            }
        };
        in_a_row = 0;
        unavailable = 0;
        record_batch(started, &occurred, rejected.len(), sink.errors.len());
        for (tenant, id, reason) in &rejected {
            eprintln!("rejected event `{id}` of tenant `{tenant}`: {reason}");
        }
        tally.handled = tally
            .handled
            .saturating_add(claimed.saturating_sub(rejected.len()) as u64);
        tally.rejected = tally.rejected.saturating_add(rejected.len() as u64);
        // Locked for the batch only: the delivery threads print mails.
        let mut out = std::io::stdout().lock();
        for a in &sink.actions {
            writeln!(out, "{}", a.to_json())
                .map_err(|e| format!("cannot write the actions: {e}"))?;
        }
        out.flush()
            .map_err(|e| format!("cannot write the actions: {e}"))?;
        drop(out);
        for e in &sink.errors {
            report_error(e);
        }
        if !sink.actions.is_empty() {
            outbox.ring();
        }
        if claimed == 0 {
            let next = soft!(engine.store.next_due());
            let waiting = soft!(engine.store.waiting_deliveries(now));
            // Decisions recorded over HTTP and not yet taken.
            let deciding = soft!(engine.store.decision_requests(1).map_err(|e| match e {
                ControlError::Store(e) => e,
                other => StoreError::Corrupt(other.to_string()),
            }));
            let in_flight = outbox.in_flight.load(Ordering::SeqCst);
            let mut poll = opts.poll;
            if opts.exit_when_idle
                && next.is_none_or(|t| t > now)
                && waiting == 0
                && in_flight == 0
                && deciding.is_empty()
            {
                // A failed delivery tried again soon is waited for; one
                // further off, or dead, is left undelivered, and said.
                let left = soft!(engine.store.undelivered(UNDELIVERED_SHOWN));
                let retry = left
                    .iter()
                    .filter_map(|u| u.next_attempt_at)
                    .min()
                    .and_then(|t| (t - now).to_std().ok())
                    .filter(|wait| *wait <= opts.idle_wait);
                match retry {
                    Some(wait) => poll = poll.min(wait.max(Duration::from_millis(10))),
                    None => {
                        idle(engine, &tally, next)?;
                        if left.is_empty() {
                            return Ok(Finished::Clean);
                        }
                        for u in &left {
                            eprintln!("not delivered: {}", undelivered_line(u));
                        }
                        return Ok(Finished::Undelivered);
                    }
                }
            }
            // In slices of at most a second, so a signal to stop is
            // heeded and the leases stay renewed.
            let until = std::time::Instant::now() + poll;
            loop {
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() || stop.load(Ordering::SeqCst) {
                    break;
                }
                let woken = match engine.store.wait_for_work(left.min(WAIT_SLICE)) {
                    Ok(woken) => woken,
                    Err(StoreError::Unavailable(why)) => {
                        unavailable_wait(&mut unavailable, &why, &|| stop.load(Ordering::SeqCst));
                        break;
                    }
                    Err(e) => return Err(e.to_string()),
                };
                if woken {
                    break;
                }
                renew(engine, holder, exclusive)?;
            }
        }
    }
    Err("the worker lost its engine".into())
}
/// How many undelivered actions `--exit-when-idle` lists at the end.
const UNDELIVERED_SHOWN: i64 = 50;

/// One undelivered action, for the list `--exit-when-idle` ends with.
fn undelivered_line(u: &steward_db::Undelivered) -> String {
    let when = match (&u.status[..], u.next_attempt_at) {
        ("failed", Some(t)) => format!(
            ", next attempt {}",
            steward::engine::value::show_datetime(&t)
        ),
        _ => String::new(),
    };
    let error = u
        .last_error
        .as_ref()
        .map_or(String::new(), |e| format!(": {e}"));
    format!(
        "{} {} (rule `{}`, tenant `{}`) {} after {} attempt(s){when}{error}",
        u.action, u.key, u.rule, u.tenant, u.status, u.attempts
    )
}

/// Says what the run came to, and what remains.
fn idle<S: Durable>(
    engine: &Engine<S>,
    tally: &Tally,
    next: Option<DateTime<Utc>>,
) -> Result<(), String> {
    let store = &engine.store;
    let [pending, delivered, retrying, dead] =
        store.delivery_counts().map_err(|e| e.to_string())?;
    let timers = store.pending_timers().map_err(|e| e.to_string())?;
    let approvals = store.pending_approvals().map_err(|e| e.to_string())?;
    eprintln!(
        "idle: {} events handled, {} rejected{}{}; {} actions in the outbox ({delivered} delivered, {retrying} to be retried, {dead} dead); pending: {timers} timers{}, {} approvals",
        tally.handled,
        tally.rejected,
        if tally.conflicts > 0 {
            format!(" ({} batches done again after a conflict with another worker)", tally.conflicts)
        } else {
            String::new()
        },
        if tally.pruned > 0 {
            format!(", {} old rows pruned", tally.pruned)
        } else {
            String::new()
        },
        pending.saturating_add(delivered).saturating_add(retrying).saturating_add(dead),
        next.map_or(String::new(), |t| format!(" (next due {})", steward::engine::value::show_datetime(&t))),
        approvals.len(),
    );
    Ok(())
}
