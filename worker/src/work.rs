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
pub(crate) fn unavailable_wait(
    n: &mut u32,
    what: &str,
    why: &dyn std::fmt::Display,
    stopped: &dyn Fn() -> bool,
) {
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
    // SIGTERM or SIGINT: finish the batch, give the leases up, exit 0.
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, opts.stop.clone())
            .map_err(|e| format!("cannot handle signal {signal}: {e}"))?;
    }
    let mut looping = Looping {
        opts,
        holder,
        exclusive,
        outbox,
        tally: Tally::default(),
        in_a_row: 0,
        unavailable: 0,
        pruned_at: None,
    };
    while slot.is_some() {
        reload_programs(slot, programs)?;
        if let Some(done) = looping.round(slot, programs)? {
            return Ok(done);
        }
    }
    Err("the worker lost its engine".into())
}

/// A deploy (here or by another process) changed the programs: a fresh
/// engine runs them, knowing the tenants their schedules need.
fn reload_programs<S: Durable + Control + Api>(
    slot: &mut Option<Engine<S>>,
    programs: &mut Programs,
) -> Result<(), String> {
    if !programs.stale && programs.checked.elapsed() < PROGRAMS_EVERY {
        return Ok(());
    }
    let changed = match slot.as_mut() {
        Some(engine) => programs.reload(&mut engine.store)?,
        None => false,
    };
    if changed {
        if let Some(old) = slot.take() {
            *slot = Some(engine_on(programs, old.into_store())?);
        }
    }
    Ok(())
}

/// The event loop's state between rounds.
struct Looping<'a> {
    opts: &'a RunOptions,
    holder: &'a str,
    exclusive: bool,
    outbox: &'a Outbox,
    tally: Tally,
    /// Conflicting batches in a row.
    in_a_row: u32,
    /// Rounds in a row the database was unavailable for.
    unavailable: u32,
    pruned_at: Option<std::time::Instant>,
}

