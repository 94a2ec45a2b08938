//! The typed, resolved program: what the checker learned, in the form the
//! engine lowers.
//!
//! The checker builds this tree while it checks (`check::analyze` puts it in
//! `Analysis.hir`), so nothing after it derives a type again. Every
//! expression carries its type and where it was written; names are resolved
//! to [`Place`]s (a local, or a slot path in the event or the envelope);
//! number literals have their kind decided by their use (`0.10` compared
//! with a `decimal` is a decimal); operators carry the kind of their
//! operands ([`Operands`]: `AddDecimal` is `Add` on `Decimal`); calls are
//! bound to one overload of a built-in or to one user function; cron
//! expressions and zones are parsed, and Rhai scripts compiled, once. What
//! the checker could not make sense of is an [`ExprKind::Error`] node: the
//! engine lowers only programs without errors, and an error node it meets
//! anyway becomes a fault, never a guess.
//!
//! The editor reads types from this tree too ([`Program::type_at`]).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use crate::check::schedule::CronSchedule;
use crate::check::types::{Loc, RecordId, Type};
use crate::diag::{FileId, Span};
use crate::syntax::ast::{self, BinaryOp, TimerKind};

/// The runnable part of a checked program, and the expressions the editor
/// needs besides.
#[derive(Debug, Default)]
pub struct Program {
    pub rules: Vec<Rule>,
    /// User functions (Steward and Rhai), by [`FnId`]; `None` for one whose
    /// declaration was broken.
    pub functions: Vec<Option<Function>>,
    /// Expressions checked outside rules and functions (test blocks, the
    /// arguments of a call that could not be resolved): for hover only.
    pub detached: Vec<Expr>,
    /// What rules read from the history of events (`previous`, `changed`,
    /// `count(...)`), by [`Root::Recall`] index.
    pub recalls: Vec<Recall>,
}

/// A value a rule reads from the history of events rather than from its
/// event: the engine loads the ones a rule needs before the rule runs
/// (`Root::Recall(i)` reads the `i`th).
#[derive(Clone, Debug, PartialEq)]
pub enum Recall {
    /// `previous PATH`: the value `path` had in the last event of the same
    /// tenant and key that carried it; `ty` is the field's type where it is
    /// used (without `?`). A remembered value of another type is absent.
    Previous { path: Arc<str>, ty: Type },
    /// `count(E by f, g within D)`: how many events of type `event_type`
    /// whose `fields` equal this event's happened within `window_ms` up to
    /// now, this one included when it is one of them.
    Count {
        event_type: Arc<str>,
        fields: Vec<Arc<str>>,
        window_ms: i64,
    },
}

/// Index of a user function in [`Program::functions`].
pub type FnId = u32;

#[derive(Debug)]
pub struct Function {
    pub name: String,
    pub params: Vec<(String, Type)>,
    pub ret: Type,
    pub body: FnBody,
}

#[derive(Debug)]
pub enum FnBody {
    Expr(Expr),
    Rhai(Arc<Script>),
    /// The host had no file to give (checking text alone): nothing to run.
    Unavailable {
        file: FileId,
        span: Span,
        path: String,
    },
}

/// A Rhai script, compiled once by the checker.
#[derive(Debug)]
pub struct Script {
    /// The path as written in the declaration.
    pub path: String,
    pub ast: rhai::AST,
    /// Whether the script defines `fn NAME(...)` with the declared name
    /// (then that function is called with the arguments).
    pub defines_fn: bool,
}

#[derive(Debug)]
pub struct Rule {
    /// The rule's name, or `file.stw:LINE` for a one-line rule (which holds
    /// no state, so the name is only for messages).
    pub name: Arc<str>,
    pub file: FileId,
    /// The whole rule, as written.
    pub span: Span,
    pub title: Option<String>,
    pub trigger: Trigger,
    /// The `if` clause split at its top-level `and`s: each is a `bool`.
    pub conditions: Vec<Expr>,
    pub throttle: Option<Window>,
    /// `priority N`: rules with one run first, lowest first.
    pub priority: Option<i64>,
    /// `count N within D by K`, and how many of `conditions` come before it
    /// (those decide which events are counted; the rest, whether the rule
    /// goes on at the event that completes the count).
    pub count: Option<(Window, usize)>,
    /// The [`Program::recalls`] the rule reads.
    pub recalls: Vec<usize>,
    pub body: Vec<Stmt>,
}

