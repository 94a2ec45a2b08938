//! What a worker needs of a store besides the engine's contract, and both traits' implementations
//! for [`SqlStore`]: each method is answered by the module of its concern.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use steward::engine::store::{Approval, CancelKey, Changes, Due, StoreError, Timer, TimerKey};
use steward::engine::stored::StoredValue;
use steward::engine::{Performed, Ruleset, Store};

use crate::driver::Driver;
use crate::SqlStore;

mod batches;
mod changes;
mod due;
mod intake;
mod leases;
mod outbox;
mod retention;
mod state;
mod traces;

pub(crate) use batches::Deferred;
pub(crate) use changes::{initial_status, ActionRow};
pub use intake::{PendingEvent, PushError};
pub use outbox::{Attempt, Delivery, Undelivered, WebhookHeaders};
pub use traces::StoredTrace;

/// The tenant of an approval, from its id (which starts with it:
/// `acme/rule/event/step`), so its queries name the tenant first.
pub(crate) fn approval_tenant(id: &str) -> &str {
    id.split('/').next().unwrap_or_default()
}

/// What a durable store does besides the engine's contract: events in
/// (pushed, waiting, rejected) and the outbox.
pub trait Durable: Store {
    /// Inserts one envelope (a JSON line) as a pending event; false if the
    /// tenant already has an event of that id (it is kept as it was).
    fn push(&self, line: &str) -> Result<bool, PushError>;
    /// Up to `limit` pending events, in the order they occurred, as envelope
    /// lines for the engine's decoder.
    fn pending_events(&self, limit: i64) -> Result<Vec<PendingEvent>, StoreError>;
    /// Claims up to `limit` pending events for the open batch, in the order
    /// they occurred, at most the first pending one of each `(tenant, key)`
    /// where workers share the work (PostgreSQL: locked with `FOR UPDATE
    /// SKIP LOCKED` until the batch ends, so no other worker takes them or
    /// a later event of their key).
    fn claim_events(&self, limit: i64) -> Result<Vec<PendingEvent>, StoreError>;
    /// Whether several workers can work on this database at once
    /// (PostgreSQL); else one works at a time, under the lease `worker`.
    fn shares_work(&self) -> bool;
    /// Opens a batch: until it is committed or rolled back, every read and
    /// every unit's commit runs in one transaction, so a batch's events,
    /// their results and their statuses are written together or not at all.
    fn begin_batch(&self) -> Result<(), StoreError>;
    fn commit_batch(&self) -> Result<(), StoreError>;
    fn rollback_batch(&self) -> Result<(), StoreError>;
    /// Makes `rules` known, so work suspended under it resumes without
    /// being built again from the store.
    fn use_rules(&mut self, rules: Arc<Ruleset>);
    /// How many actions waiting for delivery (mail, webhooks) the store
    /// wrote since the last call: the worker wakes its delivery threads for
    /// those only (a `log`, a task or a notification kept for people is
    /// done when written).
    fn take_outbox_writes(&self) -> u64;
    /// How many notifications and tasks there are.
    fn people_work(&self) -> Result<[i64; 2], StoreError>;
    /// Forgets what finished before `before`: handled events (and their
    /// ids, so an id is remembered for as long as that), delivered and
    /// dead actions; up to `limit` rows of each, so a round stays short.
    /// Says how many rows went.
    fn prune(&self, before: DateTime<Utc>, limit: i64) -> Result<u64, StoreError>;
    /// Keeps explain traces, on the open batch's transaction if there is one.
    fn put_traces(&self, traces: &[StoredTrace]) -> Result<(), StoreError>;
    /// The stored trace of an event, as JSON.
    fn trace(&self, tenant: &str, event: &str) -> Result<Option<String>, StoreError>;
    /// Makes [`Durable::wait_for_work`] wake when events are inserted
    /// (PostgreSQL: `LISTEN steward_events`); without it, it only waits.
    fn listen(&mut self) -> Result<(), StoreError>;
    /// Waits up to `timeout`, less if events are inserted meanwhile (when
    /// listening): true if woken so.
    fn wait_for_work(&self, timeout: std::time::Duration) -> Result<bool, StoreError>;
    /// The tenants with events or schedules.
    fn tenants(&self) -> Result<Vec<String>, StoreError>;
    /// Marks an event rejected, with the reason.
    fn reject(&self, tenant: &str, id: &str, reason: &str) -> Result<(), StoreError>;
    /// How many events are pending, processed and rejected.
    fn event_counts(&self) -> Result<[i64; 3], StoreError>;
    /// The actions of the outbox, oldest first: (key, action, arguments).
    fn outbox(&self) -> Result<Vec<(String, String, String)>, StoreError>;
    /// Takes or renews the lease `name` for `holder` until `until`: true if
    /// `holder` has it now; false if another holder's lease has not expired
    /// by `now`.
    fn lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Who holds the lease `name`, and until when.
    fn lease_holder(&self, name: &str) -> Result<Option<(String, DateTime<Utc>)>, StoreError>;
    /// Gives the lease up (if `holder` has it).
    fn release(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// Claims up to `limit` actions of the outbox waiting to be delivered
    /// by `now` (pending, and not waiting for a retry), oldest first: each
    /// is held until `hold_until`, when it is due again unless its attempt
    /// was recorded (the worker delivering it died).
    fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Records an attempt: `Delivered`, or failed with the error and either
    /// when to try again or that no attempt is left (`dead`).
    fn attempted(&self, delivery: &Delivery, outcome: &Attempt) -> Result<(), StoreError>;
    /// How many actions wait to be delivered by `now`, or are being
    /// delivered (claimed).
    fn waiting_deliveries(&self, now: DateTime<Utc>) -> Result<i64, StoreError>;
    /// How many actions are in each state: pending, delivered, failed, dead.
    fn delivery_counts(&self) -> Result<[i64; 4], StoreError>;
    /// Up to `limit` actions not delivered (pending, failed and waiting for
    /// their next attempt, or dead), oldest first.
    fn undelivered(&self, limit: i64) -> Result<Vec<Undelivered>, StoreError>;
}

impl<D: Driver> Durable for SqlStore<D> {
    fn take_outbox_writes(&self) -> u64 {
        self.outbox_writes
            .swap(0, std::sync::atomic::Ordering::Relaxed)
    }
    fn push(&self, line: &str) -> Result<bool, PushError> {
        self.push_now(line)
    }
    fn pending_events(&self, limit: i64) -> Result<Vec<PendingEvent>, StoreError> {
        self.pending_events_now(limit, false)
    }
    fn claim_events(&self, limit: i64) -> Result<Vec<PendingEvent>, StoreError> {
        self.pending_events_now(limit, true)
    }
    fn shares_work(&self) -> bool {
        !D::DIALECT.claim.1.is_empty()
    }
    fn begin_batch(&self) -> Result<(), StoreError> {
        self.begin_batch_now()
    }
    fn commit_batch(&self) -> Result<(), StoreError> {
        self.commit_batch_now()
    }
    fn rollback_batch(&self) -> Result<(), StoreError> {
        self.rollback_batch_now()
    }
    fn use_rules(&mut self, rules: Arc<Ruleset>) {
        self.versions().insert(rules);
    }
    fn people_work(&self) -> Result<[i64; 2], StoreError> {
        self.people_work_now()
    }
    fn prune(&self, before: DateTime<Utc>, limit: i64) -> Result<u64, StoreError> {
        self.prune_now(before, limit)
    }
    fn put_traces(&self, traces: &[StoredTrace]) -> Result<(), StoreError> {
        self.put_traces_now(traces)
    }
    fn trace(&self, tenant: &str, event: &str) -> Result<Option<String>, StoreError> {
        self.trace_now(tenant, event)
    }
    fn listen(&mut self) -> Result<(), StoreError> {
        self.block(self.driver.listen(&self.pool))
    }
    fn wait_for_work(&self, timeout: std::time::Duration) -> Result<bool, StoreError> {
        self.block(self.driver.wait(timeout))
    }
    fn tenants(&self) -> Result<Vec<String>, StoreError> {
        self.tenants_now()
    }
    fn reject(&self, tenant: &str, id: &str, reason: &str) -> Result<(), StoreError> {
        self.reject_now(tenant, id, reason)
    }
    fn event_counts(&self) -> Result<[i64; 3], StoreError> {
        self.event_counts_now()
    }
    fn outbox(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.outbox_now()
    }
    fn lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.lease_now(name, holder, now, until)
    }
    fn lease_holder(&self, name: &str) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        self.lease_holder_now(name)
    }
    fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.claim_deliveries_now(now, hold_until, limit)
    }
    fn attempted(&self, d: &Delivery, outcome: &Attempt) -> Result<(), StoreError> {
        self.attempted_now(d, outcome)
    }
    fn waiting_deliveries(&self, now: DateTime<Utc>) -> Result<i64, StoreError> {
        self.waiting_deliveries_now(now)
    }
    fn undelivered(&self, limit: i64) -> Result<Vec<Undelivered>, StoreError> {
        self.undelivered_now(limit)
    }
    fn delivery_counts(&self) -> Result<[i64; 4], StoreError> {
        self.delivery_counts_now()
    }
    fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.release_now(name, holder)
    }
}