impl Looping<'_> {
    fn stopped(&self) -> bool {
        self.opts.stop.load(Ordering::SeqCst)
    }

    /// A store call outside the batch: the database being unavailable is
    /// waited out (`None`: the round starts again); another error stops
    /// the worker.
    fn soft<T>(&mut self, result: Result<T, StoreError>) -> Result<Option<T>, String> {
        match result {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::Unavailable(why)) => {
                let stop = &self.opts.stop;
                unavailable_wait(&mut self.unavailable, "the worker's round", &why, &|| {
                    stop.load(Ordering::SeqCst)
                });
                Ok(None)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// One round: upkeep, a batch, and (when it found nothing) waiting for
    /// work or, with `--exit-when-idle`, the end.
    fn round<S: Durable + Control + Api>(
        &mut self,
        slot: &mut Option<Engine<S>>,
        programs: &mut Programs,
    ) -> Result<Option<Finished>, String> {
        let Some(engine) = slot.as_mut() else {
            return Ok(None);
        };
        if self.stopped() {
            eprintln!("stopping: asked to (SIGTERM or SIGINT)");
            idle(engine, &self.tally, None)?;
            return Ok(Some(Finished::Clean));
        }
        let now = Utc::now();
        if !self.upkeep(engine, programs, now)? {
            return Ok(None);
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
                self.opts.batch,
                &mut sink,
                &mut rejected,
                &mut occurred,
            )
        });
        let claimed = match done {
            Ok(n) => n,
            Err(failed) => {
                self.failed(slot, programs, failed)?;
                return Ok(None);
            }
        };
        self.in_a_row = 0;
        self.unavailable = 0;
        record_batch(started, &occurred, rejected.len(), sink.errors.len());
        self.report(claimed, &sink, &rejected)?;
        // The delivery threads wake for what waits for them only.
        if engine.store.take_outbox_writes() > 0 {
            self.outbox.ring();
        }
        if claimed > 0 {
            return Ok(None);
        }
        self.when_idle(engine, now)
    }

    /// Retention in rounds of a bounded size (once a minute, and at once
    /// again while a round finds a full batch to forget) and the leases.
    /// False: the database was unavailable, and the round starts again.
    fn upkeep<S: Durable>(
        &mut self,
        engine: &mut Engine<S>,
        programs: &Programs,
        now: DateTime<Utc>,
    ) -> Result<bool, String> {
        if self.pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            let before = now
                .checked_sub_signed(self.opts.retain)
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            let Some(gone) = self.soft(engine.store.prune(before, PRUNE_BATCH))? else {
                return Ok(false);
            };
            self.tally.pruned = self.tally.pruned.saturating_add(gone);
            metrics::counter!("steward_rows_pruned_total").increment(gone);
            let full = gone >= PRUNE_BATCH.unsigned_abs();
            self.pruned_at = if full {
                None
            } else {
                Some(std::time::Instant::now())
            };
        }
        if self.exclusive {
            let lease = engine.store.lease(LEASE, self.holder, now, now + LEASE_FOR);
            match self.soft(lease)? {
                None => return Ok(false),
                Some(false) => return Err("this worker lost its lease on the database (stopped for more than a minute?), so it stops".into()),
                Some(true) => {}
            }
        }
        if !self.exclusive && programs.has_schedules() {
            // Of the workers sharing a database, the one holding this
            // lease fires the schedules, so a tick fires once.
            let lease = engine
                .store
                .lease(SCHEDULER, self.holder, now, now + SCHEDULER_FOR);
            let Some(held) = self.soft(lease)? else {
                return Ok(false);
            };
            engine.fire_schedules = held;
        }
        Ok(true)
    }

    /// A batch that failed is rolled back; another worker's change or a
    /// deploy is done again on a fresh engine, an unavailable database
    /// waited out, anything else stops the worker.
    fn failed<S: Durable + Control>(
        &mut self,
        slot: &mut Option<Engine<S>>,
        programs: &mut Programs,
        failed: Failed,
    ) -> Result<(), String> {
        let Some(engine) = slot.as_mut() else {
            return Ok(());
        };
        let rolled_back = engine.store.rollback_batch();
        match failed {
            Failed::Store(StoreError::Conflict(_) | StoreError::Duplicate(_)) => {
                // Another worker changed what this batch read: start
                // again from what the store holds.
                self.tally.conflicts = self.tally.conflicts.saturating_add(1);
                self.in_a_row = self.in_a_row.saturating_add(1);
                if self.in_a_row > MAX_CONFLICTS_IN_A_ROW {
                    return Err(format!(
                        "{} batches in a row conflicted with other workers; stopping rather than trying forever",
                        self.in_a_row
                    ));
                }
                metrics::counter!("steward_batch_conflicts_total").increment(1);
                rolled_back.map_err(|e| e.to_string())?;
            }
            Failed::Reload => {
                rolled_back.map_err(|e| e.to_string())?;
                programs.stale = true;
                return Ok(());
            }
            Failed::Store(StoreError::Unavailable(why)) => {
                // Wait, and start again from what the store holds.
                let stop = &self.opts.stop;
                unavailable_wait(&mut self.unavailable, "a batch", &why, &|| {
                    stop.load(Ordering::SeqCst)
                });
            }
            Failed::Store(e) => return Err(e.to_string()),
            Failed::Other(e) => return Err(e),
        }
        if let Some(old) = slot.take() {
            *slot = Some(engine_on(programs, old.into_store())?);
        }
        Ok(())
    }

    /// What a batch did: the tally, rejected events and rule errors on
    /// stderr, the actions as JSON lines on stdout.
    fn report(
        &mut self,
        claimed: usize,
        sink: &Collect,
        rejected: &[(String, String, String)],
    ) -> Result<(), String> {
        for (tenant, id, reason) in rejected {
            eprintln!("rejected event `{id}` of tenant `{tenant}`: {reason}");
        }
        self.tally.handled = self
            .tally
            .handled
            .saturating_add(claimed.saturating_sub(rejected.len()) as u64);
        self.tally.rejected = self.tally.rejected.saturating_add(rejected.len() as u64);
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
        Ok(())
    }

    /// Nothing was claimed: with `--exit-when-idle` and nothing due, the
    /// end (after the retries due within `--idle-wait`); else a wait for
    /// work, in slices of at most a second, so a signal to stop is heeded
    /// and the leases stay renewed.
    fn when_idle<S: Durable + Control + Api>(
        &mut self,
        engine: &mut Engine<S>,
        now: DateTime<Utc>,
    ) -> Result<Option<Finished>, String> {
        let Some(next) = self.soft(engine.store.next_due())? else {
            return Ok(None);
        };
        let Some(waiting) = self.soft(engine.store.waiting_deliveries(now))? else {
            return Ok(None);
        };
        // Decisions recorded over HTTP and not yet taken.
        let deciding = engine.store.decision_requests(1).map_err(|e| match e {
            ControlError::Store(e) => e,
            other => StoreError::Corrupt(other.to_string()),
        });
        let Some(deciding) = self.soft(deciding)? else {
            return Ok(None);
        };
        let in_flight = self.outbox.in_flight.load(Ordering::SeqCst);
        let mut poll = self.opts.poll;
        if self.opts.exit_when_idle
            && next.is_none_or(|t| t > now)
            && waiting == 0
            && in_flight == 0
            && deciding.is_empty()
        {
            // A failed delivery tried again soon is waited for; one
            // further off, or dead, is left undelivered, and said.
            let Some(left) = self.soft(engine.store.undelivered(UNDELIVERED_SHOWN))? else {
                return Ok(None);
            };
            let retry = left
                .iter()
                .filter_map(|u| u.next_attempt_at)
                .min()
                .and_then(|t| (t - now).to_std().ok())
                .filter(|wait| *wait <= self.opts.idle_wait);
            match retry {
                Some(wait) => poll = poll.min(wait.max(Duration::from_millis(10))),
                None => {
                    idle(engine, &self.tally, next)?;
                    if left.is_empty() {
                        return Ok(Some(Finished::Clean));
                    }
                    for u in &left {
                        eprintln!("not delivered: {}", undelivered_line(u));
                    }
                    return Ok(Some(Finished::Undelivered));
                }
            }
        }
        let until = std::time::Instant::now() + poll;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || self.stopped() {
                return Ok(None);
            }
            let woken = match engine.store.wait_for_work(left.min(WAIT_SLICE)) {
                Ok(woken) => woken,
                Err(StoreError::Unavailable(why)) => {
                    let stop = &self.opts.stop;
                    unavailable_wait(&mut self.unavailable, "waiting for work", &why, &|| {
                        stop.load(Ordering::SeqCst)
                    });
                    return Ok(None);
                }
                Err(e) => return Err(e.to_string()),
            };
            if woken {
                return Ok(None);
            }
            renew(engine, self.holder, self.exclusive)?;
        }
    }
}

/// How many undelivered actions `--exit-when-idle` lists at the end.
pub(crate) const UNDELIVERED_SHOWN: i64 = 50;

/// One undelivered action, for the list `--exit-when-idle` ends with.
pub(crate) fn undelivered_line(u: &steward_db::Undelivered) -> String {
    let when = match (u.status.as_str(), u.next_attempt_at) {
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
