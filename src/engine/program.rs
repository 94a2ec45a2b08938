//! The compiled program's shared definitions: what lowering produces and
//! the runtime, the index, the conditions and the built-ins read. Nothing
//! here depends on how a program is lowered or run, so the modules around
//! it form no cycle: `value` ← `program` ← (`eval`, `pred`, `index`,
//! `builtins`) ← `lower` ← `runtime`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use regex::Regex;

use super::decode::Shapes;
use super::rhai::RhaiFn;
use super::value::{Fault, Record, Value};
use crate::check::schedule::CronSchedule;
use crate::check::types::RecordId;
pub use crate::hir::{Place, Root};
use crate::syntax::ast::TimerKind;

/// What compiled code can see while it runs.
pub struct Frame<'a> {
    /// The triggering event's payload (an empty record for schedules).
    pub event: &'a Arc<Record>,
    /// The triggering event's envelope, as an `Envelope` record.
    pub envelope: &'a Arc<Record>,
    /// `let`s and function parameters, by slot.
    pub locals: &'a [Value],
    /// What the rule reads from the history of events, by recall index
    /// (`hir::Program::recalls`); empty where nothing was loaded.
    pub recalled: &'a [Value],
    /// The time of the event or timer being handled; `now()`.
    pub now: DateTime<Utc>,
    /// Functions, for calls.
    pub lib: &'a Library,
}

/// A compiled expression.
pub type Eval = Box<dyn Fn(&Frame) -> Result<Value, Fault> + Send + Sync>;
/// A compiled condition.
pub type Cond = Box<dyn Fn(&Frame) -> Result<bool, Fault> + Send + Sync>;

/// A constant a rule can be filed under.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IndexKey {
    Str(Arc<str>),
    Int(i64),
    Bool(bool),
}

/// A key as the language writes it: `"urgent"`, `3`, `true`.
impl std::fmt::Display for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexKey::Str(s) => write!(f, "{:?}", &**s),
            IndexKey::Int(i) => write!(f, "{i}"),
            IndexKey::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl IndexKey {
    pub fn of(v: &Value) -> Option<IndexKey> {
        match v {
            Value::Str(s) => Some(IndexKey::Str(s.clone())),
            Value::Int(i) => Some(IndexKey::Int(*i)),
            Value::Bool(b) => Some(IndexKey::Bool(*b)),
            _ => None,
        }
    }
}

/// Functions and the things compiled code shares at run time.
pub struct Library {
    pub(crate) functions: Vec<FnImpl>,
    pub(crate) rhai: ::rhai::Engine,
    pub shapes: Shapes,
    /// Patterns of `matches` that are not constants, compiled on first use.
    regexes: Mutex<HashMap<String, Regex>>,
}

pub(crate) enum FnImpl {
    Steward {
        body: Eval,
    },
    Rhai(RhaiFn),
    /// A declaration the checker could not make sense of (it reported it;
    /// lowering refuses programs with errors, so this is never called).
    Missing {
        name: String,
    },
}

impl Library {
    /// A library with nothing in it, for folding constants.
    pub fn empty() -> Library {
        Library {
            functions: Vec::new(),
            rhai: ::rhai::Engine::new_raw(),
            shapes: Shapes {
                records: Vec::new(),
                events: Default::default(),
                type_names: Vec::new(),
                envelope: 0,
            },
            regexes: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn new(functions: Vec<FnImpl>, rhai: ::rhai::Engine, shapes: Shapes) -> Library {
        Library {
            functions,
            rhai,
            shapes,
            regexes: Mutex::new(HashMap::new()),
        }
    }

    /// A pattern of `matches` that was not a constant, compiled once.
    pub fn regex(&self, pattern: &str) -> Result<Regex, Fault> {
        let mut cache = self.regexes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(re) = cache.get(pattern) {
            return Ok(re.clone());
        }
        let re = Regex::new(pattern)
            .map_err(|e| Fault::new(format!("invalid regular expression \"{pattern}\": {e}")))?;
        if cache.len() >= 1_024 {
            cache.clear();
        }
        cache.insert(pattern.to_string(), re.clone());
        Ok(re)
    }
}

static NONE: Value = Value::None;

impl Place {
    #[inline]
    pub fn get<'f>(&self, f: &Frame<'f>) -> &'f Value {
        let (mut v, rest) = match self.root {
            Root::Event => match self.path.split_first() {
                Some((first, rest)) => (slot(&f.event.slots, *first), rest),
                None => return &NONE,
            },
            Root::Envelope => match self.path.split_first() {
                Some((first, rest)) => (slot(&f.envelope.slots, *first), rest),
                None => return &NONE,
            },
            Root::Local(i) => (slot(f.locals, i), &self.path[..]),
            Root::Recall(i) => (slot(f.recalled, i), &self.path[..]),
        };
        for &i in rest {
            match v {
                Value::Record(r) => v = slot(&r.slots, i),
                // Through an absent optional record: absent.
                _ => return &NONE,
            }
        }
        v
    }

    /// Reads a place rooted at the event's payload from the payload alone.
    pub fn get_in<'r>(&self, payload: &'r Record) -> &'r Value {
        let Some((first, rest)) = self.path.split_first() else {
            return &NONE;
        };
        let mut v = slot(&payload.slots, *first);
        for &i in rest {
            match v {
                Value::Record(r) => v = slot(&r.slots, i),
                _ => return &NONE,
            }
        }
        v
    }
}

/// Slot `i` of a record or of the locals; one a place names that is not
/// there (a record not of the place's shape) reads as absent.
#[inline(always)]
pub(crate) fn slot(slots: &[Value], i: usize) -> &Value {
    slots.get(i).unwrap_or(&NONE)
}

