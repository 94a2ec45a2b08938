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
/// the `let`s in scope when it was suspended. The resumed block starts a
/// chain of emits of its own, so no chain depth is kept.
#[derive(Clone, Debug)]
pub struct Continuation {
    pub rule: usize,
    pub block: usize,
    pub event: Arc<Event>,
    pub envelope: Arc<Record>,
    pub locals: Vec<Value>,
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
    /// Adds an approval; one pending with the same key is removed and
    /// returned (superseded).
    fn put_approval(&mut self, approval: Approval) -> Option<Approval>;
    /// Takes a pending approval (to decide it).
    fn take_approval(&mut self, id: &str) -> Option<Approval>;
    /// Pending approvals, oldest first.
    fn pending_approvals(&self) -> Vec<Approval>;
    fn record_decision(&mut self, decision: Decision);
    fn decisions(&self) -> Vec<Decision>;
    /// Whether a firing against `key` is allowed: fewer than `limit` were
    /// counted in the window ending at `now`. Counts nothing.
    fn throttle_allows(
        &mut self,
        key: &str,
        limit: u64,
        window_ms: i64,
        now: DateTime<Utc>,
    ) -> bool;
    /// Counts a firing against `key` (after its rule ran to the end).
    fn throttle_count(&mut self, key: &str, now: DateTime<Utc>);
    /// The next tick of a schedule-triggered rule for a tenant.
    fn next_tick(&self, tenant: &str, rule: &str) -> Option<DateTime<Utc>>;
    fn set_next_tick(&mut self, tenant: &str, rule: &str, at: DateTime<Utc>);
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
    approval_keys: HashMap<TimerKey, String>,
    deadlines: BTreeSet<(DateTime<Utc>, u64, String)>,
    decisions: Vec<Decision>,
    throttles: HashMap<String, VecDeque<DateTime<Utc>>>,
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

    fn put_approval(&mut self, approval: Approval) -> Option<Approval> {
        let superseded = match self.approval_keys.get(&approval.key) {
            Some(id) if *id != approval.id => {
                let id = id.clone();
                self.take_approval(&id)
            }
            _ => None,
        };
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
        superseded
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

    fn throttle_allows(
        &mut self,
        key: &str,
        limit: u64,
        window_ms: i64,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(window) = self.throttles.get_mut(key) else {
            return limit > 0;
        };
        // The engine refuses windows that are not positive; one reaching back
        // before the calendar starts counts everything kept.
        let start = super::value::add_ms(now, window_ms.saturating_neg())
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        while window.front().is_some_and(|t| *t <= start) {
            window.pop_front();
        }
        (window.len() as u64) < limit
    }

    fn throttle_count(&mut self, key: &str, now: DateTime<Utc>) {
        self.throttles
            .entry(key.to_string())
            .or_default()
            .push_back(now);
    }

    fn next_tick(&self, tenant: &str, rule: &str) -> Option<DateTime<Utc>> {
        self.ticks.get(tenant)?.get(rule).copied()
    }

    fn set_next_tick(&mut self, tenant: &str, rule: &str, at: DateTime<Utc>) {
        self.ticks
            .entry(tenant.to_string())
            .or_default()
            .insert(rule.to_string(), at);
    }

    fn pending_timers(&self) -> usize {
        self.timers.len()
    }
}
