//! The runtime: what rules do with events, timers, approvals and schedules,
//! on any [`Store`] and on the clock it is given (a virtual one in replay and
//! tests). The engine never reads the wall clock.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Map;

pub use super::action::{Action, ActionKey, Collect, KeyParts, Performed, RuleError, Sink};
use super::decode::{Event, Shapes};
use super::eval::{Fault, Frame};
use super::lower::Ruleset;
use super::program::{Act, ApprovalOp, Cond, Library, Op, Rule, RuleTrigger, TimerOp};
use super::store::{
    Approval, ApprovalEnd, CancelKey, Change, Changes, Continuation, Decision, Due, Store,
    StoreError, Timer, TimerKey,
};
use super::value::{add_ms, show_datetime, show_duration, Record, Value};
use crate::check::types::RecordId;
use crate::syntax::ast::TimerKind;

/// How long a chain of events emitting events may get before it is stopped.
pub const MAX_CHAIN: u32 = 16;

/// Bounds that keep one input from taking the engine over. Each can be set
/// by the caller (the CLI has flags for the horizon and the ticks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How far ahead of the clock an event may be (or the clock be moved)
    /// in one step: a year-9999 `occurred_at` is refused, not obeyed.
    pub horizon: Duration,
    /// How many schedule ticks one advance of the clock may fire; the rest
    /// of a schedule's ticks in that span are skipped and reported.
    pub max_ticks: u64,
    /// How many events one input event (or one due timer or tick) may cause
    /// through `emit`, in all its chains together.
    pub max_caused: u32,
    /// Whether a schedule whose ticks were missed (the engine was not
    /// running) fires once, at the latest of them, rather than once per
    /// tick: what a live engine does when it comes back (`steward run`);
    /// replay fires every tick.
    pub missed_ticks_once: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            horizon: Duration::days(366),
            max_ticks: 100_000,
            max_caused: 1_000,
            missed_ticks_once: false,
        }
    }
}

/// Why the engine refused to handle an event or to move its clock. The unit
/// of work in hand was not done: the store is as it was before it (units
/// committed before it stay).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The store failed: the unit of work in hand was not committed, and
    /// will be done again when the caller retries.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "occurred_at {at} is more than {} ahead of the engine's clock ({clock}); \
         the event was not handled (a wrong year? the horizon can be raised)",
        super::value::show_duration(.horizon.num_milliseconds())
    )]
    BeyondHorizon {
        at: String,
        clock: String,
        horizon: Duration,
    },
}

/// What became of an event given to [`Engine::handle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    Ran,
    /// Its id was handled before: skipped.
    Duplicate,
}

/// What to do with approval requests when nobody is there to decide (replay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoDecide {
    Approve,
    Reject,
    /// Leave them pending until decided or expired.
    None,
}

/// What `explain` shows for one event.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub event: String,
    pub tenant: String,
    pub event_type: String,
    pub at: String,
    pub rules: Vec<RuleTrace>,
    /// The watches on what did not happen that this event started again.
    pub restarted: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct RuleTrace {
    pub rule: String,
    /// Whether the rule index put the rule forward.
    pub considered: bool,
    pub skipped: Option<String>,
    pub conditions: Vec<CondTrace>,
    pub throttled: Option<bool>,
    /// Where the rule's `count` clause stands after this event.
    pub counted: Option<CountTrace>,
    /// What a rule on what did not happen started watching.
    pub watch: Option<String>,
    /// The timers, schedules and approvals the rule left for later.
    pub scheduled: Vec<String>,
    pub matched: bool,
    pub error: Option<String>,
}

impl RuleTrace {
    /// A rule of the event's type that runs; what it does is added as it goes.
    fn considered(rule: &str, matched: bool) -> RuleTrace {
        RuleTrace {
            rule: rule.to_string(),
            considered: true,
            skipped: None,
            conditions: Vec::new(),
            throttled: None,
            counted: None,
            watch: None,
            scheduled: Vec::new(),
            matched,
            error: None,
        }
    }

    /// A rule of the event's type that did not run, and why.
    fn skipped(rule: &str, why: String) -> RuleTrace {
        RuleTrace {
            considered: false,
            skipped: Some(why),
            ..RuleTrace::considered(rule, false)
        }
    }
}

/// A `count N within D` clause at one event: `seen` matching events in the
/// window, this one included, of the `of` it waits for.
#[derive(Clone, Debug)]
pub struct CountTrace {
    pub seen: u64,
    pub of: u64,
    pub window: String,
    pub reached: bool,
}

#[derive(Clone, Debug)]
pub struct CondTrace {
    pub condition: String,
    /// `true`, `false`, or the error it raised.
    pub value: serde_json::Value,
    pub reads: Map<String, serde_json::Value>,
}

/// Counters, for summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Input events handled (emitted ones are counted in `emitted`).
    pub events: u64,
    pub emitted: u64,
    pub duplicates: u64,
    pub actions: u64,
    pub errors: u64,
    pub timers_fired: u64,
    pub timers_cancelled: u64,
    pub approvals_expired: u64,
    pub ticks: u64,
    pub ticks_skipped: u64,
}

pub struct Engine<S: Store> {
    /// The program of every tenant without one of its own in `programs`.
    pub rules: Arc<Ruleset>,
    /// Each tenant's own program, where tenants deploy their rules.
    pub programs: std::collections::HashMap<Arc<str>, Arc<Ruleset>>,
    pub store: S,
    /// The tenants seen so far: a schedule-triggered rule fires for each.
    tenants: std::collections::BTreeSet<Arc<str>>,
    pub auto_decide: AutoDecide,
    /// Explain the event with this id when it is handled.
    pub explain: Option<String>,
    /// ... of this tenant only, if set.
    pub explain_tenant: Option<String>,
    /// Explain every event (a durable worker stores each trace).
    pub explain_all: bool,
    pub traces: Vec<Trace>,
    pub stats: Stats,
    pub limits: Limits,
    /// Whether this engine fires schedules (`every`): of several workers
    /// on one database, only the one that holds the schedule's lease does.
    pub fire_schedules: bool,
    clock: Option<DateTime<Utc>>,
    /// Events caused so far by the input being handled (see `Limits::max_caused`).
    caused: u32,
    scratch: Vec<usize>,
    /// What the rules on the event being handled read from its history (see
    /// `engine::history`), by recall index; `no_recall` when none.
    recalled: Arc<[Value]>,
    no_recall: Arc<[Value]>,
    /// Where the clock is being moved to (by `advance`): with
    /// `Limits::missed_ticks_once`, a schedule statement's missed ticks are
    /// skipped up to it.
    advancing_to: Option<DateTime<Utc>>,
    /// The rule whose `stop` ended the handling of the event in hand.
    stopped: Option<Arc<str>>,
    /// What the rule (or resumed block) being run has done so far; applied
    /// when it ends, dropped if it faults, so its handling is all or nothing.
    fx: Effects,
    /// Events waiting to be handled (emitted by rules), first to last.
    backlog: Queue,
}

/// The effects of one unit of work (the handling of one event, or of one
/// due item), held until it ends and then committed to the store as one
/// [`Changes`] with its actions, which reach the sink only after that. A rule
/// that faults has its own part dropped ([`Effects::rollback`] to the
/// [`Mark`] taken when it started): its handling is all or nothing.
#[derive(Default)]
struct Effects {
    actions: Vec<Pending>,
    /// The arguments of `actions`, each a range of this.
    args: Vec<(Arc<str>, Value)>,
    changes: Changes,
    emitted: Vec<(Arc<Event>, u32, Arc<str>)>,
    /// What the unit handles: the event (for a resumed block, the one it was
    /// suspended on), its source (see `Ctx::source`) and the time.
    unit: Option<(Arc<Event>, Arc<str>, DateTime<Utc>)>,
}

