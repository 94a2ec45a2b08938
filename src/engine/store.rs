//! The engine's state, behind one trait: pending timers (keyed, cancellable),
//! suspended approvals, throttle windows, schedule positions and the events
//! already handled. [`MemoryStore`] keeps it in memory (replay, tests); the
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

use super::decode::Event;
use super::value::{Record, Value};

/// What a timer or an approval resumes: a block of a rule, with the event and
/// the `let`s in scope when it was suspended.
#[derive(Clone, Debug)]
pub struct Continuation {
    pub rule: usize,
    pub block: usize,
    pub event: Arc<Event>,
    pub envelope: Arc<Record>,
    pub locals: Vec<Value>,
    /// How many `emit`s led to the event (for the chain bound).
    pub depth: u32,
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
}

pub trait Store {
    /// Records that an event is being handled; false if it already was.
    fn claim_event(&mut self, tenant: &Arc<str>, id: &Arc<str>) -> bool;
    /// Adds a timer, replacing (moving) a pending one with the same key.
    /// Returns whether one was replaced.
    fn put_timer(&mut self, timer: Timer) -> bool;
    /// Removes a pending timer; false if there was none.
    fn remove_timer(&mut self, key: &TimerKey) -> bool;
    /// Cancels the pending timers waiting on `key`; returns their keys.
    fn cancel_timers(&mut self, key: &CancelKey) -> Vec<TimerKey>;
    /// When the earliest timer or approval deadline is due.
    fn next_due(&self) -> Option<DateTime<Utc>>;
    /// Takes the earliest item due at or before `up_to`.
    fn pop_due(&mut self, up_to: DateTime<Utc>) -> Option<Due>;
    fn put_approval(&mut self, approval: Approval);
    /// Takes a pending approval (to decide it).
    fn take_approval(&mut self, id: &str) -> Option<Approval>;
    /// Pending approvals, oldest first.
    fn pending_approvals(&self) -> Vec<Approval>;
    fn record_decision(&mut self, decision: Decision);
    fn decisions(&self) -> Vec<Decision>;
    /// Counts a firing against `key` if fewer than `limit` happened in the
    /// window ending at `now`; false if the firing is throttled.
    fn throttle(&mut self, key: &str, limit: u64, window_ms: i64, now: DateTime<Utc>) -> bool;
    /// The next tick of a schedule-triggered rule.
    fn next_tick(&self, rule: &str) -> Option<DateTime<Utc>>;
    fn set_next_tick(&mut self, rule: &str, at: DateTime<Utc>);
    fn pending_timers(&self) -> usize;
}

/// Everything in memory.
#[derive(Default)]
pub struct MemoryStore {
    events: HashSet<(Arc<str>, Arc<str>)>,
    timers: HashMap<TimerKey, (Timer, u64)>,
    timer_queue: BTreeSet<(DateTime<Utc>, u64, TimerKey)>,
    cancel_index: HashMap<CancelKey, HashSet<TimerKey>>,
    approvals: HashMap<String, (Approval, u64)>,
    deadlines: BTreeSet<(DateTime<Utc>, u64, String)>,
    decisions: Vec<Decision>,
    throttles: HashMap<String, VecDeque<DateTime<Utc>>>,
    ticks: HashMap<String, DateTime<Utc>>,
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

impl Store for MemoryStore {
    fn claim_event(&mut self, tenant: &Arc<str>, id: &Arc<str>) -> bool {
        self.events.insert((tenant.clone(), id.clone()))
    }

    fn put_timer(&mut self, timer: Timer) -> bool {
        let replaced = self.take_timer(&timer.key).is_some();
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
        replaced
    }

    fn remove_timer(&mut self, key: &TimerKey) -> bool {
        self.take_timer(key).is_some()
    }

    fn cancel_timers(&mut self, key: &CancelKey) -> Vec<TimerKey> {
        let Some(keys) = self.cancel_index.remove(key) else {
            return Vec::new();
        };
        let mut keys: Vec<TimerKey> = keys.into_iter().collect();
        keys.sort();
        for k in &keys {
            self.take_timer(k);
        }
        keys
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        let timer = self.timer_queue.first().map(|(t, _, _)| *t);
        let deadline = self.deadlines.first().map(|(t, _, _)| *t);
        match (timer, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn pop_due(&mut self, up_to: DateTime<Utc>) -> Option<Due> {
        let timer = self.timer_queue.first().map(|(t, s, _)| (*t, *s));
        let deadline = self.deadlines.first().map(|(t, s, _)| (*t, *s));
        let take_timer = match (timer, deadline) {
            (Some(a), Some(b)) => a <= b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_timer {
            let (due, _, key) = self.timer_queue.first()?.clone();
            if due > up_to {
                return None;
            }
            self.take_timer(&key).map(Due::Timer)
        } else {
            let (due, _, id) = self.deadlines.first()?.clone();
            if due > up_to {
                return None;
            }
            self.take_approval(&id).map(Due::Deadline)
        }
    }

    fn put_approval(&mut self, approval: Approval) {
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
        Some(approval)
    }

    fn pending_approvals(&self) -> Vec<Approval> {
        let mut list: Vec<&(Approval, u64)> = self.approvals.values().collect();
        list.sort_by_key(|(a, seq)| (a.requested_at, *seq));
        list.into_iter().map(|(a, _)| a.clone()).collect()
    }

    fn record_decision(&mut self, decision: Decision) {
        self.decisions.push(decision);
    }

    fn decisions(&self) -> Vec<Decision> {
        self.decisions.clone()
    }

    fn throttle(&mut self, key: &str, limit: u64, window_ms: i64, now: DateTime<Utc>) -> bool {
        let window = self.throttles.entry(key.to_string()).or_default();
        // The engine refuses windows that are not positive; one reaching back
        // before the calendar starts counts everything kept.
        let start = super::value::add_ms(now, window_ms.saturating_neg())
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        while window.front().is_some_and(|t| *t <= start) {
            window.pop_front();
        }
        if (window.len() as u64) < limit {
            window.push_back(now);
            true
        } else {
            false
        }
    }

    fn next_tick(&self, rule: &str) -> Option<DateTime<Utc>> {
        self.ticks.get(rule).copied()
    }

    fn set_next_tick(&mut self, rule: &str, at: DateTime<Utc>) {
        self.ticks.insert(rule.to_string(), at);
    }

    fn pending_timers(&self) -> usize {
        self.timers.len()
    }
}