#[derive(Debug)]
pub enum Trigger {
    Event {
        event_type: Arc<str>,
        record: RecordId,
    },
    Cron {
        schedule: Box<CronSchedule>,
        zone: Tz,
    },
    /// Every so many milliseconds (at least 1).
    Interval(i64),
    /// `when no E on f for D since S on g until C on h`.
    Quiet(Box<Quiet>),
    /// The event or the schedule was wrong (reported).
    Error,
}

/// A watch for what did not happen: each `start` event arms it for the
/// value of its `start_field`; each `event` whose `field` has that value
/// starts the `period` again; when it passes, the rule runs (with the start
/// event in scope, and the local `quiet_since`); an `until` event whose
/// field has the value ends the watch.
#[derive(Debug)]
pub struct Quiet {
    pub event: Arc<str>,
    pub field: Arc<str>,
    pub period: Expr,
    pub start: Arc<str>,
    pub start_record: RecordId,
    pub start_field: Arc<str>,
    pub until: Option<(Arc<str>, Arc<str>)>,
}

/// The local a rule on what did not happen sees: when the quiet period
/// began (the start event, or the last watched event).
pub const QUIET_SINCE: &str = "quiet_since";

/// A `throttle N per D by K` or `count N within D by K` clause.
#[derive(Debug)]
pub struct Window {
    pub count: Expr,
    pub per: Expr,
    pub by: Option<Expr>,
}

/// A statement. `step` is the statement's step id: a digest of its canonical
/// text and how many statements of the same text came before it in the rule
/// (see `hir::Steps`), stable when other statements, comments or blank lines
/// change, or the file is renamed.
#[derive(Debug)]
pub enum Stmt {
    /// Binds the next local (locals are numbered in the order they are bound,
    /// function parameters first; a block's locals end with it).
    Let {
        name: String,
        value: Expr,
    },
    If {
        branches: Vec<(Expr, Vec<Stmt>)>,
        otherwise: Vec<Stmt>,
    },
    Act(Act),
    Timer {
        step: u32,
        kind: TimerKind,
        when: Expr,
        unless: Vec<Unless>,
        skip_late: bool,
        body: Vec<Stmt>,
    },
    Approval {
        step: u32,
        role: Arc<str>,
        within: Expr,
        body: Vec<Stmt>,
        otherwise: Option<Vec<Stmt>>,
    },
    /// `every "CRON" in ZONE unless ... do ... end`: a schedule of the
    /// event's key, one timer for its next tick.
    Every {
        step: u32,
        schedule: Box<CronSchedule>,
        zone: Zone,
        unless: Vec<Unless>,
        body: Vec<Stmt>,
    },
    /// `stop`: no later rule handles the event.
    Stop,
    /// A call of a block action (`escalate(id, "no reply")`): its
    /// parameters bound as `let`s to the arguments, then its statements, in
    /// a scope of their own.
    Inline {
        action: Arc<str>,
        body: Vec<Stmt>,
    },
}

/// The time zone of a schedule statement: written out (checked), or an
/// expression (a text, checked when the event arrives).
#[derive(Debug)]
pub enum Zone {
    Fixed(Tz),
    Of(Expr),
}

/// An action statement, with its arguments as the action's declaration
/// names them (see `check::actions`), in declaration order.
#[derive(Debug)]
pub struct Act {
    pub step: u32,
    pub action: Arc<str>,
    pub args: Vec<(Arc<str>, Expr)>,
    /// For `emit`: the event type and its record, whose slots `args` fill in
    /// order.
    pub emit: Option<(Arc<str>, RecordId)>,
}