impl<D: Driver> Store for SqlStore<D> {
    fn is_handled(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.is_handled_now(tenant, id)
    }
    fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.next_due_now()
    }
    fn due(&self, up_to: DateTime<Utc>) -> Result<Option<Due>, StoreError> {
        self.due_now(up_to)
    }
    fn waiting_on(&self, key: &CancelKey) -> Result<usize, StoreError> {
        self.waiting_on_now(key)
    }
    fn timer(&self, key: &TimerKey) -> Result<Option<Timer>, StoreError> {
        self.timer_now(key)
    }
    fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        self.approval_now(id)
    }
    fn approval_for(&self, key: &TimerKey) -> Result<Option<Approval>, StoreError> {
        self.approval_for_now(key)
    }
    fn pending_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        self.pending_approvals_now()
    }
    fn window_count(
        &self,
        tenant: &str,
        key: &str,
        window_ms: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.window_count_now(tenant, key, window_ms, now)
    }
    fn remembered(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Vec<(Arc<str>, StoredValue)>, StoreError> {
        self.remembered_now(tenant, key)
    }
    fn next_tick(&self, tenant: &str, rule: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.next_tick_now(tenant, rule)
    }
    fn pending_timers(&self) -> Result<usize, StoreError> {
        self.pending_timers_now()
    }
    fn commit(
        &mut self,
        changes: &mut Changes,
        actions: &mut dyn Iterator<Item = Performed<'_>>,
    ) -> Result<(), StoreError> {
        self.commit_now(changes, actions)
    }
}
