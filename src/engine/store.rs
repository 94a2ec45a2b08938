//! The engine's state, behind one trait: pending timers (keyed, cancellable),
//! suspended approvals, windows (throttles and counts), remembered field
//! values, schedule positions and the events already handled. [`MemoryStore`] keeps it in memory (replay, tests); the
//! database-backed stores implement the same trait over their tables, so the
//! runtime's semantics are written once, in `runtime.rs`.
//!
//! Contract: `pop_due` returns the earliest due item first (timers and
//! approval deadlines together; ties in insertion order). Future timers live
//! in a time-ordered structure apart from the due work, so their number does
//! not slow claiming what is due.

use std::collections::{BTreeSet, VecDeque};

use foldhash::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::action::Performed;
use super::decode::Event;
use super::lower::Ruleset;
use super::stored::StoredValue;
use super::value::{Record, Value};

/// What a timer or an approval resumes: a block of a rule of the ruleset
/// that suspended it (which it resumes under, whatever the engine runs
/// now), with the event and the `let`s in scope when it was suspended. The
/// resumed block starts a chain of emits of its own, so no chain depth is
/// kept.
#[derive(Clone)]
pub struct Continuation {
    pub rules: Arc<Ruleset>,
    pub rule: usize,
    pub block: usize,
    pub event: Arc<Event>,
    pub envelope: Arc<Record>,
    pub locals: Vec<Value>,
}

impl std::fmt::Debug for Continuation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Continuation")
            .field("version", &self.rules.version)
            .field("rule", &self.rule)
            .field("block", &self.block)
            .field("event", &self.event)
            .field("locals", &self.locals)
            .finish()
    }
}

/// A pending timer is unique per (tenant, rule, event key, statement): the
/// rule firing again for the same key moves it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerKey {
    pub tenant: Arc<str>,
    pub rule: Arc<str>,
    pub key: Arc<str>,
    pub pos: u32,
}

/// `unless E on k`: an event of type `event_type` whose `field` has `value`
/// cancels the timer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CancelKey {
    pub tenant: Arc<str>,
    pub event_type: Arc<str>,
    pub field: Arc<str>,
    pub value: String,
}

#[derive(Clone, Debug)]
pub struct Timer {
    pub key: TimerKey,
    pub due: DateTime<Utc>,
    pub cancel: Vec<CancelKey>,
    pub cont: Continuation,
}

#[derive(Clone, Debug)]
pub struct Approval {
    pub id: String,
    /// Unique among pending approvals, like a timer's: the rule asking again
    /// for the same key supersedes the one pending.
    pub key: TimerKey,
    pub role: Arc<str>,
    pub requested_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// The block run when approved, and the one run when rejected or expired.
    pub approve: usize,
    pub otherwise: Option<usize>,
    pub cont: Continuation,
}

/// Who decided an approval, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub approval: String,
    pub approved: bool,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Work that has come due.
#[derive(Debug)]
pub enum Due {
    Timer(Timer),
    Deadline(Approval),
    /// Stored work that cannot resume (its ruleset version, rule or step is
    /// gone): the engine removes it and reports why, as a rule error.
    Cancelled {
        timer: Option<TimerKey>,
        approval: Option<String>,
        reason: String,
    },
}

/// Why a store could not answer or commit. The engine stops the unit of
/// work it was doing, keeps none of it, and returns the error to its caller
/// ([`super::Refused::Store`]); the work is done again when the caller
/// retries (a due item stays due, an event stays unhandled).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or did not answer (a lost connection, a
    /// timeout, a full disk).
    #[error("the store is unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// Another worker changed the same state first (a lease lost, a
    /// serialization failure): the unit can be retried.
    #[error("the store refused a conflicting change: {0}")]
    Conflict(#[source] Cause),
    /// A row with the same key exists (a unique constraint): inserted
    /// first by another worker or request. Within a transaction that read
    /// before it wrote, doing it again sees that row.
    #[error("a row with the same key exists: {0}")]
    Duplicate(#[source] Cause),
    /// The store holds something it cannot read back.
    #[error("the store holds data it cannot read: {0}")]
    Corrupt(String),
}

/// What made a store fail: the error itself (a database driver's, with its
/// `source()` chain), or a message where there is no error to keep. Shown
/// as its message; two are equal when their messages are.
#[derive(Clone, Debug)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause(Arc::new(e))
    }
}

/// A cause that is a message only.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

impl From<String> for Cause {
    fn from(text: String) -> Cause {
        Cause::new(Message(text))
    }
}