/// `unless EVENT on FIELD`: the event type, the field, and this event's value
/// of it.
#[derive(Debug)]
pub struct Unless {
    pub event: Arc<str>,
    pub field: Arc<str>,
    pub value: Expr,
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub ty: Type,
    pub at: Loc,
    pub kind: ExprKind,
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Lit(Lit),
    /// A name or field path that resolves to a place: read it.
    Read(Place),
    /// `event` or `envelope` as a whole record.
    Whole(Root),
    /// A field (by slot) of a record that is computed, not stored.
    Field(Box<Expr>, usize),
    Template(Vec<Part>),
    List(Vec<Expr>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    /// An `int` where a `float` or `decimal` is needed (the node's type).
    Widen(Box<Expr>),
    Binary(Operator, Box<Expr>, Box<Expr>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    /// Arguments in parameter order; one not given is `Lit(None)`.
    Call(Callee, Vec<Expr>),
    Error,
}

#[derive(Clone, Debug)]
pub enum Part {
    Text(String),
    Expr(Expr),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    Int(i64),
    Float(f64),
    Decimal(Decimal),
    /// A literal with a fraction whose kind its use has not decided yet;
    /// [`Expr::settle`] makes it a float or a decimal. None is left in a
    /// finished tree.
    Number(String),
    Str(Arc<str>),
    Bool(bool),
    None,
    /// Milliseconds.
    Duration(i64),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
}

/// A binary operator and the kind of value it works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operator {
    pub op: BinaryOp,
    pub on: Operands,
}

/// What an operator's operands are, decided by the checker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operands {
    Int,
    Float,
    Decimal,
    /// Text (strings and unions).
    Text,
    Bool,
    Date,
    DateTime,
    Duration,
    /// Date and time arithmetic that mixes kinds (`datetime + duration`).
    Time,
    /// A list and an item (`in`, `contains`) or two lists (`+`).
    List,
    /// Records, optionals against `none`, and the logical operators.
    Other,
}

/// Where a value lives: a root (the payload, the envelope or a local) and a
/// path of record slots. Reading it borrows; nothing is copied.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Place {
    pub root: Root,
    pub path: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Root {
    Event,
    Envelope,
    Local(usize),
    /// A value from the history of events ([`Program::recalls`]).
    Recall(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Callee {
    /// A built-in (`extern fn` in `stdlib/`): its name and which of its
    /// declared overloads the arguments chose.
    Builtin { name: Arc<str>, overload: u32 },
    /// A function written in Steward or Rhai.
    User(FnId),
}

impl Expr {
    pub fn new(ty: Type, at: Loc, kind: ExprKind) -> Expr {
        Expr { ty, at, kind }
    }

    /// `none`: what an argument or field that was not given is.
    pub fn none(at: Loc) -> Expr {
        Expr::new(Type::None, at, ExprKind::Lit(Lit::None))
    }

    /// A node for what could not be checked.
    pub fn error(at: Loc) -> Expr {
        Expr::new(Type::Error, at, ExprKind::Error)
    }

    /// Decides the kind of the number literals in this expression for a use
    /// that needs `to`: `0.5` where a `decimal` is needed is a decimal, `1`
    /// where a `float` is needed is a float, and an `int` value where a
    /// `float` or `decimal` is needed is widened. Any other `to` changes
    /// nothing ([`Expr::finish`] decides what is left open). The checker
    /// calls this wherever two types meet (operands, branches, items,
    /// arguments, declared types).
    pub fn settle(&mut self, to: &Type) {
        let to = to.present();
        if let ExprKind::List(items) = &mut self.kind {
            let Type::List(want) = to else { return };
            for item in items.iter_mut() {
                item.settle(want);
            }
            let widened = matches!(&self.ty, Type::List(have) if matches!(have.present(), Type::Number | Type::Int));
            if widened && matches!(want.present(), Type::Float | Type::Decimal) {
                self.ty = Type::List(want.clone());
            }
            return;
        }
        let target = match to {
            Type::Decimal => Type::Decimal,
            Type::Float => Type::Float,
            _ => return,
        };
        let have = self.ty.present().clone();
        if have == Type::Int && !self.is_constant_number() {
            // An `int` value where a `float` or `decimal` is needed.
            let at = self.at;
            let ty = keep_optional(&self.ty, target);
            let inner = std::mem::replace(self, Expr::error(at));
            *self = Expr::new(ty, at, ExprKind::Widen(Box::new(inner)));
            return;
        }
        if !matches!(have, Type::Number | Type::Int) {
            return;
        }
        match &mut self.kind {
            ExprKind::Lit(lit) => {
                let made = match (&*lit, &target) {
                    (Lit::Number(text), Type::Decimal) => {
                        text.parse::<Decimal>().ok().map(Lit::Decimal)
                    }
                    (Lit::Number(text), _) => text.parse::<f64>().ok().map(Lit::Float),
                    (Lit::Int(i), Type::Decimal) => Some(Lit::Decimal(Decimal::from(*i))),
                    (Lit::Int(i), _) => Some(Lit::Float(*i as f64)),
                    (other, _) => Some(other.clone()),
                };
                match made {
                    Some(lit) => self.kind = ExprKind::Lit(lit),
                    // The checker refuses such a literal (E0104); never a 0.
                    None => {
                        *self = Expr::error(self.at);
                        return;
                    }
                }
            }
            ExprKind::Neg(inner) => inner.settle(&target),
            ExprKind::Binary(op, l, r) => {
                l.settle(&target);
                r.settle(&target);
                if op.op != BinaryOp::Coalesce {
                    op.on = Operands::of_number(&target);
                }
            }
            ExprKind::If(_, a, b) => {
                a.settle(&target);
                b.settle(&target);
            }
            _ => {}
        }
        self.ty = keep_optional(&self.ty, target);
    }

    /// Decides what is still open without a use that needs a kind: a bare
    /// `0.5` is a float.
    pub fn finish(&mut self) {
        match self.ty.present() {
            Type::Number => self.settle(&Type::Float),
            Type::List(item) if **item == Type::Number => {
                self.settle(&Type::List(Box::new(Type::Float)))
            }
            _ => {}
        }
    }

    /// `1`, `0.5`, `-2`, `2 * 3`: numbers whose kind their use decides.
    pub fn is_constant_number(&self) -> bool {
        match &self.kind {
            ExprKind::Lit(Lit::Int(_) | Lit::Number(_)) => true,
            ExprKind::Neg(inner) => inner.is_constant_number(),
            ExprKind::Binary(op, l, r) => {
                matches!(
                    op.op,
                    BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem
                ) && l.is_constant_number()
                    && r.is_constant_number()
            }
            _ => false,
        }
    }

    /// Calls `f` on this expression and every expression inside it.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match &self.kind {
            ExprKind::Field(inner, _)
            | ExprKind::Neg(inner)
            | ExprKind::Not(inner)
            | ExprKind::Widen(inner) => inner.walk(f),
            ExprKind::Template(parts) => {
                for part in parts {
                    if let Part::Expr(e) = part {
                        e.walk(f);
                    }
                }
            }
            ExprKind::List(items) | ExprKind::Call(_, items) => {
                items.iter().for_each(|i| i.walk(f))
            }
            ExprKind::Binary(_, l, r) => {
                l.walk(f);
                r.walk(f);
            }
            ExprKind::If(c, a, b) => {
                c.walk(f);
                a.walk(f);
                b.walk(f);
            }
            ExprKind::Lit(_) | ExprKind::Read(_) | ExprKind::Whole(_) | ExprKind::Error => {}
        }
    }
}