/// Where the effects stood when a rule started.
#[derive(Clone, Copy)]
struct Mark {
    actions: usize,
    args: usize,
    changes: usize,
    emitted: usize,
}

impl Effects {
    fn clear(&mut self) {
        self.actions.clear();
        self.args.clear();
        self.changes.clear();
        self.emitted.clear();
        self.unit = None;
    }

    fn mark(&self) -> Mark {
        Mark {
            actions: self.actions.len(),
            args: self.args.len(),
            changes: self.changes.changes.len(),
            emitted: self.emitted.len(),
        }
    }

    fn rollback(&mut self, mark: Mark) {
        self.actions.truncate(mark.actions);
        self.args.truncate(mark.args);
        self.changes.changes.truncate(mark.changes);
        self.emitted.truncate(mark.emitted);
    }

    fn change(&mut self, change: Change) {
        self.changes.changes.push(change);
    }
}

struct Pending {
    rule: usize,
    pos: u32,
    action: Arc<str>,
    args: std::ops::Range<usize>,
}

/// The event being handled and where its chain stands.
struct Ctx {
    rule: usize,
    event: Arc<Event>,
    envelope: Arc<Record>,
    now: DateTime<Utc>,
    depth: u32,
    /// What is being handled: the event's id, or for a resumed block the
    /// timer or approval instance. Emitted ids and idempotency keys use it.
    source: Arc<str>,
    /// What started the chain (for the chain bound's message).
    origin: Arc<str>,
    /// What the rule reads from the history of events (empty in resumed
    /// blocks and schedules, which the checker keeps from reading it).
    recalled: Arc<[Value]>,
}

impl Ctx {
    /// What the compiled expressions of the rule read, with `locals`.
    fn frame<'a>(&'a self, locals: &'a [Value], lib: &'a Library) -> Frame<'a> {
        Frame {
            event: &self.event.payload,
            envelope: &self.envelope,
            locals,
            recalled: &self.recalled,
            now: self.now,
            lib,
        }
    }
}

/// The trace of a rule considered for an event: each of its conditions,
/// its value and the values it read.
fn trace_conditions(rules: &Ruleset, rule: &Rule, frame: &Frame) -> RuleTrace {
    let mut rt = RuleTrace::considered(&rule.name, true);
    for c in &rule.conditions {
        let value = (c.cond)(frame);
        let reads = c
            .reads
            .iter()
            .map(|(text, place)| (text.clone(), rules.shapes().to_json(place.get(frame))))
            .collect();
        rt.matched &= value == Ok(true);
        rt.conditions.push(CondTrace {
            condition: c.text.clone(),
            value: match value {
                Ok(b) => serde_json::Value::Bool(b),
                Err(f) => serde_json::Value::String(format!("error: {f}")),
            },
            reads,
        });
    }
    rt
}

/// Where an event stands in its chain of emits.
#[derive(Clone, Copy)]
struct Chain<'a> {
    depth: u32,
    origin: &'a Arc<str>,
}

/// Events to handle: the event, its depth in its chain, the chain's origin,
/// and the time it is handled at.
type Queue = VecDeque<(Arc<Event>, u32, Arc<str>, DateTime<Utc>)>;

impl<S: Store> Engine<S> {
    pub fn new(rules: Arc<Ruleset>, store: S) -> Engine<S> {
        Engine {
            rules,
            programs: std::collections::HashMap::new(),
            store,
            tenants: std::collections::BTreeSet::new(),
            auto_decide: AutoDecide::None,
            explain: None,
            explain_tenant: None,
            explain_all: false,
            traces: Vec::new(),
            stats: Stats::default(),
            limits: Limits::default(),
            fire_schedules: true,
            clock: None,
            caused: 0,
            scratch: Vec::new(),
            recalled: Arc::from(Vec::new()),
            no_recall: Arc::from(Vec::new()),
            advancing_to: None,
            stopped: None,
            fx: Effects::default(),
            backlog: Queue::new(),
        }
    }

    /// Gives the store back (a worker whose batch failed starts again from
    /// what the store holds, with an engine of its own).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Makes schedules fire for `tenant` from now on (as a handled event of
    /// the tenant does).
    pub fn add_tenant(&mut self, tenant: &Arc<str>) {
        if !self.tenants.contains(tenant) {
            self.tenants.insert(tenant.clone());
        }
    }

    /// The program `tenant`'s events run under.
    pub fn program_for(&self, tenant: &str) -> &Arc<Ruleset> {
        self.programs.get(tenant).unwrap_or(&self.rules)
    }

    /// Runs `f` with `rules` as the current program.
    fn under<T>(&mut self, rules: Arc<Ruleset>, f: impl FnOnce(&mut Self) -> T) -> T {
        let current = std::mem::replace(&mut self.rules, rules);
        let out = f(self);
        self.rules = current;
        out
    }

    /// The engine's current time: the latest event, timer or advance.
    pub fn now(&self) -> Option<DateTime<Utc>> {
        self.clock
    }

    /// Handles one event at its `occurred_at` (or the current time, if that
    /// is earlier): first everything due before it, then the event and the
    /// events its rules emit. An event id seen before is skipped; an event
    /// beyond the horizon is refused, and nothing is done.
    pub fn handle(&mut self, event: Event, sink: &mut dyn Sink) -> Result<Handled, Refused> {
        let at = match self.clock {
            Some(c) if c > event.occurred_at => c,
            _ => event.occurred_at,
        };
        self.within_horizon(at)?;
        self.add_tenant(&event.tenant);
        // At one instant, events come before timers and ticks.
        self.advance(at, false, sink)?;
        if self.store.is_handled(&event.tenant, &event.id)? {
            self.stats.duplicates += 1;
            return Ok(Handled::Duplicate);
        }
        let origin = event.id.clone();
        self.backlog.push_back((Arc::new(event), 0, origin, at));
        self.caused = 0;
        self.drain(sink)?;
        Ok(Handled::Ran)
    }

    /// Refuses a time more than the horizon ahead of the clock.
    fn within_horizon(&self, at: DateTime<Utc>) -> Result<(), Refused> {
        let Some(clock) = self.clock else {
            return Ok(());
        };
        match clock.checked_add_signed(self.limits.horizon) {
            Some(limit) if at > limit => Err(Refused::BeyondHorizon {
                at: show_datetime(&at),
                clock: show_datetime(&clock),
                horizon: self.limits.horizon,
            }),
            _ => Ok(()),
        }
    }

    /// Handles the events in the backlog, each as a unit of work of its own.
    /// One whose unit the store failed to commit stays first in the backlog,
    /// and is handled again by the next call (so an event a rule emitted is
    /// not lost when the store fails after its parent's unit).
    fn drain(&mut self, sink: &mut dyn Sink) -> Result<(), StoreError> {
        while let Some((event, depth, origin, now)) = self.backlog.front().cloned() {
            if self.programs.is_empty() {
                self.process(event, depth, origin, now, sink)?;
            } else {
                let program = self.program_for(&event.tenant).clone();
                self.under(program, |e| e.process(event, depth, origin, now, sink))?;
            }
            self.backlog.pop_front();
        }
        Ok(())
    }

    /// Starts a unit of work: the handling of `event` (for a resumed block,
    /// the event it was suspended on) as `source`, at `now`.
    fn begin(&mut self, event: &Arc<Event>, source: &Arc<str>, now: DateTime<Utc>) {
        self.fx.clear();
        self.fx.unit = Some((event.clone(), source.clone(), now));
    }

