//! The event loop: batches until the worker is idle (with
//! `exit_when_idle`) or asked to stop, retention in rounds, waiting for
//! work (an insert wakes a worker on PostgreSQL), and what an idle run
//! says it came to.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use steward::engine::store::StoreError;
use steward::engine::{Collect, Engine};
use steward_db::api::Api;
use steward_db::control::{Control, ControlError};
use steward_db::Durable;

use crate::batch::{batch, Failed};
use crate::leases::{renew, LEASE, LEASE_FOR, SCHEDULER, SCHEDULER_FOR};
use crate::observe::record_batch;
use crate::outbox::Outbox;
use crate::programs::{engine_on, Programs, PROGRAMS_EVERY};
use crate::{Finished, RunOptions};

/// Conflicting batches in a row before a worker gives up (a conflict that
/// comes back every time is not another worker's doing).
pub(crate) const MAX_CONFLICTS_IN_A_ROW: u32 = 1000;

pub(crate) const WAIT_SLICE: Duration = Duration::from_secs(1);

/// The database is unavailable (a restart, a network blip): waits 2, 4,
/// ... up to 32 seconds (the `n`th time in a row), heeding a stop.
pub(crate) fn unavailable_wait(n: &mut u32, what: &str, why: &str, stopped: &dyn Fn() -> bool) {
    *n = n.saturating_add(1);
    let wait = Duration::from_secs(1u64 << (*n).min(5));
    eprintln!(
        "the database is unavailable for {what} ({why}); trying again in {}s",
        wait.as_secs()
    );
    metrics::counter!("steward_store_unavailable_total").increment(1);
    let until = std::time::Instant::now() + wait;
    while std::time::Instant::now() < until && !stopped() {
        std::thread::sleep(WAIT_SLICE.min(wait));
    }
}

pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(60);
pub(crate) const PRUNE_BATCH: i64 = 500;

#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) pruned: u64,
    pub(crate) handled: u64,
    pub(crate) rejected: u64,
    pub(crate) conflicts: u64,
}

pub(crate) fn work<S: Durable + Control + Api>(
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
pub(crate) fn work_on<S: Durable + Control + Api>(
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
                    unavailable_wait(&mut unavailable, "the worker's round", &why, &|| {
                        stop.load(Ordering::SeqCst)
                    });
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
                    Failed::Store(StoreError::Conflict(_) | StoreError::Duplicate(_)) => {
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
                        unavailable_wait(&mut unavailable, "a batch", &why, &|| {
                            stop.load(Ordering::SeqCst)
                        });
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
                        unavailable_wait(&mut unavailable, "waiting for work", &why, &|| {
                            stop.load(Ordering::SeqCst)
                        });
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
pub(crate) const UNDELIVERED_SHOWN: i64 = 50;

/// One undelivered action, for the list `--exit-when-idle` ends with.
pub(crate) fn undelivered_line(u: &steward_db::Undelivered) -> String {
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
pub(crate) fn idle<S: Durable>(
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

/// A rule's error, on stderr.
pub fn report_error(error: &steward::engine::RuleError) {
    eprintln!(
        "error: rule `{}` on event `{}` at {}: {}",
        error.rule,
        error.event,
        steward::engine::value::show_datetime(&error.at),
        error.message
    );
}