fn keep_optional(was: &Type, now: Type) -> Type {
    if was.is_optional() {
        now.optional()
    } else {
        now
    }
}

impl Operands {
    /// The operands of arithmetic or a comparison on two numbers of type `ty`.
    pub fn of_number(ty: &Type) -> Operands {
        match ty.present() {
            Type::Int => Operands::Int,
            Type::Decimal => Operands::Decimal,
            _ => Operands::Float,
        }
    }

    /// The operands of a comparison of two values of type `ty`.
    pub fn of(ty: &Type) -> Operands {
        match ty.present() {
            Type::Int => Operands::Int,
            Type::Float | Type::Number => Operands::Float,
            Type::Decimal => Operands::Decimal,
            Type::String | Type::Union(_) => Operands::Text,
            Type::Bool => Operands::Bool,
            Type::Date => Operands::Date,
            Type::DateTime => Operands::DateTime,
            Type::Duration => Operands::Duration,
            Type::List(_) => Operands::List,
            _ => Operands::Other,
        }
    }
}

impl Stmt {
    /// Calls `f` on every expression of this statement and the statements
    /// inside it.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        let block =
            |stmts: &'a [Stmt], f: &mut dyn FnMut(&'a Expr)| stmts.iter().for_each(|s| s.walk(f));
        match self {
            Stmt::Let { value, .. } => value.walk(f),
            Stmt::If {
                branches,
                otherwise,
            } => {
                for (cond, body) in branches {
                    cond.walk(f);
                    block(body, f);
                }
                block(otherwise, f);
            }
            Stmt::Act(act) => act.args.iter().for_each(|(_, e)| e.walk(f)),
            Stmt::Inline { body, .. } => block(body, f),
            Stmt::Stop => {}
            Stmt::Timer {
                when, unless, body, ..
            } => {
                when.walk(f);
                unless.iter().for_each(|u| u.value.walk(f));
                block(body, f);
            }
            Stmt::Every {
                zone, unless, body, ..
            } => {
                if let Zone::Of(zone) = zone {
                    zone.walk(f);
                }
                unless.iter().for_each(|u| u.value.walk(f));
                block(body, f);
            }
            Stmt::Approval {
                within,
                body,
                otherwise,
                ..
            } => {
                within.walk(f);
                block(body, f);
                if let Some(o) = otherwise {
                    block(o, f);
                }
            }
        }
    }
}