    /// Ends a unit of work: commits its changes and actions to the store as
    /// one, then hands the actions to the sink and queues the events its
    /// rules emitted. A store error leaves the store as it was before the
    /// unit, and nothing reaches the sink.
    fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), StoreError> {
        self.supersede_approvals()?;
        let Some((event, source, now)) = self.fx.unit.clone() else {
            return Ok(());
        };
        let own = self.programs.contains_key(&event.tenant);
        let Engine {
            store, fx, rules, ..
        } = self;
        let at = PerformedAt {
            event: &event,
            source: &source,
            now,
            secrets_of: if own { &event.tenant } else { EVERY_TENANT },
        };
        if !fx.changes.is_empty() || !fx.actions.is_empty() {
            let mut actions = fx
                .actions
                .iter()
                .filter_map(|p| performed(rules, &fx.args, p, at));
            store.commit(&mut fx.changes, &mut actions)?;
        }
        for p in &fx.actions {
            let Some(action) = performed(rules, &fx.args, p, at) else {
                continue;
            };
            self.stats.actions += 1;
            sink.action(action);
        }
        let backlog = &mut self.backlog;
        backlog.extend(
            fx.emitted
                .drain(..)
                .map(|(event, depth, origin)| (event, depth, origin, now)),
        );
        fx.clear();
        Ok(())
    }

    /// An approval put for a key that has one pending supersedes it: the old
    /// one is removed, and its cancellation is an action, in the same unit.
    fn supersede_approvals(&mut self) -> Result<(), StoreError> {
        let mut i = 0;
        while let Some(change) = self.fx.changes.changes.get(i) {
            i += 1;
            let Change::PutApproval(new) = change else {
                continue;
            };
            let Some(old) = self.store.approval_for(&new.key)? else {
                continue;
            };
            if old.id == new.id {
                continue;
            }
            let reason = format!("superseded by `{}`", new.id);
            let at = new.requested_at;
            let (rule, pos) = (new.cont.rule, new.key.pos);
            let start = self.fx.args.len();
            self.fx.args.extend([
                (Arc::from("approval"), Value::str(&old.id)),
                (Arc::from("reason"), Value::str(&reason)),
            ]);
            self.fx.actions.push(Pending {
                rule,
                pos,
                action: Arc::from("approval_cancelled"),
                args: start..self.fx.args.len(),
            });
            self.fx.change(Change::EndApproval(ApprovalEnd {
                id: old.id,
                status: "cancelled",
                reason: Some(reason),
                at,
            }));
        }
        Ok(())
    }

    /// Commits a unit that only moves a schedule.
    fn set_next_tick(
        &mut self,
        tenant: &Arc<str>,
        rule: &Arc<str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut changes = Changes {
            handled: None,
            changes: vec![Change::NextTick {
                tenant: tenant.clone(),
                rule: rule.clone(),
                at,
            }],
        };
        self.store.commit(&mut changes, &mut std::iter::empty())
    }

    /// Moves the clock to `to`, firing timers, approval deadlines and
    /// schedules due by then, in time order. A time beyond the horizon is
    /// refused; more than `limits.max_ticks` schedule ticks are skipped and
    /// reported as a rule error of the schedule's rule.
    pub fn advance_to(&mut self, to: DateTime<Utc>, sink: &mut dyn Sink) -> Result<(), Refused> {
        self.advance(to, true, sink)
    }

    /// Fires what is due before `to` (and at `to` too, when `inclusive`).
    fn advance(
        &mut self,
        to: DateTime<Utc>,
        inclusive: bool,
        sink: &mut dyn Sink,
    ) -> Result<(), Refused> {
        self.within_horizon(to)?;
        // What a failed commit left first.
        self.drain(sink)?;
        self.advancing_to = Some(to);
        let start = self.clock.unwrap_or(to);
        let mut ticks = 0u64;
        if self.clock.is_none() {
            self.clock = Some(to);
        }
        // Each tenant with schedules in its program, with that program.
        let tenants: Vec<(Arc<str>, Arc<Ruleset>)> = if !self.fire_schedules {
            Vec::new()
        } else {
            self.tenants
                .iter()
                .map(|t| (t.clone(), self.program_for(t).clone()))
                .filter(|(_, rules)| !rules.index.schedules.is_empty())
                .collect()
        };
        for (tenant, rules) in &tenants {
            for &r in &rules.index.schedules {
                let Some(rule) = rules.rules.get(r) else {
                    continue;
                };
                if self.store.next_tick(tenant, &rule.name)?.is_none() {
                    let t = self.under(rules.clone(), |e| e.next_tick_or_end(r, start, sink));
                    self.set_next_tick(tenant, &rule.name, t)?;
                }
            }
        }
        let is_due = |t: &DateTime<Utc>| if inclusive { *t <= to } else { *t < to };
        loop {
            let due = self.store.next_due()?.filter(is_due);
            let mut tick: Option<(DateTime<Utc>, usize, usize)> = None;
            for (i, (tenant, rules)) in tenants.iter().enumerate() {
                for &r in &rules.index.schedules {
                    let Some(rule) = rules.rules.get(r) else {
                        continue;
                    };
                    let next = self.store.next_tick(tenant, &rule.name)?;
                    if let Some(t) = next.filter(is_due) {
                        if tick.is_none_or(|(best, _, _)| t < best) {
                            tick = Some((t, r, i));
                        }
                    }
                }
            }
            match (due, tick) {
                (Some(d), Some((t, _, _))) if d <= t => self.fire_due(d, sink)?,
                (Some(d), None) => self.fire_due(d, sink)?,
                (_, Some((t, r, i))) => {
                    self.clock = Some(t.max(self.clock.unwrap_or(t)));
                    let Some((tenant, rules)) = tenants.get(i) else {
                        break;
                    };
                    if ticks >= self.limits.max_ticks {
                        self.under(rules.clone(), |e| e.skip_ticks(tenant, r, t, to, sink))?;
                        continue;
                    }
                    ticks += 1;
                    let once = self.limits.missed_ticks_once;
                    self.under(rules.clone(), |e| {
                        let mut t = t;
                        let mut after = e.next_tick_or_end(r, t, sink);
                        if once {
                            // Missed while nobody ran: only the latest fires.
                            let mut missed = 0;
                            while is_due(&after) && missed < e.limits.max_ticks {
                                t = after;
                                after = e.next_tick_or_end(r, t, sink);
                                missed += 1;
                            }
                            e.stats.ticks_skipped = e.stats.ticks_skipped.saturating_add(missed);
                        }
                        e.stats.ticks += 1;
                        e.tick(tenant, r, t, after, sink)
                    })?;
                }
                (None, None) => break,
            }
        }
        if self.clock.is_none_or(|c| c < to) {
            self.clock = Some(to);
        }
        Ok(())
    }

    /// Moves schedule `r` from its tick `from` to its first tick after `to`
    /// without firing, and says how many were skipped.
    fn skip_ticks(
        &mut self,
        tenant: &Arc<str>,
        r: usize,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        sink: &mut dyn Sink,
    ) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        let Some(rule) = rules.rules.get(r) else {
            return Ok(());
        };
        let next = self.next_tick_or_end(r, to, sink);
        self.set_next_tick(tenant, &rule.name, next)?;
        let skipped = match &rule.trigger {
            RuleTrigger::Interval(ms) if *ms > 0 => (next
                .timestamp_millis()
                .saturating_sub(from.timestamp_millis())
                / ms)
                .max(1) as u64,
            _ => 1,
        };
        self.stats.ticks_skipped = self.stats.ticks_skipped.saturating_add(skipped);
        self.stats.errors += 1;
        sink.error(RuleError {
            at: from,
            event: Arc::from(format!("{}@{}", rule.name, show_datetime(&from))),
            rule: rule.name.clone(),
            message: format!(
                "{skipped} ticks from {} to {} skipped: one advance of the clock may fire at most {} ticks",
                show_datetime(&from),
                show_datetime(&to),
                self.limits.max_ticks
            ),
        });
        Ok(())
    }

    /// The next tick of schedule `r` after `after`; when there is none (a
    /// cron expression past the year 2100, where the cron library stops),
    /// says so as a rule error and answers "never".
    fn next_tick_or_end(
        &mut self,
        r: usize,
        after: DateTime<Utc>,
        sink: &mut dyn Sink,
    ) -> DateTime<Utc> {
        let Some(rule) = self.rules.rules.get(r) else {
            return DateTime::<Utc>::MAX_UTC;
        };
        if let Some(t) = next_tick(rule, after) {
            return t;
        }
        self.stats.errors += 1;
        sink.error(RuleError {
            at: after,
            event: Arc::from(format!("{}@{}", rule.name, show_datetime(&after))),
            rule: rule.name.clone(),
            message: format!(
                "the schedule has no tick after {}: cron schedules end with the year 2100, so this rule fires no more (`every` has no such end)",
                show_datetime(&after)
            ),
        });
        DateTime::<Utc>::MAX_UTC
    }

    /// Fires the earliest due item, as one unit of work: its removal, and
    /// what its block does.
    fn fire_due(&mut self, at: DateTime<Utc>, sink: &mut dyn Sink) -> Result<(), StoreError> {
        self.clock = Some(at.max(self.clock.unwrap_or(at)));
        let Some(due) = self.store.due(at)? else {
            return Ok(());
        };
        self.caused = 0;
        let due = self.still_deployed(due);
        // Suspended work resumes under the ruleset that suspended it.
        let rules = match &due {
            Due::Timer(t) => t.cont.rules.clone(),
            Due::Deadline(a) => a.cont.rules.clone(),
            Due::Cancelled { .. } => self.rules.clone(),
        };
        self.under(rules, |e| e.fire(due, at, sink))?;
        self.drain(sink)
    }

    /// Suspended work runs on under the version that suspended it while
    /// its rule is still deployed for its tenant (by name, in the tenant's
    /// program); a rule since removed, or whose ruleset was disabled,
    /// cancels it.
    fn still_deployed(&self, due: Due) -> Due {
        let (key, approval, cont) = match &due {
            Due::Timer(t) => (&t.key, None, &t.cont),
            Due::Deadline(a) => (&a.key, Some(a.id.clone()), &a.cont),
            Due::Cancelled { .. } => return due,
        };
        let Some(rule) = cont.rules.rules.get(cont.rule) else {
            return due;
        };
        let program = self.program_for(&key.tenant);
        if Arc::ptr_eq(program, &cont.rules) || program.rules.iter().any(|r| r.name == rule.name) {
            return due;
        }
        Due::Cancelled {
            timer: approval.is_none().then(|| key.clone()),
            approval,
            reason: format!(
                "the rule `{}` is no longer deployed for tenant `{}` (removed, or its ruleset disabled)",
                rule.name, key.tenant
            ),
        }
    }

    /// The unit of work of a due item, under the ruleset it resumes under.
    fn fire(&mut self, due: Due, at: DateTime<Utc>, sink: &mut dyn Sink) -> Result<(), StoreError> {
        match due {
            Due::Timer(t) => {
                self.stats.timers_fired += 1;
                let source: Arc<str> = Arc::from(format!(
                    "{}~{}~{}@{}",
                    t.key.key,
                    t.key.rule,
                    t.key.pos,
                    show_datetime(&t.due)
                ));
                self.begin(&t.cont.event, &source, at);
                // A watch fires once per quiet period and waits for the next
                // watched event to arm it again; a schedule waits for its
                // next tick; any other timer is done.
                let kept = if super::quiet::is_watch(&t.cont) {
                    Some(super::quiet::parked_at())
                } else {
                    // Ticks missed while nobody ran fire once (a worker).
                    let after = match self.advancing_to {
                        Some(to) if self.limits.missed_ticks_once => to.max(at),
                        _ => at,
                    };
                    super::repeat::next_tick(&t.cont, after)
                };
                self.fx.change(match kept {
                    Some(due) => Change::PutTimer(Timer { due, ..t.clone() }),
                    None => Change::RemoveTimer(t.key),
                });
                self.resume(t.cont, None, source, at, sink);
            }
            Due::Cancelled {
                timer,
                approval,
                reason,
            } => {
                let what = match (&timer, &approval) {
                    (Some(t), _) => format!("the timer {}~{}~{}", t.key, t.rule, t.pos),
                    (None, Some(id)) => format!("the approval {id}"),
                    (None, None) => "stored work".to_string(),
                };
                let rule = timer.as_ref().map_or_else(
                    || {
                        Arc::from(
                            approval
                                .as_deref()
                                .and_then(|a| a.split('/').nth(1))
                                .unwrap_or(""),
                        )
                    },
                    |t| t.rule.clone(),
                );
                let event: Arc<str> = Arc::from(what.as_str());
                let unit = Arc::new(Event {
                    id: event.clone(),
                    tenant: timer
                        .as_ref()
                        .map_or_else(|| Arc::from(""), |t| t.tenant.clone()),
                    event_type: Arc::from("cancelled"),
                    occurred_at: at,
                    key: None,
                    payload: self.rules.empty.clone(),
                    previous: None,
                });
                self.begin(&unit, &event, at);
                if let Some(t) = timer {
                    self.fx.change(Change::RemoveTimer(t));
                }
                if let Some(id) = approval {
                    self.fx.change(Change::EndApproval(ApprovalEnd {
                        id,
                        status: "cancelled",
                        reason: Some(reason.clone()),
                        at,
                    }));
                }
                self.stats.errors += 1;
                sink.error(RuleError {
                    at,
                    event,
                    rule,
                    message: format!("{what} was cancelled: {reason}"),
                });
            }
            Due::Deadline(a) => {
                self.stats.approvals_expired += 1;
                let source: Arc<str> = Arc::from(format!("{}~expired", a.id));
                self.begin(&a.cont.event, &source, at);
                self.fx.change(Change::EndApproval(ApprovalEnd {
                    id: a.id.clone(),
                    status: "expired",
                    reason: Some(format!(
                        "no decision by its deadline, {}",
                        super::value::show_datetime(&a.deadline)
                    )),
                    at,
                }));
                if let Some(block) = a.otherwise {
                    self.resume(a.cont, Some(block), source, at, sink);
                }
            }
        }
        self.finish(sink)
    }

    /// Runs a suspended block, in the unit of work begun for it; `block`
    /// overrides the continuation's own. It starts a chain of its own:
    /// `source` (the timer or approval instance) is its origin.
    fn resume(
        &mut self,
        cont: Continuation,
        block: Option<usize>,
        source: Arc<str>,
        now: DateTime<Utc>,
        sink: &mut dyn Sink,
    ) {
        let cx = Ctx {
            rule: cont.rule,
            event: cont.event,
            envelope: cont.envelope,
            now,
            depth: 0,
            origin: source.clone(),
            source,
            recalled: self.no_recall.clone(),
        };
        let mut locals = cont.locals;
        let rules = self.rules.clone();
        let mark = self.fx.mark();
        let caused = self.caused;
        let ran = rules
            .rule(cx.rule)
            .and_then(|rule| rule.block(block.unwrap_or(cont.block)))
            .and_then(|block| self.exec(&cx, block, &mut locals));
        if let Err(fault) = ran {
            self.fx.rollback(mark);
            self.caused = caused;
            self.fault(&cx, fault, sink);
        }
    }

    /// A schedule's tick, as one unit of work: the schedule moved to its
    /// next tick `next`, and what the rule does.
    fn tick(
        &mut self,
        tenant: &Arc<str>,
        r: usize,
        at: DateTime<Utc>,
        next: DateTime<Utc>,
        sink: &mut dyn Sink,
    ) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        let Some(rule) = rules.rules.get(r) else {
            return Ok(());
        };
        let event = Arc::new(Event {
            id: Arc::from(format!("{}@{}", rule.name, show_datetime(&at))),
            tenant: tenant.clone(),
            event_type: Arc::from("schedule"),
            occurred_at: at,
            key: None,
            payload: rules.empty.clone(),
            previous: None,
        });
        self.caused = 0;
        let envelope = self.envelope_of(&event);
        let chain = Chain {
            depth: 0,
            origin: &event.id,
        };
        self.begin(&event, &event.id, at);
        self.fx.change(Change::NextTick {
            tenant: tenant.clone(),
            rule: rule.name.clone(),
            at: next,
        });
        self.run_rule(r, &event, &envelope, chain, at, sink, None)?;
        self.finish(sink)?;
        self.drain(sink)
    }

    /// Approves or rejects a pending approval; false if there is none.
    pub fn decide(
        &mut self,
        id: &str,
        approved: bool,
        by: &str,
        at: DateTime<Utc>,
        sink: &mut dyn Sink,
    ) -> Result<bool, Refused> {
        self.advance(at, false, sink)?;
        let Some(a) = self.store.approval(id)? else {
            return Ok(false);
        };
        let now = self.clock.unwrap_or(at);
        let block = if approved {
            Some(a.approve)
        } else {
            a.otherwise
        };
        self.caused = 0;
        let verdict = if approved { "approved" } else { "rejected" };
        let source: Arc<str> = Arc::from(format!("{}~{verdict}", a.id));
        let rules = a.cont.rules.clone();
        self.under(rules, |e| {
            e.decided(a, block, approved, by, source, now, sink)
        })?;
        self.drain(sink)?;
        Ok(true)
    }

    /// The unit of work of a decision, under the approval's ruleset.
    #[allow(clippy::too_many_arguments)]
    fn decided(
        &mut self,
        a: Approval,
        block: Option<usize>,
        approved: bool,
        by: &str,
        source: Arc<str>,
        now: DateTime<Utc>,
        sink: &mut dyn Sink,
    ) -> Result<(), StoreError> {
        let id = a.id.clone();
        self.begin(&a.cont.event, &source, now);
        self.fx.change(Change::EndApproval(ApprovalEnd {
            id: a.id.clone(),
            status: if approved { "approved" } else { "rejected" },
            reason: None,
            at: now,
        }));
        self.fx.change(Change::Decision(Decision {
            approval: id.to_string(),
            approved,
            by: by.to_string(),
            at: now,
        }));
        if let Some(block) = block {
            self.resume(a.cont, Some(block), source, now, sink);
        }
        self.finish(sink)
    }

    fn envelope_of(&self, event: &Event) -> Arc<Record> {
        envelope_record(self.rules.shapes(), event)
    }

    fn process(
        &mut self,
        event: Arc<Event>,
        depth: u32,
        origin: Arc<str>,
        now: DateTime<Utc>,
        sink: &mut dyn Sink,
    ) -> Result<(), StoreError> {
        if depth == 0 {
            self.stats.events += 1;
        } else {
            self.stats.emitted += 1;
        }
        let rules = self.rules.clone();
        self.begin(&event, &event.id, now);
        self.fx.changes.handled = Some((event.tenant.clone(), event.id.clone()));
        if let Some(fields) = rules.cancel_fields.get(&*event.event_type) {
            for (field, slot) in fields {
                let Some(value) = event.payload.slots.get(*slot) else {
                    continue;
                };
                if matches!(value, Value::None) {
                    continue;
                }
                let key = CancelKey {
                    tenant: event.tenant.clone(),
                    event_type: event.event_type.clone(),
                    field: field.clone(),
                    value: value.to_string(),
                };
                let waiting = self.store.waiting_on(&key)?;
                if waiting > 0 {
                    self.stats.timers_cancelled += waiting as u64;
                    self.fx.change(Change::CancelTimers(key));
                }
            }
        }
        let restarted = self.restart_watches(&rules, &event, now, sink)?;
        self.recalled = match rules.history.load(&self.store, rules.shapes(), &event)? {
            Some(values) => Arc::from(values),
            None => self.no_recall.clone(),
        };
        let explained = self.explain_all
            || self.explain.as_deref() == Some(&*event.id)
                && self
                    .explain_tenant
                    .as_deref()
                    .is_none_or(|t| t == &*event.tenant);
        let mut trace = explained.then(|| Trace {
            event: event.id.to_string(),
            tenant: event.tenant.to_string(),
            event_type: event.event_type.to_string(),
            at: show_datetime(&now),
            rules: Vec::new(),
            restarted,
        });
        let mut candidates = std::mem::take(&mut self.scratch);
        rules
            .index
            .candidates(&event.event_type, &event.payload, &mut candidates);
        if let Some(trace) = &mut trace {
            for skipped in rules
                .index
                .skipped(&rules.rules, &event.event_type, &event.payload)
            {
                let Some(rule) = rules.rules.get(skipped.rule) else {
                    continue;
                };
                let wanted: Vec<String> = skipped.wanted.iter().map(|k| k.to_string()).collect();
                trace.rules.push(RuleTrace::skipped(
                    &rule.name,
                    format!(
                        "it runs only when `{}` is {}, and this event's is not",
                        skipped.field,
                        wanted.join(" or ")
                    ),
                ));
            }
        }
        let envelope = self.envelope_of(&event);
        if let Some(order) = &rules.order {
            candidates.sort_by_key(|&r| order.get(r).copied().unwrap_or(u32::MAX));
        }
        self.stopped = None;
        for (i, &r) in candidates.iter().enumerate() {
            let at = Chain {
                depth,
                origin: &origin,
            };
            if let Err(e) = self.run_rule(r, &event, &envelope, at, now, sink, trace.as_mut()) {
                self.scratch = candidates;
                return Err(e);
            }
            if let Some(by) = self.stopped.take() {
                // `stop`: the later rules do not handle this event.
                if let Some(trace) = &mut trace {
                    let later = candidates.get(i + 1..).unwrap_or(&[]);
                    trace.rules.extend(later.iter().filter_map(|&r| {
                        let why = format!("rule `{by}` stopped the event's handling");
                        Some(RuleTrace::skipped(&rules.rules.get(r)?.name, why))
                    }));
                }
                break;
            }
        }
        self.scratch = candidates;
        self.recalled = self.no_recall.clone();
        rules
            .history
            .record(rules.shapes(), &event, &mut self.fx.changes.changes);
        self.finish(sink)?;
        if let Some(trace) = trace {
            self.traces.push(trace);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_rule(
        &mut self,
        r: usize,
        event: &Arc<Event>,
        envelope: &Arc<Record>,
        chain: Chain<'_>,
        now: DateTime<Utc>,
        sink: &mut dyn Sink,
        trace: Option<&mut Trace>,
    ) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        let Some(rule) = rules.rules.get(r) else {
            return Ok(());
        };
        let _span = tracing::trace_span!("rule", rule = &*rule.name, event = &*event.id).entered();
        let cx = Ctx {
            rule: r,
            event: event.clone(),
            envelope: envelope.clone(),
            now,
            depth: chain.depth,
            source: event.id.clone(),
            origin: chain.origin.clone(),
            recalled: self.recalled.clone(),
        };
        let frame = cx.frame(&[], &rules.lib);
        let mut trace = trace;
        if rule.quiet.is_some() {
            // The start of a watch: the rule runs when nothing happened.
            let traced = self.arm_watch(&rules, r, &cx, sink);
            if let Some(trace) = trace.as_deref_mut() {
                trace.rules.push(traced);
            }
            return Ok(());
        }
        if let Some(trace) = trace.as_deref_mut() {
            trace.rules.push(trace_conditions(&rules, rule, &frame));
        }
        match (rule.test)(&frame) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(fault) => {
                if let Some(last) = trace.and_then(|t| t.rules.last_mut()) {
                    last.error = Some(fault.to_string());
                }
                self.fault(&cx, fault, sink);
                return Ok(());
            }
        }
        let mark = self.fx.mark();
        if let Some((window, rest)) = &rule.count {
            let last = trace.as_deref_mut().and_then(|t| t.rules.last_mut());
            match self.count_gate(rule, window, rest.as_ref(), &frame, event, last)? {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(fault) => {
                    self.fault(&cx, fault, sink);
                    return Ok(());
                }
            }
        }
        if let Some(throttle) = &rule.throttle {
            let last = trace.as_deref_mut().and_then(|t| t.rules.last_mut());
            match self.throttle_gate(rule, throttle, &frame, &event.tenant, now, last)? {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(fault) => {
                    self.fault(&cx, fault, sink);
                    return Ok(());
                }
            }
        }
        let mut locals = Vec::new();
        let caused = self.caused;
        if let Err(fault) = rule
            .block(0)
            .and_then(|body| self.exec(&cx, body, &mut locals))
        {
            self.fx.rollback(mark);
            self.caused = caused;
            self.fault(&cx, fault, sink);
        } else if let Some(last) = trace.and_then(|t| t.rules.last_mut()) {
            // What the rule left for later, for `explain`.
            let changes = self.fx.changes.changes.get(mark.changes..).unwrap_or(&[]);
            last.scheduled.extend(changes.iter().filter_map(scheduled));
        }
        Ok(())
    }

    /// A watched event starts the quiet period of each watch on its value
    /// again; what it restarted goes to `explain`.
    fn restart_watches(
        &mut self,
        rules: &Ruleset,
        event: &Event,
        now: DateTime<Utc>,
        sink: &mut dyn Sink,
    ) -> Result<Vec<String>, StoreError> {
        let mut restarted = Vec::new();
        for key in super::quiet::watched_keys(rules, event) {
            let Some(timer) = self.store.timer(&key)? else {
                continue;
            };
            match super::quiet::rearm(timer, now) {
                Ok(timer) => {
                    restarted.push(format!(
                        "rule `{}`: the quiet period of `{}` starts again, until {}",
                        key.rule,
                        key.key,
                        show_datetime(&timer.due)
                    ));
                    self.fx.change(Change::PutTimer(timer));
                }
                Err(fault) => {
                    self.stats.errors += 1;
                    sink.error(RuleError {
                        at: now,
                        event: event.id.clone(),
                        rule: key.rule.clone(),
                        message: fault.to_string(),
                    });
                }
            }
        }
        Ok(restarted)
    }

    /// Arms the watch of a rule on what did not happen at its start event,
    /// and says so for `explain`.
    fn arm_watch(
        &mut self,
        rules: &Arc<Ruleset>,
        r: usize,
        cx: &Ctx,
        sink: &mut dyn Sink,
    ) -> RuleTrace {
        let Some(rule) = rules.rules.get(r) else {
            return RuleTrace::considered("", false);
        };
        let mut traced = RuleTrace::considered(&rule.name, false);
        match super::quiet::arm(rules, r, &cx.event, &cx.envelope, cx.now) {
            Ok(Some(timer)) => {
                let what = rule.quiet.as_ref().map_or(String::new(), |q| {
                    format!("`{}` on `{}` = `{}`", q.event, q.field, timer.key.key)
                });
                traced.watch = Some(format!(
                    "watches for {what}: runs at {} if none comes",
                    show_datetime(&timer.due)
                ));
                self.fx.change(Change::PutTimer(timer));
                traced.matched = true;
            }
            Ok(None) => {
                traced.watch = Some("nothing to watch: the value is absent".to_string());
                traced.matched = true;
            }
            Err(fault) => {
                traced.error = Some(fault.to_string());
                self.fault(cx, fault, sink);
            }
        }
        traced
    }

    fn throttled(
        &mut self,
        rule: &Rule,
        throttle: &super::program::Throttle,
        frame: &Frame,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<(bool, Option<Change>), Fault>, StoreError> {
        let (limit, window, by) = match throttle_window(throttle, frame, "throttle") {
            Ok(v) => v,
            Err(fault) => return Ok(Err(fault)),
        };
        let key = format!("{tenant}\u{1f}{}\u{1f}{by}", rule.name);
        let allowed = self.store.window_count(tenant, &key, window, now)? < limit;
        // The firing is counted in the unit, with the rule's other effects.
        let count = allowed.then_some(Change::WindowCount {
            tenant: Arc::from(tenant),
            key,
            at: now,
            window_ms: window,
        });
        Ok(Ok((!allowed, count)))
    }

    /// Whether the rule goes on past its `count` clause: the count reached,
    /// then the conditions written after the clause; what it found goes to
    /// `explain`.
    /// A `throttle` clause at a matching event: whether it holds the rule
    /// back (the event counted in its window when it does not), noted in
    /// the rule's trace.
    fn throttle_gate(
        &mut self,
        rule: &Rule,
        throttle: &super::program::Throttle,
        frame: &Frame,
        tenant: &str,
        now: DateTime<Utc>,
        last: Option<&mut RuleTrace>,
    ) -> Result<Result<bool, Fault>, StoreError> {
        let result = match self.throttled(rule, throttle, frame, tenant, now)? {
            Ok((throttled, count)) => {
                if let Some(count) = count {
                    self.fx.change(count);
                }
                Ok(throttled)
            }
            Err(fault) => Err(fault),
        };
        if let Some(last) = last {
            match &result {
                Ok(throttled) => {
                    last.throttled = Some(*throttled);
                    last.matched &= !throttled;
                }
                Err(fault) => last.error = Some(fault.to_string()),
            }
        }
        Ok(result)
    }

    fn count_gate(
        &mut self,
        rule: &Rule,
        window: &super::program::Throttle,
        rest: Option<&super::program::Cond>,
        frame: &Frame,
        event: &Event,
        last: Option<&mut RuleTrace>,
    ) -> Result<Result<bool, Fault>, StoreError> {
        let counted = match self.count_clause(rule, window, frame, event)? {
            Ok(counted) => counted,
            Err(fault) => {
                if let Some(last) = last {
                    last.error = Some(fault.to_string());
                }
                return Ok(Err(fault));
            }
        };
        let reached = counted.reached;
        let go_on = match rest {
            Some(rest) if reached => rest(frame),
            _ => Ok(reached),
        };
        if let Some(last) = last {
            last.matched &= reached;
            last.counted = Some(counted);
            if let Err(fault) = &go_on {
                last.error = Some(fault.to_string());
            }
        }
        Ok(go_on)
    }

    /// A `count N within D by K` clause at a matching event: the event is
    /// counted in its key's window, and the count that reaches N empties it
    /// (so counting starts again from zero). The window is measured on the
    /// events' own times.
    fn count_clause(
        &mut self,
        rule: &Rule,
        window: &super::program::Throttle,
        frame: &Frame,
        event: &Event,
    ) -> Result<Result<CountTrace, Fault>, StoreError> {
        let (tenant, now) = (&event.tenant, event.occurred_at);
        let (limit, window_ms, by) = match throttle_window(window, frame, "count") {
            Ok(v) => v,
            Err(fault) => return Ok(Err(fault)),
        };
        let key = format!("{tenant}\u{1f}{}\u{1f}count\u{1f}{by}", rule.name);
        let seen = self
            .store
            .window_count(tenant, &key, window_ms, now)?
            .saturating_add(1);
        let reached = seen >= limit;
        self.fx.change(if reached {
            Change::ClearWindow {
                tenant: tenant.clone(),
                key,
            }
        } else {
            Change::WindowCount {
                tenant: tenant.clone(),
                key,
                at: now,
                window_ms,
            }
        });
        Ok(Ok(CountTrace {
            seen,
            of: limit,
            window: show_duration(window_ms),
            reached,
        }))
    }

    fn fault(&mut self, cx: &Ctx, fault: Fault, sink: &mut dyn Sink) {
        self.stats.errors += 1;
        sink.error(RuleError {
            at: cx.now,
            event: cx.event.id.clone(),
            rule: self
                .rules
                .rules
                .get(cx.rule)
                .map_or_else(|| Arc::from(""), |rule| rule.name.clone()),
            message: fault.to_string(),
        });
    }

    /// Runs `ops`, recording what they do in `self.fx` (see [`Effects`]).
    fn exec(&mut self, cx: &Ctx, ops: &[Op], locals: &mut Vec<Value>) -> Result<(), Fault> {
        let rules = self.rules.clone();
        for op in ops {
            match op {
                Op::Stop => {
                    self.stopped = Some(rules.rule(cx.rule)?.name.clone());
                    return Ok(());
                }
                Op::Let(e) => {
                    let v = e(&cx.frame(locals, &rules.lib))?;
                    locals.push(v);
                }
                Op::If {
                    branches,
                    otherwise,
                } => {
                    self.if_op(cx, &rules, branches, otherwise, locals)?;
                    if self.stopped.is_some() {
                        return Ok(());
                    }
                }
                Op::Act(act) => self.act_op(cx, &rules, act, locals)?,
                Op::Timer(t) => self.timer_op(cx, &rules, t, locals)?,
                Op::Every(i) => self.every_op(cx, &rules, *i, locals)?,
                Op::Approval(a) => self.approval_op(cx, &rules, a, locals)?,
            }
        }
        Ok(())
    }

    /// `if`: runs the block of the first branch whose condition holds, or
    /// the `else` block, its `let`s dropped after it.
    fn if_op(
        &mut self,
        cx: &Ctx,
        rules: &Ruleset,
        branches: &[(Cond, Vec<Op>)],
        otherwise: &[Op],
        locals: &mut Vec<Value>,
    ) -> Result<(), Fault> {
        let frame = cx.frame(locals, &rules.lib);
        let mut chosen = otherwise;
        for (cond, body) in branches {
            if cond(&frame)? {
                chosen = body;
                break;
            }
        }
        let mark = locals.len();
        self.exec(cx, chosen, locals)?;
        locals.truncate(mark);
        Ok(())
    }

    /// An action: its arguments evaluated into `fx.args` and the action
    /// kept to be performed; for `emit`, the event emitted too.
    fn act_op(
        &mut self,
        cx: &Ctx,
        rules: &Ruleset,
        act: &Act,
        locals: &[Value],
    ) -> Result<(), Fault> {
        let frame = cx.frame(locals, &rules.lib);
        let start = self.fx.args.len();
        match &act.emit {
            Some((event_type, record)) => {
                let rule = rules.rule(cx.rule)?;
                self.emit_op(cx, rule, act, event_type, *record, &frame)?;
            }
            None => {
                for (name, e) in &act.args {
                    let value = e(&frame)?;
                    self.fx.args.push((name.clone(), value));
                }
            }
        }
        let end = self.fx.args.len();
        self.fx.actions.push(Pending {
            rule: cx.rule,
            pos: act.pos,
            action: act.action.clone(),
            args: start..end,
        });
        Ok(())
    }

    /// `emit`: the event's payload evaluated, its arguments kept, and the
    /// event queued in the chain, within the bounds of chains and of what
    /// one event may cause.
    fn emit_op(
        &mut self,
        cx: &Ctx,
        rule: &Rule,
        act: &Act,
        event_type: &Arc<str>,
        record: RecordId,
        frame: &Frame,
    ) -> Result<(), Fault> {
        let values = act
            .args
            .iter()
            .map(|(_, e)| e(frame))
            .collect::<Result<Vec<_>, _>>()?;
        let payload = Arc::new(Record {
            shape: record,
            slots: values.into_boxed_slice(),
        });
        if cx.depth + 1 > MAX_CHAIN {
            return Err(Fault::new(format!(
                "`emit {event_type}` stopped: a chain of {MAX_CHAIN} events emitting events \
                 (a rule that triggers itself?) started at `{}`",
                cx.origin
            )));
        }
        if self.caused >= self.limits.max_caused {
            return Err(Fault::new(format!(
                "`emit {event_type}` stopped: one event may cause at most {} emitted events, \
                 and `{}` reached that",
                self.limits.max_caused, cx.origin
            )));
        }
        self.caused += 1;
        self.fx
            .args
            .push((Arc::from("event_type"), Value::Str(event_type.clone())));
        self.fx
            .args
            .push((Arc::from("payload"), Value::Record(payload.clone())));
        self.fx.emitted.push((
            Arc::new(Event {
                id: Arc::from(format!("{}~{}~{}", cx.source, rule.name, act.pos)),
                tenant: cx.event.tenant.clone(),
                event_type: event_type.clone(),
                occurred_at: cx.now,
                // The same entity: its key, or the id of
                // the event that had none.
                key: Some(cx.event.timer_key().clone()),
                payload,
                previous: None,
            }),
            cx.depth + 1,
            cx.origin.clone(),
        ));
        Ok(())
    }

    /// `after` or `at`: a timer put for later, or its block run now when it
    /// is already due.
    fn timer_op(
        &mut self,
        cx: &Ctx,
        rules: &Ruleset,
        t: &TimerOp,
        locals: &mut Vec<Value>,
    ) -> Result<(), Fault> {
        let rule = rules.rule(cx.rule)?;
        let frame = cx.frame(locals, &rules.lib);
        let due = match (t.kind, t.when.as_ref()(&frame)?) {
            (TimerKind::At, Value::DateTime(at)) => at,
            (TimerKind::After, Value::Duration(ms)) => add_ms(cx.now, ms).ok_or_else(|| {
                Fault::new(format!(
                    "`after {}` from {} is past the end of the calendar",
                    show_duration(ms),
                    show_datetime(&cx.now)
                ))
            })?,
            (_, other) => {
                return Err(Fault::new(format!(
                    "a timer cannot wait for a {}",
                    other.kind()
                )))
            }
        };
        let key = TimerKey {
            tenant: cx.event.tenant.clone(),
            rule: rule.name.clone(),
            key: cx.event.timer_key().clone(),
            pos: t.pos,
        };
        if due <= cx.now {
            // Due now, or already past (a last-minute booking):
            // run now, unless it is late and the rule says to skip
            // it. A pending timer for the same key is superseded.
            self.fx.change(Change::RemoveTimer(key));
            if due == cx.now || !t.skip_late {
                let mark = locals.len();
                self.exec(cx, rule.block(t.block)?, locals)?;
                locals.truncate(mark);
            }
            return Ok(());
        }
        let cancel = cancel_keys(cx, &t.unless, &frame)?;
        let cont = self.continuation(cx, t.block, locals);
        self.fx.change(Change::PutTimer(Timer {
            key,
            due,
            cancel,
            cont,
        }));
        Ok(())
    }

    /// `every`: a timer put for the schedule's first tick.
    fn every_op(
        &mut self,
        cx: &Ctx,
        rules: &Ruleset,
        i: usize,
        locals: &[Value],
    ) -> Result<(), Fault> {
        let rule = rules.rule(cx.rule)?;
        let Some(repeat) = rule.repeats.get(i) else {
            return Ok(());
        };
        let frame = cx.frame(locals, &rules.lib);
        let due = super::repeat::first_tick(repeat, &frame, &cx.event.id, cx.now)?;
        let cancel = cancel_keys(cx, &repeat.unless, &frame)?;
        let cont = self.continuation(cx, repeat.block, locals);
        self.fx.change(Change::PutTimer(Timer {
            key: TimerKey {
                tenant: cx.event.tenant.clone(),
                rule: rule.name.clone(),
                key: cx.event.timer_key().clone(),
                pos: repeat.pos,
            },
            due,
            cancel,
            cont,
        }));
        Ok(())
    }

    /// `require approval from R within D`: the approval requested (an
    /// action) and kept until it is decided, or decided at once when
    /// replaying with [`AutoDecide`].
    fn approval_op(
        &mut self,
        cx: &Ctx,
        rules: &Ruleset,
        a: &ApprovalOp,
        locals: &mut Vec<Value>,
    ) -> Result<(), Fault> {
        let rule = rules.rule(cx.rule)?;
        let frame = cx.frame(locals, &rules.lib);
        let within = match (a.within)(&frame)? {
            Value::Duration(ms) if ms > 0 => ms,
            Value::Duration(ms) => {
                return Err(Fault::new(format!(
                    "`within` needs a positive duration, not {}",
                    show_duration(ms)
                )))
            }
            other => {
                return Err(Fault::new(format!(
                    "`within` needs a duration, not {other}"
                )))
            }
        };
        let deadline = add_ms(cx.now, within).ok_or_else(|| {
            Fault::new(format!(
                "`within {}` from {} is past the end of the calendar",
                show_duration(within),
                show_datetime(&cx.now)
            ))
        })?;
        // Unique across tenants: the tenant, rule, event and step.
        let id = format!(
            "{}/{}/{}/{}",
            cx.event.tenant, rule.name, cx.event.id, a.pos
        );
        let args = [
            (Arc::from("approval"), Value::str(&id)),
            (Arc::from("role"), Value::Str(a.role.clone())),
            (Arc::from("deadline"), Value::DateTime(deadline)),
        ];
        let start = self.fx.args.len();
        self.fx.args.extend(args);
        self.fx.actions.push(Pending {
            rule: cx.rule,
            pos: a.pos,
            action: Arc::from("approval_requested"),
            args: start..self.fx.args.len(),
        });
        let approval = Approval {
            id: id.clone(),
            key: TimerKey {
                tenant: cx.event.tenant.clone(),
                rule: rule.name.clone(),
                key: cx.event.timer_key().clone(),
                pos: a.pos,
            },
            role: a.role.clone(),
            requested_at: cx.now,
            deadline,
            approve: a.block,
            otherwise: a.otherwise,
            cont: self.continuation(cx, a.block, locals),
        };
        match self.auto_decide {
            AutoDecide::None => self.fx.change(Change::PutApproval(approval)),
            decision => {
                let approved = decision == AutoDecide::Approve;
                self.fx.change(Change::Decision(Decision {
                    approval: id,
                    approved,
                    by: "replay".into(),
                    at: cx.now,
                }));
                let block = if approved { Some(a.block) } else { a.otherwise };
                if let Some(block) = block {
                    let mark = locals.len();
                    self.exec(cx, rule.block(block)?, locals)?;
                    locals.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn continuation(&self, cx: &Ctx, block: usize, locals: &[Value]) -> Continuation {
        Continuation {
            rules: self.rules.clone(),
            rule: cx.rule,
            block,
            event: cx.event.clone(),
            envelope: cx.envelope.clone(),
            locals: locals.to_vec(),
        }
    }
}

/// The keys of `unless E on k`: this event's value of each `k`.
fn cancel_keys(
    cx: &Ctx,
    unless: &[(Arc<str>, Arc<str>, super::program::Eval)],
    frame: &Frame,
) -> Result<Vec<CancelKey>, Fault> {
    unless
        .iter()
        .map(|(event_type, field, value)| {
            Ok(CancelKey {
                tenant: cx.event.tenant.clone(),
                event_type: event_type.clone(),
                field: field.clone(),
                value: value(frame)?.to_string(),
            })
        })
        .collect()
}

/// What a change a rule made leaves for later, as `explain` shows it.
fn scheduled(change: &Change) -> Option<String> {
    match change {
        Change::PutTimer(t) if super::repeat::repeat_of(&t.cont).is_some() => Some(format!(
            "a schedule for `{}`, first at {}",
            t.key.key,
            show_datetime(&t.due)
        )),
        Change::PutTimer(t) => Some(format!(
            "a timer for `{}` at {}{}",
            t.key.key,
            show_datetime(&t.due),
            if t.cancel.is_empty() {
                String::new()
            } else {
                let by: Vec<String> = t
                    .cancel
                    .iter()
                    .map(|c| format!("`{}` with {} = `{}`", c.event_type, c.field, c.value))
                    .collect();
                format!(", unless {}", by.join(" or "))
            }
        )),
        Change::PutApproval(a) => Some(format!(
            "an approval from role `{}` until {}",
            a.role,
            show_datetime(&a.deadline)
        )),
        _ => None,
    }
}

/// A `throttle` or `count` clause's number, window and key value, as the
/// rule's clause gives them (`what` is the clause's keyword).
fn throttle_window(
    throttle: &super::program::Throttle,
    frame: &Frame,
    what: &str,
) -> Result<(u64, i64, String), Fault> {
    let limit = match (throttle.count)(frame)? {
        Value::Int(n) if n >= 0 => n.unsigned_abs(),
        other => {
            return Err(Fault::new(format!(
                "{what} count must be a positive int, not {other}"
            )))
        }
    };
    let window = match (throttle.per)(frame)? {
        Value::Duration(ms) if ms > 0 => ms,
        Value::Duration(ms) => {
            return Err(Fault::new(format!(
                "{what} window must be a positive duration, not {}",
                show_duration(ms)
            )))
        }
        other => {
            return Err(Fault::new(format!(
                "{what} window must be a duration, not {other}"
            )))
        }
    };
    let by = match &throttle.by {
        Some(by) => by(frame)?.to_string(),
        None => String::new(),
    };
    Ok((limit, window, by))
}

/// The tenant of the program every tenant without one of its own runs (the
/// rules `steward run --rules` deploys): its secrets are those its rules'
/// webhooks name.
pub const EVERY_TENANT: &str = "*";

/// The unit an action is performed in: the event, the source (the event, or
/// the timer or approval instance a resumed block runs for) and the time.
#[derive(Clone, Copy)]
struct PerformedAt<'a> {
    event: &'a Arc<Event>,
    source: &'a Arc<str>,
    now: DateTime<Utc>,
    /// The tenant whose secrets its webhooks' headers name.
    secrets_of: &'a str,
}

/// A pending action as the sink and the store see it.
fn performed<'a>(
    rules: &'a Ruleset,
    args: &'a [(Arc<str>, Value)],
    p: &'a Pending,
    at: PerformedAt<'a>,
) -> Option<Performed<'a>> {
    // A pending action's rule is the one that ran it: always there.
    let rule = rules.rules.get(p.rule)?;
    Some(Performed {
        at: at.now,
        tenant: &at.event.tenant,
        event: &at.event.id,
        rule: &rule.name,
        action: &p.action,
        args: args.get(p.args.clone()).unwrap_or(&[]),
        key: ActionKey {
            tenant: &at.event.tenant,
            rule: &rule.name,
            version: &rules.version,
            event: at.source,
            pos: p.pos,
        },
        shapes: rules.shapes(),
        webhook: rules.webhooks.get(&p.action),
        secrets_of: at.secrets_of,
    })
}

/// The first tick of a schedule-triggered rule strictly after `after`.
pub fn next_tick(rule: &Rule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match &rule.trigger {
        RuleTrigger::Cron { schedule, zone } => super::repeat::next_cron(schedule, *zone, after),
        RuleTrigger::Interval(ms) => {
            // Aligned to the epoch, so `every 15m` fires at :00, :15, :30, :45.
            let now = after.timestamp_millis();
            let next = (now.div_euclid(*ms) + 1) * ms;
            DateTime::from_timestamp_millis(next)
        }
        RuleTrigger::Event { .. } => None,
    }
}

/// The `envelope` record rules see for `event`.
pub fn envelope_record(shapes: &Shapes, event: &Event) -> Arc<Record> {
    let shape = shapes.record(shapes.envelope);
    let slots = shape
        .fields
        .iter()
        .map(|(name, _)| match &**name {
            "id" => Value::Str(event.id.clone()),
            "tenant" => Value::Str(event.tenant.clone()),
            "type" => Value::Str(event.event_type.clone()),
            "occurred_at" => Value::DateTime(event.occurred_at),
            "key" => event.key.clone().map_or(Value::None, Value::Str),
            _ => Value::None,
        })
        .collect();
    Arc::new(Record {
        shape: shapes.envelope,
        slots,
    })
}