/// A compiled rule.
pub struct Rule {
    /// The rule's name, or `file.stw:LINE` for one-line rules.
    pub name: Arc<str>,
    pub title: Option<String>,
    pub trigger: RuleTrigger,
    /// The `if` clauses split at their `and`s, for `explain`.
    pub conditions: Vec<Condition>,
    /// All of the conditions as one test: what the engine runs.
    pub test: Cond,
    pub throttle: Option<Throttle>,
    /// `count N within D by K`: a window like a throttle's, and the
    /// conditions after the clause (the ones before it are in `test`).
    pub count: Option<(Throttle, Option<Cond>)>,
    /// Block 0 is the body; timers and approvals refer to the others.
    pub blocks: Vec<Vec<Op>>,
    /// Where each block is, by the step id of the statement that owns it
    /// (block 0: step 0, the body): how a stored continuation names it.
    pub block_steps: Vec<BlockRef>,
    /// An equality test every firing needs, for the rule index.
    pub index_key: Option<(Place, String, Vec<IndexKey>)>,
    /// A rule on what did not happen (`when no ...`): its trigger's event
    /// arms the watch instead of running the body.
    pub quiet: Option<Quiet>,
    /// The schedules its `every` statements keep ([`Op::Every`]).
    pub repeats: Vec<Repeat>,
    /// `priority N`: rules with one run first, lowest first.
    pub priority: Option<i64>,
}

impl Rule {
    /// Block `b` of the rule. Lowering and stored continuations name only
    /// blocks the rule has; another is a fault of the rule, not a panic.
    #[inline]
    pub(crate) fn block(&self, b: usize) -> Result<&[Op], Fault> {
        match self.blocks.get(b) {
            Some(ops) => Ok(ops),
            None => Err(no_such("block", b)),
        }
    }
}

/// The fault of an index into the compiled program that names nothing:
/// what a program that runs never meets.
#[cold]
#[inline(never)]
pub(crate) fn no_such(what: &str, i: usize) -> Fault {
    Fault::new(format!("the program has no {what} {i}"))
}

/// `when no EVENT on FIELD for PERIOD since START on FIELD until END on
/// FIELD`, compiled: a watch is a timer of the rule (position
/// [`QUIET_POS`]) keyed by the watched value, whose block is `block`.
pub struct Quiet {
    pub period: Eval,
    pub event: Arc<str>,
    pub field: Arc<str>,
    /// The slot of the start event's field that holds the watched value.
    pub start_slot: usize,
    pub until: Option<(Arc<str>, Arc<str>)>,
    /// The block run when the period passes: the conditions, then the body.
    pub block: usize,
}

/// The timer position of a rule's watch (statements' step ids are digests,
/// never 0).
pub const QUIET_POS: u32 = 0;

/// A block of a rule by what owns it, stable across compiles: the step id
/// of its timer or approval statement, and which of its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct BlockRef {
    pub step: u32,
    pub branch: Branch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Branch {
    /// The rule's body.
    Body,
    /// A timer's block, or an approval's `do` block.
    Do,
    /// An approval's `else` block.
    Else,
}

pub enum RuleTrigger {
    Event {
        event_type: Arc<str>,
        record: RecordId,
    },
    Cron {
        schedule: Box<CronSchedule>,
        zone: Tz,
    },
    Interval(i64),
}

/// One `if` clause, split at its top-level `and`s for `explain`.
pub struct Condition {
    pub text: String,
    pub cond: Cond,
    /// The fields the condition reads, as written, for `explain`.
    pub reads: Vec<(String, Place)>,
}

/// A `throttle` or `count` clause: how many, in which window, by what.
pub struct Throttle {
    pub count: Eval,
    pub per: Eval,
    pub by: Option<Eval>,
}

/// A statement, compiled. `pos` is the statement's step id (see `hir::Stmt`);
/// with the tenant, rule, version and event it is the idempotency key.
pub enum Op {
    Let(Eval),
    If {
        branches: Vec<(Cond, Vec<Op>)>,
        otherwise: Vec<Op>,
    },
    Act(Act),
    Timer(TimerOp),
    Approval(ApprovalOp),
    /// A schedule of the event's key: the index of its [`Repeat`] in
    /// `Rule::repeats`.
    Every(usize),
    /// `stop`: the rule ends here, and no later rule handles the event.
    Stop,
}

pub struct Act {
    pub pos: u32,
    /// `send`, `notify`, `create_task`, `emit`, `log` or a webhook action's name.
    pub action: Arc<str>,
    pub args: Vec<(Arc<str>, Eval)>,
    /// For `emit`: the event type and its record, whose slots `args` fill in order.
    pub emit: Option<(Arc<str>, RecordId)>,
}

pub struct TimerOp {
    pub pos: u32,
    pub kind: TimerKind,
    pub when: Eval,
    /// `unless E on k`: the event type, the field, and this event's value of it.
    pub unless: Vec<(Arc<str>, Arc<str>, Eval)>,
    pub skip_late: bool,
    pub block: usize,
}

/// `every "CRON" in ZONE unless E on k do ... end`: one timer for the next
/// tick, put again for the tick after each time it fires.
pub struct Repeat {
    pub pos: u32,
    pub schedule: Box<crate::check::schedule::CronSchedule>,
    pub zone: RepeatZone,
    pub unless: Vec<(Arc<str>, Arc<str>, Eval)>,
    pub block: usize,
}

pub enum RepeatZone {
    Fixed(chrono_tz::Tz),
    /// A text the event gives (`in tz`), read when the schedule is put and
    /// again at each tick, from the event and the `let`s it keeps.
    Of(Eval),
}

pub struct ApprovalOp {
    pub pos: u32,
    pub role: Arc<str>,
    pub within: Eval,
    pub block: usize,
    pub otherwise: Option<usize>,
}
