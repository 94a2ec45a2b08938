//! Leases: on SQLite one worker runs at a time (the others wait for its
//! lease); where workers share the work (PostgreSQL), one of them fires the
//! schedules, and another takes over when its lease expires.

use chrono::Utc;
use std::time::Duration;
use steward::engine::Engine;
use steward_db::Durable;

/// The lease a worker holds while it runs on a database whose workers
/// cannot share the work (SQLite, one writer): a second waits until the
/// first exits, or until its lease expires (it died). On PostgreSQL any
/// number of workers run at once, each batch's claims locked by its own
/// transaction.
pub(crate) const LEASE: &str = "worker";
/// The lease of the worker that fires the schedules, where several share
/// the work; another takes it over when it expires (the holder died).
pub(crate) const SCHEDULER: &str = "scheduler";
pub(crate) const SCHEDULER_FOR: chrono::Duration = chrono::Duration::seconds(10);
pub(crate) const LEASE_FOR: chrono::Duration = chrono::Duration::seconds(60);

pub(crate) fn wait_for_lease<S: Durable>(
    store: &S,
    holder: &str,
    poll: Duration,
) -> Result<(), String> {
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

/// Renews the worker's lease while it waits (SQLite).
pub(crate) fn renew<S: Durable>(
    engine: &Engine<S>,
    holder: &str,
    exclusive: bool,
) -> Result<(), String> {
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