impl Program {
    /// Calls `f` on every expression of the program, detached ones included.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        for rule in &self.rules {
            if let Trigger::Quiet(q) = &rule.trigger {
                q.period.walk(f);
            }
            rule.conditions.iter().for_each(|c| c.walk(f));
            let count = rule.count.as_ref().map(|(w, _)| w);
            for t in rule.throttle.iter().chain(count) {
                t.count.walk(f);
                t.per.walk(f);
                if let Some(by) = &t.by {
                    by.walk(f);
                }
            }
            rule.body.iter().for_each(|s| s.walk(f));
        }
        for function in self.functions.iter().flatten() {
            if let FnBody::Expr(body) = &function.body {
                body.walk(f);
            }
        }
        self.detached.iter().for_each(|e| e.walk(f));
    }

    /// The type of the innermost expression around `offset` in `file`.
    pub fn type_at(&self, file: FileId, offset: u32) -> Option<(Span, &Type)> {
        let mut best: Option<&Expr> = None;
        self.walk(&mut |e| {
            if e.at.file == file
                && e.at.span.contains(offset)
                && !e.at.span.is_empty()
                && best.is_none_or(|b| e.at.span.len() < b.at.span.len())
            {
                best = Some(e);
            }
        });
        best.map(|e| (e.at.span, &e.ty))
    }

    /// The type of the expression written exactly at `at`.
    pub fn type_of(&self, at: Loc) -> Option<&Type> {
        let mut found = None;
        self.walk(&mut |e| {
            if found.is_none() && e.at == at {
                found = Some(&e.ty);
            }
        });
        found
    }
}

/// Step ids: a statement's id is a digest of its canonical text (see
/// `format::step_text`) and how many statements of the same text came
/// before it in the rule. Adding statements, comments or blank lines
/// elsewhere, or renaming or moving the file, leaves it unchanged, so a
/// stored timer or approval finds its statement again.
///
/// The statements of a block action are numbered where it is called: their
/// ids are salted with the call's own id, so each call site has keys of
/// its own, as stable as the call's.
pub(crate) struct Steps<'a> {
    text: &'a str,
    seen: HashMap<String, u32>,
    salt: Option<u32>,
}

impl<'a> Steps<'a> {
    pub(crate) fn new(text: &'a str) -> Steps<'a> {
        Steps {
            text,
            seen: HashMap::new(),
            salt: None,
        }
    }

    /// The ids of a block action's statements (in `text`, its file) called
    /// by the statement whose id is `call`.
    pub(crate) fn salted(text: &'a str, call: u32) -> Steps<'a> {
        Steps {
            salt: Some(call),
            ..Steps::new(text)
        }
    }

    pub(crate) fn id(&mut self, stmt: &ast::Stmt) -> u32 {
        use sha2::{Digest, Sha256};
        let canonical = crate::syntax::format::step_text(stmt, self.text);
        let n = self.seen.entry(canonical.clone()).or_insert(0);
        *n = n.saturating_add(1);
        let mut digest = Sha256::new()
            .chain_update(canonical.as_bytes())
            .chain_update(n.to_be_bytes());
        if let Some(call) = self.salt {
            digest = digest
                .chain_update(b"call")
                .chain_update(call.to_be_bytes());
        }
        let digest = digest.finalize();
        let [a, b, c, d, ..]: [u8; 32] = digest.into();
        u32::from_be_bytes([a, b, c, d])
    }
}
