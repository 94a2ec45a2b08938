//! The worker: what `steward run` and `steward serve` run on a database.
//! Events claimed in batches and handled by the engine with each tenant's
//! program, due timers, deadlines and schedules fired, the outbox
//! delivered by threads of their own (mail and signed webhooks), leases
//! between workers, retention, and the operators' logs and metrics.
//!
//! One concern a module:
//! - `work`: the event loop: batches until idle or stopped, retention
//!   rounds, waiting for work, what an idle run says;
//! - `batch`: one batch in one transaction, and what a failed one means;
//! - `programs`: the tenants' programs, reloaded when a deploy moves their
//!   generation, and an engine that runs them;
//! - `leases`: the lease a worker holds on SQLite, and the scheduler's;
//! - `outbox`: the delivery threads and the bell that wakes them;
//! - `deliver`: the transports: SMTP with `lettre`, webhooks signed per
//!   Standard Webhooks with `reqwest`, retries and backoff;
//! - `observe`: `tracing` to stderr and Prometheus metrics.
//!
//! The command line (`steward-cli`) only maps its arguments to
//! [`RunOptions`].

mod batch;
pub mod deliver;
pub mod guard;
mod leases;
pub mod observe;
mod outbox;
mod programs;
mod work;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use steward::boundary::Sources;
use steward::engine::Ruleset;
use steward_db::api::Api;
use steward_db::control::{Control, ControlError, EVERY_TENANT};
use steward_db::{Durable, PgStore, SqliteStore, Target};

pub use batch::traces_of;
pub use deliver::Deliverer;
pub use work::report_error;

use leases::{wait_for_lease, LEASE, SCHEDULER};
use outbox::{deliver_loop, Outbox};
use programs::Programs;
use work::work;

/// Pushing needs no rules: the payloads are checked when handled.
pub fn empty_rules() -> Result<Arc<Ruleset>, String> {
    let analysis = steward::check::analyze(&[], &steward::check::NoFiles);
    steward::engine::compile(&analysis)
        .map(Arc::new)
        .map_err(|_| "the standard library does not check".to_string())
}

pub struct RunOptions {
    pub database: Option<String>,
    pub rules: Option<(Sources, Arc<Ruleset>)>,
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
    observe::init_logging();
    if let Some(addr) = &opts.metrics {
        observe::serve_metrics(addr)?;
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
    if let Some((sources, rules)) = &opts.rules {
        let tenant = opts.tenant.as_deref().unwrap_or(EVERY_TENANT);
        let who = if tenant == EVERY_TENANT {
            "steward run --rules".to_string()
        } else {
            format!("steward run --rules --tenant {tenant}")
        };
        let deployed = match store.deploy_ruleset(tenant, RULESET, sources, &who) {
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

pub(crate) fn drive<S: Durable + Control + Api>(
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