impl From<&str> for Cause {
    fn from(text: &str) -> Cause {
        Cause::from(text.to_string())
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Cause {}

/// How a pending approval ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalEnd {
    pub id: String,
    /// `approved`, `rejected`, `expired` or `cancelled` (superseded
    /// included).
    pub status: &'static str,
    /// Why, when it was not decided: the deadline, what superseded it,
    /// why it was cancelled.
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// One change to the engine's state.
#[derive(Clone, Debug)]
pub enum Change {
    /// Adds a timer, replacing (moving) a pending one with the same key.
    PutTimer(Timer),
    /// Removes a pending timer (it fired, or was moved away).
    RemoveTimer(TimerKey),
    /// Cancels the pending timers waiting on a key (`unless E on k`).
    CancelTimers(CancelKey),
    /// Adds a pending approval (one superseded is removed by its own change).
    PutApproval(Approval),
    /// Ends a pending approval: decided, expired, cancelled or superseded.
    /// It is no longer pending; a durable store keeps how it ended, for
    /// the API to list.
    EndApproval(ApprovalEnd),
    Decision(Decision),
    /// Counts a firing of a throttled rule, an event a `count` clause
    /// matched, or an event a `count(...)` counts, in the window of `key`
    /// (of `window_ms`: marks older than that are no longer kept).
    WindowCount {
        tenant: Arc<str>,
        key: String,
        at: DateTime<Utc>,
        window_ms: i64,
    },
    /// Empties the window of `key` (a `count` clause reached its number).
    ClearWindow {
        tenant: Arc<str>,
        key: String,
    },
    /// The values of fields the rules remember (`previous`, `changed`) as
    /// the last event of (tenant, key) that carried them has them.
    Remember {
        tenant: Arc<str>,
        key: Arc<str>,
        fields: Vec<(Arc<str>, StoredValue)>,
    },
    /// Where a schedule of a tenant stands: its next tick.
    NextTick {
        tenant: Arc<str>,
        rule: Arc<str>,
        at: DateTime<Utc>,
    },
}

/// What one unit of work changes: the handling of one event (or one event a
/// rule emitted), or of one due item (a timer, a deadline, a decision, a
/// schedule tick). A store commits it whole or not at all, together with the
/// unit's actions ([`Store::commit`]). Per-entity state that later language
/// features keep (an entity's last payload, counts of events in a window)
/// is more kinds of [`Change`] and more reads on [`Store`], in the same unit.
#[derive(Debug, Default)]
pub struct Changes {
    /// The event the unit handled, by (tenant, id): marked handled.
    pub handled: Option<(Arc<str>, Arc<str>)>,
    pub changes: Vec<Change>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.handled.is_none() && self.changes.is_empty()
    }

    pub fn clear(&mut self) {
        self.handled = None;
        self.changes.clear();
    }
}

/// Where a throttle window of `window_ms` ending at `at` starts: a firing
/// at or before it is out of the window. The engine refuses windows that are
/// not positive; one reaching back before the calendar starts keeps everything.
pub fn window_start(at: DateTime<Utc>, window_ms: i64) -> DateTime<Utc> {
    super::value::add_ms(at, window_ms.saturating_neg()).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The engine's state. Reads answer from what is committed; writes are
/// units of work, each committed whole by [`Store::commit`]. Every method
/// can fail with a [`StoreError`]. `runtime.rs` is the one place where what
/// the state means is decided: a store keeps it and answers questions
/// about it.
pub trait Store {
    /// Whether the event was handled already.
    fn is_handled(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;
    /// When the earliest timer or approval deadline is due.
    fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// The earliest item due at or before `up_to` (timers and deadlines
    /// together; at one time, in the order they were put). It stays pending
    /// until a unit removes it.
    fn due(&self, up_to: DateTime<Utc>) -> Result<Option<Due>, StoreError>;
    /// How many pending timers wait on `key`.
    fn waiting_on(&self, key: &CancelKey) -> Result<usize, StoreError>;
    /// A pending timer, by its key (`None` also when its stored form can
    /// no longer resume: it is cancelled when it comes due).
    fn timer(&self, key: &TimerKey) -> Result<Option<Timer>, StoreError>;
    /// A pending approval, by id.
    fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError>;
    /// The pending approval with this key (one per key, like timers).
    fn approval_for(&self, key: &TimerKey) -> Result<Option<Approval>, StoreError>;
    /// Pending approvals, oldest first.
    fn pending_approvals(&self) -> Result<Vec<Approval>, StoreError>;
    /// How many marks the window of the tenant's `key` holds within
    /// `window_ms` ending at `now` (a mark at exactly the window's start is
    /// out).
    fn window_count(
        &self,
        tenant: &str,
        key: &str,
        window_ms: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// The remembered field values of (tenant, key), by field path.
    fn remembered(&self, tenant: &str, key: &str) -> Result<Remembered, StoreError>;
    /// The next tick of a schedule-triggered rule for a tenant.
    fn next_tick(&self, tenant: &str, rule: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    fn pending_timers(&self) -> Result<usize, StoreError>;
    /// Commits one unit of work: its changes, and the actions it performed
    /// (for a store that keeps an outbox; they reach the engine's sink only
    /// after the commit succeeded). All of it, or nothing. The store may take
    /// the changes out of `changes` (the engine clears it afterwards either
    /// way); on an error, the unit is done again from the start.
    fn commit(
        &mut self,
        changes: &mut Changes,
        actions: &mut dyn Iterator<Item = Performed<'_>>,
    ) -> Result<(), StoreError>;
}

/// The remembered field values of one key, by field path.
pub type Remembered = Vec<(Arc<str>, StoredValue)>;

/// Everything in memory.
#[derive(Default)]
pub struct MemoryStore {
    /// Handled event ids, by tenant.
    events: HashMap<Arc<str>, HashSet<Arc<str>>>,
    timers: HashMap<TimerKey, (Timer, u64)>,
    timer_queue: BTreeSet<(DateTime<Utc>, u64, TimerKey)>,
    cancel_index: HashMap<CancelKey, HashSet<TimerKey>>,
    approvals: HashMap<String, (Approval, u64)>,
    approval_keys: HashMap<TimerKey, String>,
    deadlines: BTreeSet<(DateTime<Utc>, u64, String)>,
    windows: HashMap<String, VecDeque<DateTime<Utc>>>,
    /// By (tenant, key), then field path.
    memory: HashMap<(Arc<str>, Arc<str>), Remembered>,
    /// By tenant, then rule.
    ticks: HashMap<String, HashMap<String, DateTime<Utc>>>,
    seq: u64,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn take_timer(&mut self, key: &TimerKey) -> Option<Timer> {
        let (timer, seq) = self.timers.remove(key)?;
        self.timer_queue.remove(&(timer.due, seq, key.clone()));
        for c in &timer.cancel {
            if let Some(set) = self.cancel_index.get_mut(c) {
                set.remove(key);
                if set.is_empty() {
                    self.cancel_index.remove(c);
                }
            }
        }
        Some(timer)
    }
}

impl MemoryStore {
    fn put_timer(&mut self, timer: Timer) {
        self.take_timer(&timer.key);
        self.seq += 1;
        for c in &timer.cancel {
            self.cancel_index
                .entry(c.clone())
                .or_default()
                .insert(timer.key.clone());
        }
        self.timer_queue
            .insert((timer.due, self.seq, timer.key.clone()));
        self.timers.insert(timer.key.clone(), (timer, self.seq));
    }

    fn cancel_timers(&mut self, key: &CancelKey) {
        let Some(keys) = self.cancel_index.remove(key) else {
            return;
        };
        for k in &keys {
            self.take_timer(k);
        }
    }

    fn put_approval(&mut self, approval: Approval) {
        if let Some(id) = self.approval_keys.get(&approval.key).cloned() {
            if id != approval.id {
                self.take_approval(&id);
            }
        }
        self.approval_keys
            .insert(approval.key.clone(), approval.id.clone());
        self.seq += 1;
        self.deadlines
            .insert((approval.deadline, self.seq, approval.id.clone()));
        if let Some((old, seq)) = self
            .approvals
            .insert(approval.id.clone(), (approval, self.seq))
        {
            self.deadlines.remove(&(old.deadline, seq, old.id));
        }
    }

    fn take_approval(&mut self, id: &str) -> Option<Approval> {
        let (approval, seq) = self.approvals.remove(id)?;
        self.deadlines
            .remove(&(approval.deadline, seq, approval.id.clone()));
        if self.approval_keys.get(&approval.key) == Some(&approval.id) {
            self.approval_keys.remove(&approval.key);
        }
        Some(approval)
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::PutTimer(t) => self.put_timer(t),
            Change::RemoveTimer(k) => {
                self.take_timer(&k);
            }
            Change::CancelTimers(k) => self.cancel_timers(&k),
            Change::PutApproval(a) => self.put_approval(a),
            Change::EndApproval(end) => {
                self.take_approval(&end.id);
            }
            // Durable stores keep decisions for the record (the API's
            // history); the memory store only needs the approval gone.
            Change::Decision(_) => {}
            Change::WindowCount {
                key, at, window_ms, ..
            } => {
                let window = self.windows.entry(key).or_default();
                let start = window_start(at, window_ms);
                while window.front().is_some_and(|t| *t <= start) {
                    window.pop_front();
                }
                window.push_back(at);
            }
            Change::ClearWindow { key, .. } => {
                self.windows.remove(&key);
            }
            Change::Remember {
                tenant,
                key,
                fields,
            } => {
                let kept = self.memory.entry((tenant, key)).or_default();
                for (path, value) in fields {
                    match kept.iter_mut().find(|(p, _)| *p == path) {
                        Some(slot) => slot.1 = value,
                        None => kept.push((path, value)),
                    }
                }
            }
            Change::NextTick { tenant, rule, at } => {
                self.ticks
                    .entry(tenant.to_string())
                    .or_default()
                    .insert(rule.to_string(), at);
            }
        }
    }
}

/// Memory cannot fail: every answer is `Ok`.
impl Store for MemoryStore {
    fn is_handled(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.events.get(tenant).is_some_and(|ids| ids.contains(id)))
    }

    fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let timer = self.timer_queue.first().map(|(t, _, _)| *t);
        let deadline = self.deadlines.first().map(|(t, _, _)| *t);
        Ok(match (timer, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn due(&self, up_to: DateTime<Utc>) -> Result<Option<Due>, StoreError> {
        let timer = self.timer_queue.first();
        let deadline = self.deadlines.first();
        let take_timer = match (timer, deadline) {
            (Some((a, s, _)), Some((b, t, _))) => (a, s) <= (b, t),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return Ok(None),
        };
        Ok(if take_timer {
            timer
                .filter(|(due, _, _)| *due <= up_to)
                .and_then(|(_, _, key)| self.timers.get(key))
                .map(|(t, _)| Due::Timer(t.clone()))
        } else {
            deadline
                .filter(|(due, _, _)| *due <= up_to)
                .and_then(|(_, _, id)| self.approvals.get(id))
                .map(|(a, _)| Due::Deadline(a.clone()))
        })
    }

    fn waiting_on(&self, key: &CancelKey) -> Result<usize, StoreError> {
        Ok(self.cancel_index.get(key).map_or(0, |set| set.len()))
    }

    fn timer(&self, key: &TimerKey) -> Result<Option<Timer>, StoreError> {
        Ok(self.timers.get(key).map(|(t, _)| t.clone()))
    }

    fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        Ok(self.approvals.get(id).map(|(a, _)| a.clone()))
    }

    fn approval_for(&self, key: &TimerKey) -> Result<Option<Approval>, StoreError> {
        Ok(self
            .approval_keys
            .get(key)
            .and_then(|id| self.approvals.get(id))
            .map(|(a, _)| a.clone()))
    }

    fn pending_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        let mut list: Vec<&(Approval, u64)> = self.approvals.values().collect();
        list.sort_by_key(|(a, seq)| (a.requested_at, *seq));
        Ok(list.into_iter().map(|(a, _)| a.clone()).collect())
    }

    fn window_count(
        &self,
        _tenant: &str,
        key: &str,
        window_ms: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let Some(window) = self.windows.get(key) else {
            return Ok(0);
        };
        let start = window_start(now, window_ms);
        let inside = window.iter().rev().take_while(|t| **t > start).count();
        Ok(u64::try_from(inside).unwrap_or(u64::MAX))
    }

    fn remembered(&self, tenant: &str, key: &str) -> Result<Remembered, StoreError> {
        let found = self.memory.get(&(Arc::from(tenant), Arc::from(key)));
        Ok(found.cloned().unwrap_or_default())
    }

    fn next_tick(&self, tenant: &str, rule: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.ticks.get(tenant).and_then(|r| r.get(rule)).copied())
    }

    fn pending_timers(&self) -> Result<usize, StoreError> {
        Ok(self.timers.len())
    }

    fn commit(
        &mut self,
        changes: &mut Changes,
        _actions: &mut dyn Iterator<Item = Performed<'_>>,
    ) -> Result<(), StoreError> {
        if let Some((tenant, id)) = changes.handled.take() {
            self.events.entry(tenant).or_default().insert(id);
        }
        for change in changes.changes.drain(..) {
            self.apply(change);
        }
        Ok(())
    }
}
