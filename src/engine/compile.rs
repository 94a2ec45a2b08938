//! From a checked program to compiled rules.
//!
//! Expressions become closures over a [`Frame`]: names and field paths are
//! resolved to slots once ([`Place`]), constants are folded, regular
//! expressions are compiled once, and comparisons of a field with a constant
//! get their own closure that reads the slot and compares without copying.
//! Statements become [`Op`]s, a flat form the runtime walks; the bodies of
//! timers and approvals are separate blocks, so a continuation is just
//! (rule, block, captured values).
//!
//! The compiler trusts the checker: it runs only on programs without errors,
//! and recomputes only the little typing it needs (which overload, whether a
//! literal such as `0.10` is a `float` or a `decimal`).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use chrono_tz::Tz;
use regex::Regex;
use rust_decimal::Decimal;

use super::builtins;
use super::decode::{Shape, Shapes};
use super::eval::{arith, equal, fault, test, Cond, Eval, Fault, Frame};
use super::index::{IndexKey, RuleIndex};
use super::pred::{Access, Pred};
use super::rhai::{self as rhai_fns, RhaiFn};
use super::value::{Record, Value};
use crate::check::schedule::CronSchedule;
use crate::check::types::{FnKind, FnSig, Program, RecordId, Type};
use crate::check::{stdlib, Analysis};
use crate::diag::{Code, Diagnostic, FileId, Span};
use crate::syntax::ast::{
    self, BinaryOp, Block as AstBlock, Clause, Expr, ExprKind, FnBody, Item, RuleDecl, Schedule,
    StmtKind, TemplatePart, TimerKind, Trigger, UnaryOp,
};

/// Functions and the things compiled code shares at run time.
pub struct Library {
    pub functions: Vec<FnImpl>,
    pub rhai: ::rhai::Engine,
    pub shapes: Shapes,
    /// Patterns of `matches` that are not constants, compiled on first use.
    regexes: Mutex<HashMap<String, Regex>>,
}

pub enum FnImpl {
    Steward { name: String, body: Eval },
    Rhai(RhaiFn),
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

    fn regex(&self, pattern: &str) -> Result<Regex, Fault> {
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
}

static NONE: Value = Value::None;

impl Place {
    #[inline]
    pub fn get<'f>(&self, f: &Frame<'f>) -> &'f Value {
        let (mut v, rest) = match self.root {
            Root::Event => match self.path.split_first() {
                Some((first, rest)) => (&f.event.slots[*first], rest),
                None => return &NONE,
            },
            Root::Envelope => match self.path.split_first() {
                Some((first, rest)) => (&f.envelope.slots[*first], rest),
                None => return &NONE,
            },
            Root::Local(i) => (&f.locals[i], &self.path[..]),
        };
        for &slot in rest {
            match v {
                Value::Record(r) => v = &r.slots[slot],
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
        let mut v = &payload.slots[*first];
        for &slot in rest {
            match v {
                Value::Record(r) => v = &r.slots[slot],
                _ => return &NONE,
            }
        }
        v
    }
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
    /// Block 0 is the body; timers and approvals refer to the others.
    pub blocks: Vec<Vec<Op>>,
    /// Where each block is, by the step id of the statement that owns it
    /// (block 0: step 0, the body): how a stored continuation names it.
    pub block_steps: Vec<BlockRef>,
    /// An equality test every firing needs, for the rule index.
    pub index_key: Option<(Place, String, Vec<IndexKey>)>,
}

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

pub struct Throttle {
    pub count: Eval,
    pub per: Eval,
    pub by: Option<Eval>,
}

/// A statement, compiled. `pos` is the statement's step id (see [`Steps`]);
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

pub struct ApprovalOp {
    pub pos: u32,
    pub role: Arc<str>,
    pub within: Eval,
    pub block: usize,
    pub otherwise: Option<usize>,
}

/// Compiled rules, ready to run.
pub struct Ruleset {
    /// A digest of the rule texts: part of every idempotency key.
    pub version: String,
    pub rules: Vec<Rule>,
    pub lib: Library,
    pub index: RuleIndex,
    /// For each event type, the fields that cancel timers (`unless E on k`).
    pub cancel_fields: foldhash::HashMap<Arc<str>, Vec<(Arc<str>, usize)>>,
    /// The payload of schedule-triggered rules.
    pub empty: Arc<Record>,
}

impl Ruleset {
    pub fn shapes(&self) -> &Shapes {
        &self.lib.shapes
    }
}

/// Compiles a checked program. Refuses a program with errors (they are
/// returned), and reports Rhai scripts that do not compile.
pub fn compile(analysis: &Analysis) -> Result<Ruleset, Vec<Diagnostic>> {
    let errors: Vec<Diagnostic> = analysis.errors().cloned().collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let program = &analysis.program;
    let shapes = Shapes::new(program);
    let mut cx = Compiler {
        analysis,
        program,
        fn_index: HashMap::new(),
        diags: Vec::new(),
    };

    // Number every user function first, so calls can refer to any of them.
    let mut fn_decls = Vec::new();
    for file in analysis.user_files() {
        for item in &file.tree.items {
            if let Item::Fn(d) = item {
                cx.fn_index.insert(d.name.text.clone(), fn_decls.len());
                fn_decls.push((file.id, d));
            }
        }
    }
    let rhai_engine = rhai_fns::sandbox();
    let mut functions = Vec::new();
    for (file, d) in &fn_decls {
        let sig = program
            .functions
            .get(&d.name.text)
            .and_then(|s| s.first())
            .cloned();
        let Some(sig) = sig else { continue };
        functions.push(match &d.body {
            FnBody::Expr(body) => {
                let mut scope = Scope::new(*file, None);
                for p in &sig.params {
                    scope.locals.push((p.name.clone(), p.ty.clone()));
                }
                FnImpl::Steward {
                    name: d.name.text.clone(),
                    body: cx.expr(&scope, body, Some(&sig.ret)).eval,
                }
            }
            FnBody::Rhai(path) => {
                let text = analysis.rhai.get(&(*file, path.value.clone()));
                let ast = match text {
                    Some(text) => rhai_fns::compile(&rhai_engine, text),
                    None => Err("the script's text is not available".to_string()),
                };
                match ast {
                    Ok(ast) => FnImpl::Rhai(RhaiFn {
                        name: d.name.text.clone(),
                        file: path.value.clone(),
                        params: sig.params.iter().map(|p| p.name.clone()).collect(),
                        ret: Shape::of(&sig.ret),
                        ast,
                    }),
                    Err(e) => {
                        cx.diags.push(
                            Diagnostic::new(
                                Code::RhaiSyntax,
                                *file,
                                path.span,
                                format!("the Rhai script `{}` does not compile: {e}", path.value),
                            )
                            .with_help(
                                "fix the script; Rhai's syntax is described in the Rhai book",
                            ),
                        );
                        continue;
                    }
                }
            }
        });
    }

    let mut rules = Vec::new();
    for file in analysis.user_files() {
        for item in &file.tree.items {
            if let Item::Rule(r) = item {
                rules.push(cx.rule(file.id, r));
            }
        }
    }
    if !cx.diags.is_empty() {
        return Err(cx.diags);
    }

    let mut cancel_fields: foldhash::HashMap<Arc<str>, Vec<(Arc<str>, usize)>> = Default::default();
    for rule in &rules {
        for block in &rule.blocks {
            visit_ops(block, &mut |op| {
                if let Op::Timer(t) = op {
                    for (event, field, _) in &t.unless {
                        let slot = shapes
                            .events
                            .get(&**event)
                            .and_then(|id| shapes.record(*id).slot(field));
                        if let Some(slot) = slot {
                            let list = cancel_fields.entry(event.clone()).or_default();
                            if !list.iter().any(|(f, _)| f == field) {
                                list.push((field.clone(), slot));
                            }
                        }
                    }
                }
            });
        }
    }

    let index = RuleIndex::build(&rules);
    let empty = Arc::new(Record {
        shape: shapes.envelope,
        slots: Box::new([]),
    });
    Ok(Ruleset {
        version: version_of(analysis),
        rules,
        lib: Library {
            functions,
            rhai: rhai_engine,
            shapes,
            regexes: Mutex::new(HashMap::new()),
        },
        index,
        cancel_fields,
        empty,
    })
}

fn visit_ops(ops: &[Op], f: &mut dyn FnMut(&Op)) {
    for op in ops {
        f(op);
        if let Op::If {
            branches,
            otherwise,
        } = op
        {
            for (_, b) in branches {
                visit_ops(b, f);
            }
            visit_ops(otherwise, f);
        }
    }
}

/// The ruleset version: a digest (SHA-256, first 12 hex digits) of what
/// runs: the canonical text of every item but tests, in a sorted order, and
/// the Rhai scripts. File names, the order of files and items, layout,
/// comments and tests do not change it.
fn version_of(analysis: &Analysis) -> String {
    use sha2::{Digest, Sha256};
    let mut items: Vec<String> = Vec::new();
    for file in analysis.user_files() {
        let text = analysis.sources.text(file.id);
        items.extend(crate::syntax::format::canonical_items(&file.tree, text));
    }
    let mut scripts: Vec<&String> = analysis.rhai.values().collect();
    scripts.sort();
    scripts.dedup();
    items.sort();
    let mut hash = Sha256::new();
    for part in items.iter().chain(scripts) {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Clone)]
struct Scope {
    file: FileId,
    event: Option<RecordId>,
    locals: Vec<(String, Type)>,
}

impl Scope {
    fn new(file: FileId, event: Option<RecordId>) -> Scope {
        Scope {
            file,
            event,
            locals: Vec::new(),
        }
    }
}

/// A compiled expression with its type and, when known, its value.
struct Compiled {
    eval: Eval,
    ty: Type,
    konst: Option<Value>,
}

fn konst(value: Value, ty: Type) -> Compiled {
    let v = value.clone();
    Compiled {
        eval: Box::new(move |_| Ok(v.clone())),
        ty,
        konst: Some(value),
    }
}

struct Compiler<'a> {
    analysis: &'a Analysis,
    program: &'a Program,
    fn_index: HashMap<String, usize>,
    diags: Vec<Diagnostic>,
}

impl Compiler<'_> {
    fn text(&self, file: FileId, span: Span) -> String {
        self.analysis
            .sources
            .text(file)
            .get(span.range())
            .unwrap_or("")
            .to_string()
    }

    fn rule(&mut self, file: FileId, r: &RuleDecl) -> Rule {
        let name: Arc<str> = match &r.name {
            Some(n) => Arc::from(n.text.as_str()),
            None => {
                let source = self.analysis.sources.get(file);
                let line = source.lines.line_col(r.span.start).line + 1;
                let base = std::path::Path::new(&*source.name)
                    .file_name()
                    .map_or_else(|| source.name.to_string(), |n| n.to_string_lossy().into());
                Arc::from(format!("{base}:{line}"))
            }
        };
        let (trigger, event) = match &r.trigger {
            Trigger::When { event, .. } => {
                let record = self.program.events.get(&event.text).copied().unwrap_or(0);
                (
                    RuleTrigger::Event {
                        event_type: Arc::from(event.text.as_str()),
                        record,
                    },
                    Some(record),
                )
            }
            Trigger::Every { schedule, .. } => (
                match schedule {
                    Schedule::Cron { expr, zone } => RuleTrigger::Cron {
                        schedule: Box::new(
                            CronSchedule::parse(&expr.value).expect("checked by the checker"),
                        ),
                        zone: zone
                            .as_ref()
                            .and_then(|z| Tz::from_str(&z.value).ok())
                            .unwrap_or(Tz::UTC),
                    },
                    Schedule::Interval(e) => RuleTrigger::Interval(match e.kind {
                        ExprKind::Duration(ms) => ms.max(1),
                        _ => 60_000,
                    }),
                },
                None,
            ),
        };
        let scope = Scope::new(file, event);
        let mut conditions = Vec::new();
        let mut test = Pred::Const(true);
        let mut throttle = None;
        let mut index_key = None;
        for clause in &r.clauses {
            match clause {
                Clause::Condition { cond, .. } => {
                    let mut parts = Vec::new();
                    conjuncts(cond, &mut parts);
                    for part in parts {
                        if index_key.is_none() {
                            index_key = self.index_key(&scope, part);
                        }
                        let mut reads = Vec::new();
                        self.reads(&scope, part, &mut reads);
                        conditions.push(Condition {
                            text: self.text(file, part.span),
                            cond: self.cond(&scope, part),
                            reads,
                        });
                        test = match test {
                            Pred::Const(true) => self.pred(&scope, part),
                            test => Pred::all(test, self.pred(&scope, part)),
                        };
                    }
                }
                Clause::Throttle { count, per, by, .. } => {
                    throttle = Some(Throttle {
                        count: self.expr(&scope, count, Some(&Type::Int)).eval,
                        per: self.expr(&scope, per, Some(&Type::Duration)).eval,
                        by: by.as_ref().map(|b| self.expr(&scope, b, None).eval),
                    });
                }
            }
        }
        let mut rule = Rule {
            name,
            title: r.title.as_ref().map(|t| t.value.clone()),
            trigger,
            conditions,
            test: test.into_cond(),
            throttle,
            blocks: vec![Vec::new()],
            block_steps: vec![BlockRef {
                step: 0,
                branch: Branch::Body,
            }],
            index_key,
        };
        let analysis = self.analysis;
        let mut pos = Steps::new(analysis.sources.text(file));
        let mut scope = scope;
        let body = self.block(&mut rule, &mut scope, &r.body, &mut pos);
        rule.blocks[0] = body;
        rule
    }

    /// `field == "const"` or `field in ["a", "b"]` on a field that is always
    /// present: the rule index can find the rule by the field's value.
    fn index_key(&self, scope: &Scope, e: &Expr) -> Option<(Place, String, Vec<IndexKey>)> {
        let e = strip(e);
        let ExprKind::Binary(op, l, r) = &e.kind else {
            return None;
        };
        let (place_side, other) = match op {
            BinaryOp::Eq => {
                if self.place(scope, l).is_some() {
                    (l, r)
                } else {
                    (r, l)
                }
            }
            BinaryOp::In => (l, r),
            _ => return None,
        };
        let (place, ty) = self.place(scope, place_side)?;
        if ty.is_optional() || !matches!(place.root, Root::Event) {
            return None;
        }
        let hint = Some(&ty);
        let value = self.expr(scope, other, hint).konst?;
        let keys: Option<Vec<IndexKey>> = match (op, &value) {
            (BinaryOp::In, Value::List(items)) => items.iter().map(IndexKey::of).collect(),
            (BinaryOp::Eq, v) => IndexKey::of(v).map(|k| vec![k]),
            _ => None,
        };
        Some((place, self.text(scope.file, place_side.span), keys?))
    }

    fn reads(&self, scope: &Scope, e: &Expr, out: &mut Vec<(String, Place)>) {
        if let Some((place, _)) = self.place(scope, e) {
            let text = self.text(scope.file, e.span);
            if !out.iter().any(|(t, _)| *t == text) {
                out.push((text, place));
            }
            return;
        }
        match &e.kind {
            ExprKind::Field(base, _) => self.reads(scope, base, out),
            ExprKind::Call(_, args) => args.iter().for_each(|a| self.reads(scope, &a.value, out)),
            ExprKind::List(items) => items.iter().for_each(|i| self.reads(scope, i, out)),
            ExprKind::Unary(_, x) | ExprKind::Paren(x) => self.reads(scope, x, out),
            ExprKind::Binary(_, l, r) => {
                self.reads(scope, l, out);
                self.reads(scope, r, out);
            }
            ExprKind::If(c, t, f) => {
                self.reads(scope, c, out);
                self.reads(scope, t, out);
                self.reads(scope, f, out);
            }
            ExprKind::Str(t) => {
                for part in &t.parts {
                    if let TemplatePart::Expr(x) = part {
                        self.reads(scope, x, out);
                    }
                }
            }
            _ => {}
        }
    }

    fn block(
        &mut self,
        rule: &mut Rule,
        scope: &mut Scope,
        b: &AstBlock,
        pos: &mut Steps,
    ) -> Vec<Op> {
        let mark = scope.locals.len();
        let mut ops = Vec::new();
        for stmt in &b.stmts {
            let here = pos.id(stmt);
            let op = match &stmt.kind {
                StmtKind::Let { name, ty, value } => {
                    let declared = ty.as_ref().map(|t| self.resolve_type(t));
                    let c = self.expr(scope, value, declared.as_ref());
                    let ty = declared.unwrap_or_else(|| settle(c.ty.clone()));
                    scope.locals.push((name.text.clone(), ty));
                    Op::Let(c.eval)
                }
                StmtKind::If {
                    branches,
                    otherwise,
                } => {
                    let mut compiled = Vec::new();
                    for (cond, body) in branches {
                        let c = self.cond(scope, cond);
                        let body = self.block(rule, &mut scope.clone(), body, pos);
                        compiled.push((c, body));
                    }
                    let otherwise = match otherwise {
                        Some(b) => self.block(rule, &mut scope.clone(), b, pos),
                        None => Vec::new(),
                    };
                    Op::If {
                        branches: compiled,
                        otherwise,
                    }
                }
                StmtKind::Send { message } => self.send(scope, here, &message.text),
                StmtKind::Notify { role, text } => Op::Act(Act {
                    pos: here,
                    action: Arc::from("notify"),
                    args: vec![
                        (Arc::from("role"), str_const(&role.text)),
                        (Arc::from("text"), self.expr(scope, text, None).eval),
                    ],
                    emit: None,
                }),
                StmtKind::CreateTask { title, role, due } => Op::Act(Act {
                    pos: here,
                    action: Arc::from("create_task"),
                    args: vec![
                        (Arc::from("title"), self.expr(scope, title, None).eval),
                        (Arc::from("role"), str_const(&role.text)),
                        (
                            Arc::from("due"),
                            match due {
                                Some(d) => self.expr(scope, d, Some(&Type::DateTime)).eval,
                                None => Box::new(|_| Ok(Value::None)),
                            },
                        ),
                    ],
                    emit: None,
                }),
                StmtKind::Log { text } => Op::Act(Act {
                    pos: here,
                    action: Arc::from("log"),
                    args: vec![(Arc::from("text"), self.expr(scope, text, None).eval)],
                    emit: None,
                }),
                StmtKind::Emit { event, fields, .. } => {
                    let record = self.program.events.get(&event.text).copied().unwrap_or(0);
                    let def = self.program.record(record);
                    let mut args = Vec::new();
                    for field in &def.fields {
                        let given = fields.iter().find(|f| f.name.text == field.name);
                        let eval: Eval = match given {
                            Some(f) => self.expr(scope, &f.value, Some(&field.ty)).eval,
                            None => Box::new(|_| Ok(Value::None)),
                        };
                        args.push((Arc::from(field.name.as_str()), eval));
                    }
                    Op::Act(Act {
                        pos: here,
                        action: Arc::from("emit"),
                        args,
                        emit: Some((Arc::from(event.text.as_str()), record)),
                    })
                }
                StmtKind::Call { name, args } => {
                    let params = self
                        .program
                        .actions
                        .get(&name.text)
                        .map(|a| a.params.clone())
                        .unwrap_or_default();
                    let ordered = order_args(&params, args);
                    let mut compiled = Vec::new();
                    for (param, arg) in params.iter().zip(ordered) {
                        let eval = match arg {
                            Some(a) => self.expr(scope, a, Some(&param.ty)).eval,
                            None => Box::new(|_: &Frame| Ok(Value::None)) as Eval,
                        };
                        compiled.push((Arc::from(param.name.as_str()), eval));
                    }
                    Op::Act(Act {
                        pos: here,
                        action: Arc::from(name.text.as_str()),
                        args: compiled,
                        emit: None,
                    })
                }
                StmtKind::Timer {
                    kind,
                    when,
                    unless,
                    skip_late,
                    body,
                } => {
                    let hint = match kind {
                        TimerKind::After => Type::Duration,
                        TimerKind::At => Type::DateTime,
                    };
                    let when = self.expr(scope, when, Some(&hint)).eval;
                    let unless = unless
                        .iter()
                        .map(|u| {
                            let key = Expr {
                                span: u.field.span,
                                kind: ExprKind::Name(u.field.clone()),
                            };
                            (
                                Arc::from(u.event.text.as_str()),
                                Arc::from(u.field.text.as_str()),
                                self.expr(scope, &key, None).eval,
                            )
                        })
                        .collect();
                    let owner = BlockRef {
                        step: here,
                        branch: Branch::Do,
                    };
                    let block = self.sub_block(rule, scope, body, pos, owner);
                    Op::Timer(TimerOp {
                        pos: here,
                        kind: *kind,
                        when,
                        unless,
                        skip_late: *skip_late,
                        block,
                    })
                }
                StmtKind::Approval {
                    role,
                    within,
                    body,
                    otherwise,
                } => {
                    let within = self.expr(scope, within, Some(&Type::Duration)).eval;
                    let owner = |branch| BlockRef { step: here, branch };
                    let block = self.sub_block(rule, scope, body, pos, owner(Branch::Do));
                    let otherwise = otherwise
                        .as_ref()
                        .map(|b| self.sub_block(rule, scope, b, pos, owner(Branch::Else)));
                    Op::Approval(ApprovalOp {
                        pos: here,
                        role: Arc::from(role.text.as_str()),
                        within,
                        block,
                        otherwise,
                    })
                }
            };
            ops.push(op);
        }
        scope.locals.truncate(mark);
        ops
    }

    fn sub_block(
        &mut self,
        rule: &mut Rule,
        scope: &Scope,
        b: &AstBlock,
        pos: &mut Steps,
        owner: BlockRef,
    ) -> usize {
        let index = rule.blocks.len();
        rule.blocks.push(Vec::new());
        rule.block_steps.push(owner);
        let ops = self.block(rule, &mut scope.clone(), b, pos);
        rule.blocks[index] = ops;
        index
    }

    /// `send m`: the message's fields, compiled in the sending rule's scope.
    fn send(&mut self, scope: &Scope, pos: u32, message: &str) -> Op {
        let mut args: Vec<(Arc<str>, Eval)> = vec![(Arc::from("message"), str_const(message))];
        if let Some(&(file, index)) = self.program.messages.get(message) {
            let tree = self.analysis.files.iter().find(|f| f.id == file);
            if let Some(Item::Message(m)) = tree.and_then(|t| t.tree.items.get(index)) {
                let mut scope = scope.clone();
                scope.file = file;
                for field in &m.fields {
                    let c = self.expr(&scope, &field.value, Some(&Type::String));
                    args.push((Arc::from(field.name.text.as_str()), c.eval));
                }
            }
        }
        Op::Act(Act {
            pos,
            action: Arc::from("send"),
            args,
            emit: None,
        })
    }

    fn resolve_type(&self, t: &ast::TypeExpr) -> Type {
        let base = match &t.kind {
            ast::TypeExprKind::Named(n) => Type::builtin(&n.text).unwrap_or_else(|| {
                self.program
                    .types
                    .get(&n.text)
                    .map_or(Type::Error, |id| Type::Record(*id))
            }),
            ast::TypeExprKind::List(inner) => Type::List(Box::new(self.resolve_type(inner))),
            ast::TypeExprKind::Union(members) => {
                Type::Union(members.iter().map(|m| m.value.clone()).collect())
            }
            ast::TypeExprKind::Paren(inner) => self.resolve_type(inner),
        };
        if t.optional {
            base.optional()
        } else {
            base
        }
    }

    /// The place an expression reads, if it is a name or a field path.
    fn place(&self, scope: &Scope, e: &Expr) -> Option<(Place, Type)> {
        match &e.kind {
            ExprKind::Paren(inner) => self.place(scope, inner),
            ExprKind::Name(n) => {
                if let Some(i) = scope.locals.iter().rposition(|(name, _)| *name == n.text) {
                    return Some((
                        Place {
                            root: Root::Local(i),
                            path: Vec::new(),
                        },
                        scope.locals[i].1.clone(),
                    ));
                }
                let id = scope.event?;
                let record = self.program.record(id);
                let slot = record.fields.iter().position(|f| f.name == n.text)?;
                Some((
                    Place {
                        root: Root::Event,
                        path: vec![slot],
                    },
                    record.fields[slot].ty.clone(),
                ))
            }
            ExprKind::Field(base, field) => {
                let (mut place, ty) = match &base.kind {
                    ExprKind::Name(n)
                        if scope.event.is_some()
                            && !scope.locals.iter().any(|(l, _)| *l == n.text)
                            && self.program.record(scope.event?).field(&n.text).is_none()
                            && (n.text == stdlib::EVENT || n.text == stdlib::ENVELOPE) =>
                    {
                        let (root, id) = if n.text == stdlib::EVENT {
                            (Root::Event, scope.event?)
                        } else {
                            (
                                Root::Envelope,
                                *self.program.types.get(stdlib::ENVELOPE_TYPE)?,
                            )
                        };
                        (
                            Place {
                                root,
                                path: Vec::new(),
                            },
                            Type::Record(id),
                        )
                    }
                    _ => self.place(scope, base)?,
                };
                let optional = ty.is_optional();
                let Type::Record(id) = ty.present() else {
                    return None;
                };
                let record = self.program.record(*id);
                let slot = record.fields.iter().position(|f| f.name == field.text)?;
                place.path.push(slot);
                let fty = record.fields[slot].ty.clone();
                Some((place, if optional { fty.optional() } else { fty }))
            }
            _ => None,
        }
    }

    /// Compiles a condition.
    fn cond(&self, scope: &Scope, e: &Expr) -> Cond {
        self.pred(scope, e).into_cond()
    }

    /// Compiles a condition to a [`Pred`], with inline leaves for the common
    /// shapes (a field against a constant, a bool field).
    fn pred(&self, scope: &Scope, e: &Expr) -> Pred {
        let e = strip(e);
        match &e.kind {
            ExprKind::Bool(b) => Pred::Const(*b),
            ExprKind::Unary(UnaryOp::Not, inner) => !self.pred(scope, inner),
            ExprKind::Binary(BinaryOp::And, l, r) => {
                Pred::all(self.pred(scope, l), self.pred(scope, r))
            }
            ExprKind::Binary(BinaryOp::Or, l, r) => {
                Pred::any(self.pred(scope, l), self.pred(scope, r))
            }
            ExprKind::Binary(op, l, r) if op.is_comparison() => {
                let (lt, rt) = (self.infer(scope, l), self.infer(scope, r));
                let op = *op;
                // A field compared with a constant: read the slot, compare in place.
                if let Some((place, _)) = self.place(scope, l) {
                    if let Some(k) = self.expr(scope, r, Some(&lt)).konst {
                        return Pred::compare(place, op, k);
                    }
                }
                if let Some((place, _)) = self.place(scope, r) {
                    if let Some(k) = self.expr(scope, l, Some(&rt)).konst {
                        return Pred::compare(place, flip(op), k);
                    }
                }
                let a = self.expr(scope, l, Some(&rt)).eval;
                let b = self.expr(scope, r, Some(&lt)).eval;
                Pred::Other(Box::new(move |f| Ok(test(op, &a(f)?, &b(f)?))))
            }
            ExprKind::Binary(op @ (BinaryOp::In | BinaryOp::NotIn), l, r) => {
                let negate = *op == BinaryOp::NotIn;
                let lt = self.infer(scope, l);
                let list = self.expr(scope, r, Some(&Type::List(Box::new(lt))));
                if let (Some((place, _)), Some(Value::List(items))) =
                    (self.place(scope, l), &list.konst)
                {
                    let texts: Option<Vec<Arc<str>>> = items
                        .iter()
                        .map(|i| match i {
                            Value::Str(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect();
                    if let Some(texts) = texts {
                        return Pred::text_in(place, texts, negate);
                    }
                    let items = items.clone();
                    return Pred::Other(Box::new(move |f| {
                        let v = place.get(f);
                        Ok(items.iter().any(|i| equal(v, i)) != negate)
                    }));
                }
                let a = self.expr(scope, l, None).eval;
                let b = list.eval;
                Pred::Other(Box::new(move |f| {
                    let v = a(f)?;
                    let found = match b(f)? {
                        Value::List(items) => items.iter().any(|i| equal(&v, i)),
                        _ => false,
                    };
                    Ok(found != negate)
                }))
            }
            ExprKind::Binary(
                op @ (BinaryOp::StartsWith | BinaryOp::EndsWith | BinaryOp::Contains),
                l,
                r,
            ) => {
                let op = *op;
                let b = self.expr(scope, r, None);
                if let (Some((place, _)), Some(Value::Str(k))) = (self.place(scope, l), &b.konst) {
                    let k = k.clone();
                    return Pred::Other(Box::new(move |f| {
                        Ok(match place.get(f) {
                            Value::Str(s) => text_test(op, s, &k),
                            Value::List(items) => items.iter().any(|i| i.as_str() == Some(&k)),
                            _ => false,
                        })
                    }));
                }
                let a = self.expr(scope, l, None).eval;
                let b = b.eval;
                Pred::Other(Box::new(move |f| {
                    let (x, y) = (a(f)?, b(f)?);
                    Ok(match (&x, &y) {
                        (Value::Str(s), Value::Str(k)) => text_test(op, s, k),
                        (Value::List(items), v) => items.iter().any(|i| equal(i, v)),
                        _ => false,
                    })
                }))
            }
            ExprKind::Binary(BinaryOp::Matches, l, r) => {
                let a = self.expr(scope, l, None).eval;
                let b = self.expr(scope, r, None);
                if let Some(Value::Str(pattern)) = &b.konst {
                    if let Ok(re) = Regex::new(pattern) {
                        return Pred::Other(Box::new(move |f| {
                            Ok(a(f)?.as_str().is_some_and(|s| re.is_match(s)))
                        }));
                    }
                }
                let b = b.eval;
                Pred::Other(Box::new(move |f| {
                    let (x, y) = (a(f)?, b(f)?);
                    let re = f.lib.regex(y.as_str().unwrap_or(""))?;
                    Ok(x.as_str().is_some_and(|s| re.is_match(s)))
                }))
            }
            _ => {
                if let (ExprKind::Name(_) | ExprKind::Field(..), Some((place, _))) =
                    (&e.kind, self.place(scope, e))
                {
                    return Pred::Bool {
                        at: Access::of(place),
                        want: true,
                    };
                }
                let c = self.expr(scope, e, Some(&Type::Bool));
                if let Some(Value::Bool(b)) = c.konst {
                    return Pred::Const(b);
                }
                let eval = c.eval;
                Pred::Other(Box::new(move |f| match eval(f)? {
                    Value::Bool(b) => Ok(b),
                    other => fault(format!("expected a bool, found a {}", other.kind())),
                }))
            }
        }
    }

    /// The type of an expression, without compiling it.
    fn infer(&self, scope: &Scope, e: &Expr) -> Type {
        match &e.kind {
            ExprKind::Int(_) => Type::Int,
            ExprKind::Number(_) => Type::Number,
            ExprKind::Duration(_) => Type::Duration,
            ExprKind::Date(_) => Type::Date,
            ExprKind::DateTime(_) => Type::DateTime,
            ExprKind::Str(_) => Type::String,
            ExprKind::Bool(_) => Type::Bool,
            ExprKind::None => Type::None,
            ExprKind::Paren(inner) => self.infer(scope, inner),
            ExprKind::Name(n) => match self.place(scope, e) {
                Some((_, ty)) => ty,
                None => self.whole_record(scope, &n.text).unwrap_or(Type::Error),
            },
            ExprKind::Field(base, field) => match self.place(scope, e) {
                Some((_, ty)) => ty,
                None => {
                    let bt = self.infer(scope, base);
                    match bt.present() {
                        Type::Record(id) => {
                            let fty = self
                                .program
                                .record(*id)
                                .field(&field.text)
                                .map_or(Type::Error, |f| f.ty.clone());
                            if bt.is_optional() {
                                fty.optional()
                            } else {
                                fty
                            }
                        }
                        _ => Type::Error,
                    }
                }
            },
            ExprKind::Call(name, args) => {
                let tys: Vec<Type> = args.iter().map(|a| self.infer(scope, &a.value)).collect();
                match self.overload(&name.text, args, &tys) {
                    Some((sig, bound)) => sig.ret.substitute(&bound),
                    None => Type::Error,
                }
            }
            ExprKind::List(items) => {
                let mut elem = Type::Error;
                for item in items {
                    let t = self.infer(scope, item);
                    elem = match (&elem, &t) {
                        (Type::Error, _) | (Type::Number, Type::Float | Type::Decimal) => t,
                        _ => elem,
                    };
                }
                Type::List(Box::new(elem))
            }
            ExprKind::Unary(UnaryOp::Not, _) => Type::Bool,
            ExprKind::Unary(UnaryOp::Neg, inner) => self.infer(scope, inner),
            ExprKind::Binary(op, l, r) => {
                use BinaryOp::*;
                match op {
                    Coalesce => {
                        let a = self.infer(scope, l);
                        let b = self.infer(scope, r);
                        if b.is_optional() {
                            a
                        } else {
                            a.present().clone()
                        }
                    }
                    Add | Sub | Mul | Div | Rem => {
                        let a = self.infer(scope, l);
                        let b = self.infer(scope, r);
                        arith_type(*op, a.present(), b.present())
                    }
                    _ => Type::Bool,
                }
            }
            ExprKind::If(_, t, f) => {
                let a = self.infer(scope, t);
                if matches!(a, Type::None | Type::Number) {
                    let b = self.infer(scope, f);
                    if a == Type::None {
                        return b.optional();
                    }
                    return b;
                }
                a
            }
        }
    }

    fn whole_record(&self, scope: &Scope, name: &str) -> Option<Type> {
        let id = scope.event?;
        if name == stdlib::EVENT {
            return Some(Type::Record(id));
        }
        if name == stdlib::ENVELOPE {
            return self
                .program
                .types
                .get(stdlib::ENVELOPE_TYPE)
                .map(|id| Type::Record(*id));
        }
        None
    }

    /// The signature a call uses: the first whose parameters fit.
    fn overload(
        &self,
        name: &str,
        args: &[ast::Arg],
        tys: &[Type],
    ) -> Option<(&FnSig, HashMap<u32, Type>)> {
        let sigs = self.program.functions.get(name)?;
        // Literals bind last, as in the checker: `min(0.5, risk)` is `risk`'s type.
        let mut order: Vec<usize> = (0..tys.len()).collect();
        order.sort_by_key(|&i| args.get(i).is_some_and(|a| is_number_literal(&a.value)));
        if sigs.len() == 1 {
            let mut bound = HashMap::new();
            for &i in &order {
                if let (Some(p), Some(t)) = (sigs[0].params.get(i), tys.get(i)) {
                    bind(self.program, &p.ty, t, &mut bound);
                }
            }
            return Some((&sigs[0], bound));
        }
        let named = args.iter().any(|a| a.name.is_some());
        sigs.iter().find_map(|sig| {
            if named || sig.params.len() != tys.len() {
                return None;
            }
            let mut bound = HashMap::new();
            order
                .iter()
                .all(|&i| bind(self.program, &sig.params[i].ty, &tys[i], &mut bound))
                .then_some((sig, bound))
        })
    }

    /// Compiles an expression; `hint` is the type the context needs, which
    /// decides whether a literal such as `0.10` is a `float` or a `decimal`.
    fn expr(&self, scope: &Scope, e: &Expr, hint: Option<&Type>) -> Compiled {
        match &e.kind {
            ExprKind::Int(i) => match hint.map(Type::present) {
                Some(Type::Float) => konst(Value::Float(*i as f64), Type::Float),
                Some(Type::Decimal) => konst(Value::Decimal(Decimal::from(*i)), Type::Decimal),
                _ => konst(Value::Int(*i), Type::Int),
            },
            ExprKind::Number(text) => match hint.map(Type::present) {
                Some(Type::Decimal) => konst(
                    Value::Decimal(Decimal::from_str(text).unwrap_or_default()),
                    Type::Decimal,
                ),
                _ => konst(Value::Float(text.parse().unwrap_or(0.0)), Type::Float),
            },
            ExprKind::Duration(ms) => konst(Value::Duration(*ms), Type::Duration),
            ExprKind::Date(d) => konst(Value::Date(*d), Type::Date),
            ExprKind::DateTime(t) => konst(
                Value::DateTime(t.with_timezone(&chrono::Utc)),
                Type::DateTime,
            ),
            ExprKind::Bool(b) => konst(Value::Bool(*b), Type::Bool),
            ExprKind::None => konst(Value::None, Type::None),
            ExprKind::Str(template) => {
                if let Some(text) = template.as_plain() {
                    return konst(Value::str(&text), Type::String);
                }
                enum Part {
                    Text(String),
                    Expr(Eval),
                }
                let parts: Vec<Part> = template
                    .parts
                    .iter()
                    .map(|p| match p {
                        TemplatePart::Text(t) => Part::Text(t.clone()),
                        TemplatePart::Expr(x) => Part::Expr(self.expr(scope, x, None).eval),
                    })
                    .collect();
                Compiled {
                    eval: Box::new(move |f| {
                        use std::fmt::Write;
                        let mut out = String::new();
                        for part in &parts {
                            match part {
                                Part::Text(t) => out.push_str(t),
                                Part::Expr(x) => {
                                    let _ = write!(out, "{}", x(f)?);
                                }
                            }
                            super::eval::text_fits("text", out.len())?;
                        }
                        Ok(Value::Str(Arc::from(out)))
                    }),
                    ty: Type::String,
                    konst: None,
                }
            }
            ExprKind::Paren(inner) => self.expr(scope, inner, hint),
            ExprKind::Name(n) => {
                if let Some((place, ty)) = self.place(scope, e) {
                    return Compiled {
                        eval: Box::new(move |f| Ok(place.get(f).clone())),
                        ty,
                        konst: None,
                    };
                }
                let ty = self.whole_record(scope, &n.text).unwrap_or(Type::Error);
                let is_event = n.text == stdlib::EVENT;
                Compiled {
                    eval: Box::new(move |f| {
                        Ok(Value::Record(if is_event {
                            f.event.clone()
                        } else {
                            f.envelope.clone()
                        }))
                    }),
                    ty,
                    konst: None,
                }
            }
            ExprKind::Field(base, field) => {
                if let Some((place, ty)) = self.place(scope, e) {
                    return Compiled {
                        eval: Box::new(move |f| Ok(place.get(f).clone())),
                        ty,
                        konst: None,
                    };
                }
                let b = self.expr(scope, base, None);
                let optional = b.ty.is_optional();
                let (slot, fty) = match b.ty.present() {
                    Type::Record(id) => {
                        let rec = self.program.record(*id);
                        let slot = rec.fields.iter().position(|f| f.name == field.text);
                        (
                            slot.unwrap_or(0),
                            slot.map_or(Type::Error, |s| rec.fields[s].ty.clone()),
                        )
                    }
                    _ => (0, Type::Error),
                };
                let base = b.eval;
                Compiled {
                    eval: Box::new(move |f| match base(f)? {
                        Value::Record(r) => Ok(r.slots.get(slot).cloned().unwrap_or(Value::None)),
                        _ => Ok(Value::None),
                    }),
                    ty: if optional { fty.optional() } else { fty },
                    konst: None,
                }
            }
            ExprKind::Call(name, args) => self.call(scope, &name.text, args),
            ExprKind::List(items) => {
                let elem_hint = match hint.map(Type::present) {
                    Some(Type::List(t)) => Some((**t).clone()),
                    _ => None,
                };
                let elem_hint = elem_hint.or_else(|| {
                    let inferred = self.infer(scope, e);
                    match inferred {
                        Type::List(t) if *t != Type::Number => Some(*t),
                        _ => None,
                    }
                });
                let compiled: Vec<Compiled> = items
                    .iter()
                    .map(|i| self.expr(scope, i, elem_hint.as_ref()))
                    .collect();
                let ty = Type::List(Box::new(
                    compiled.first().map_or(Type::Error, |c| c.ty.clone()),
                ));
                if compiled.iter().all(|c| c.konst.is_some()) {
                    let values: Vec<Value> = compiled.into_iter().filter_map(|c| c.konst).collect();
                    return konst(Value::List(Arc::from(values)), ty);
                }
                let evals: Vec<Eval> = compiled.into_iter().map(|c| c.eval).collect();
                Compiled {
                    eval: Box::new(move |f| {
                        let values = evals.iter().map(|x| x(f)).collect::<Result<Vec<_>, _>>()?;
                        Ok(Value::List(Arc::from(values)))
                    }),
                    ty,
                    konst: None,
                }
            }
            ExprKind::Unary(UnaryOp::Neg, inner) => {
                let c = self.expr(scope, inner, hint);
                let negate = |v: Value| -> Result<Value, Fault> {
                    match v {
                        Value::Int(i) => i
                            .checked_neg()
                            .map(Value::Int)
                            .ok_or_else(|| Fault::new("arithmetic overflow")),
                        Value::Float(x) => Ok(Value::Float(-x)),
                        Value::Decimal(d) => Ok(Value::Decimal(-d)),
                        Value::Duration(ms) => Ok(Value::Duration(-ms)),
                        other => fault(format!("cannot negate a {}", other.kind())),
                    }
                };
                if let Some(k) = c.konst.clone() {
                    if let Ok(v) = negate(k) {
                        return konst(v, c.ty);
                    }
                }
                let inner = c.eval;
                Compiled {
                    eval: Box::new(move |f| negate(inner(f)?)),
                    ty: c.ty,
                    konst: None,
                }
            }
            ExprKind::Binary(BinaryOp::Coalesce, l, r) => {
                let a = self.expr(scope, l, hint);
                let lt = a.ty.present().clone();
                let b = self.expr(scope, r, Some(&lt));
                let ty = if b.ty.is_optional() { a.ty } else { lt };
                let (a, b) = (a.eval, b.eval);
                Compiled {
                    eval: Box::new(move |f| match a(f)? {
                        Value::None => b(f),
                        v => Ok(v),
                    }),
                    ty,
                    konst: None,
                }
            }
            ExprKind::Binary(
                op
                @ (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem),
                l,
                r,
            ) => {
                let op = *op;
                let (lt, rt) = (self.infer(scope, l), self.infer(scope, r));
                // A literal takes the type of the other side, or of the context.
                let lh = if matches!(rt, Type::Number | Type::Int) {
                    hint.cloned()
                } else {
                    Some(rt.clone())
                };
                let rh = if matches!(lt, Type::Number | Type::Int) {
                    hint.cloned()
                } else {
                    Some(lt.clone())
                };
                let a = self.expr(scope, l, lh.as_ref().filter(|t| t.is_numeric()));
                let b = self.expr(scope, r, rh.as_ref().filter(|t| t.is_numeric()));
                let ty = arith_type(op, a.ty.present(), b.ty.present());
                if let (Some(x), Some(y)) = (&a.konst, &b.konst) {
                    if let Ok(v) = arith(op, x, y) {
                        return konst(v, ty);
                    }
                }
                let (a, b) = (a.eval, b.eval);
                Compiled {
                    eval: Box::new(move |f| arith(op, &a(f)?, &b(f)?)),
                    ty,
                    konst: None,
                }
            }
            ExprKind::Binary(..) | ExprKind::Unary(UnaryOp::Not, _) => {
                // Fold a condition made of constants.
                let c = self.cond(scope, e);
                let folded = Self::is_constant(e).then(|| {
                    let empty = Arc::new(Record {
                        shape: 0,
                        slots: Box::new([]),
                    });
                    let lib = Library::empty();
                    let frame = Frame {
                        event: &empty,
                        envelope: &empty,
                        locals: &[],
                        now: chrono::DateTime::<chrono::Utc>::default(),
                        lib: &lib,
                    };
                    c(&frame).ok()
                });
                if let Some(Some(b)) = folded {
                    return konst(Value::Bool(b), Type::Bool);
                }
                Compiled {
                    eval: Box::new(move |f| Ok(Value::Bool(c(f)?))),
                    ty: Type::Bool,
                    konst: None,
                }
            }
            ExprKind::If(c, t, f) => {
                let cond = self.cond(scope, c);
                let hint_t = hint.cloned().or_else(|| {
                    let t = self.infer(scope, e);
                    (t != Type::Number).then_some(t)
                });
                let a = self.expr(scope, t, hint_t.as_ref());
                let b = self.expr(scope, f, hint_t.as_ref());
                let ty = if a.ty == Type::None {
                    b.ty.clone().optional()
                } else {
                    a.ty.clone()
                };
                let (a, b) = (a.eval, b.eval);
                Compiled {
                    eval: Box::new(move |fr| if cond(fr)? { a(fr) } else { b(fr) }),
                    ty,
                    konst: None,
                }
            }
        }
    }

    /// Whether an expression reads nothing from the event, locals or clock.
    fn is_constant(e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Int(_)
            | ExprKind::Number(_)
            | ExprKind::Duration(_)
            | ExprKind::Date(_)
            | ExprKind::DateTime(_)
            | ExprKind::Bool(_)
            | ExprKind::None => true,
            ExprKind::Str(t) => t.parts.iter().all(|p| match p {
                TemplatePart::Text(_) => true,
                TemplatePart::Expr(x) => Self::is_constant(x),
            }),
            ExprKind::Paren(x) | ExprKind::Unary(_, x) => Self::is_constant(x),
            ExprKind::Binary(_, l, r) => Self::is_constant(l) && Self::is_constant(r),
            ExprKind::List(items) => items.iter().all(Self::is_constant),
            ExprKind::If(c, t, f) => {
                Self::is_constant(c) && Self::is_constant(t) && Self::is_constant(f)
            }
            ExprKind::Name(_) | ExprKind::Field(..) | ExprKind::Call(..) => false,
        }
    }

    fn call(&self, scope: &Scope, name: &str, args: &[ast::Arg]) -> Compiled {
        let tys: Vec<Type> = args.iter().map(|a| self.infer(scope, &a.value)).collect();
        let Some((sig, bound)) = self.overload(name, args, &tys) else {
            let name = name.to_string();
            return Compiled {
                eval: Box::new(move |_| fault(format!("no function `{name}`"))),
                ty: Type::Error,
                konst: None,
            };
        };
        let ret = sig.ret.substitute(&bound);
        let ordered = order_args(&sig.params, args);
        let evals: Vec<Eval> = sig
            .params
            .iter()
            .zip(ordered)
            .map(|(p, a)| match a {
                Some(a) => {
                    let ty = p.ty.substitute(&bound);
                    let hint = (ty != Type::Error).then_some(ty);
                    self.expr(scope, a, hint.as_ref()).eval
                }
                None => Box::new(|_: &Frame| Ok(Value::None)) as Eval,
            })
            .collect();
        let eval: Eval = match sig.kind {
            FnKind::Builtin => match builtins::lookup(name, evals.len()) {
                Some(imp) => Box::new(move |f| {
                    let values = evals.iter().map(|x| x(f)).collect::<Result<Vec<_>, _>>()?;
                    imp(&values, f)
                }),
                None => {
                    let name = name.to_string();
                    Box::new(move |_| fault(format!("the built-in `{name}` is not implemented")))
                }
            },
            FnKind::Steward | FnKind::Rhai => {
                let index = self.fn_index.get(name).copied().unwrap_or(usize::MAX);
                let name = name.to_string();
                Box::new(move |f| {
                    let values = evals.iter().map(|x| x(f)).collect::<Result<Vec<_>, _>>()?;
                    match f.lib.functions.get(index) {
                        Some(FnImpl::Steward { body, .. }) => body(&Frame {
                            event: f.event,
                            envelope: f.envelope,
                            locals: &values,
                            now: f.now,
                            lib: f.lib,
                        }),
                        Some(FnImpl::Rhai(r)) => r.call(&f.lib.rhai, &f.lib.shapes, &values),
                        None => fault(format!("no function `{name}`")),
                    }
                })
            }
        };
        Compiled {
            eval,
            ty: ret,
            konst: None,
        }
    }
}

/// Splits `a and b and c` into its parts.
fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &strip(e).kind {
        ExprKind::Binary(BinaryOp::And, l, r) => {
            conjuncts(l, out);
            conjuncts(r, out);
        }
        _ => out.push(e),
    }
}

fn strip(e: &Expr) -> &Expr {
    match &e.kind {
        ExprKind::Paren(inner) => strip(inner),
        _ => e,
    }
}

fn str_const(text: &str) -> Eval {
    let v = Value::str(text);
    Box::new(move |_| Ok(v.clone()))
}

/// A literal's type once its context is gone (`let x = 0.5` is a float).
/// Step ids: a statement's id is a digest of its canonical text (see
/// `format::step_text`) and how many statements of the same text came
/// before it in the rule. Adding statements, comments or blank lines
/// elsewhere, or renaming or moving the file, leaves it unchanged, so a
/// stored timer or approval finds its statement again.
struct Steps<'a> {
    text: &'a str,
    seen: HashMap<String, u32>,
}

impl<'a> Steps<'a> {
    fn new(text: &'a str) -> Steps<'a> {
        Steps {
            text,
            seen: HashMap::new(),
        }
    }

    fn id(&mut self, stmt: &ast::Stmt) -> u32 {
        use sha2::{Digest, Sha256};
        let canonical = crate::syntax::format::step_text(stmt, self.text);
        let n = self.seen.entry(canonical.clone()).or_insert(0);
        *n += 1;
        let digest = Sha256::new()
            .chain_update(canonical.as_bytes())
            .chain_update(n.to_be_bytes())
            .finalize();
        let mut id = [0u8; 4];
        id.copy_from_slice(&digest[..4]);
        u32::from_be_bytes(id)
    }
}

/// `1`, `0.5`, `-2`, `(3)`: a literal whose kind its use decides.
fn is_number_literal(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Int(_) | ExprKind::Number(_) => true,
        ExprKind::Unary(ast::UnaryOp::Neg, inner) | ExprKind::Paren(inner) => {
            is_number_literal(inner)
        }
        _ => false,
    }
}

fn settle(ty: Type) -> Type {
    match ty {
        Type::Number => Type::Float,
        other => other,
    }
}

fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Le => BinaryOp::Ge,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Ge => BinaryOp::Le,
        other => other,
    }
}

fn text_test(op: BinaryOp, s: &str, k: &str) -> bool {
    match op {
        BinaryOp::StartsWith => s.starts_with(k),
        BinaryOp::EndsWith => s.ends_with(k),
        _ => s.contains(k),
    }
}

/// The type of `a op b` for arithmetic.
fn arith_type(op: BinaryOp, a: &Type, b: &Type) -> Type {
    use BinaryOp::*;
    match (op, a, b) {
        (_, Type::Int, Type::Int) => Type::Int,
        (_, Type::Decimal, _) | (_, _, Type::Decimal) if a.is_numeric() && b.is_numeric() => {
            Type::Decimal
        }
        (_, Type::Float, _) | (_, _, Type::Float) if a.is_numeric() && b.is_numeric() => {
            Type::Float
        }
        (_, Type::Number | Type::Int, Type::Number | Type::Int) => Type::Number,
        (Add, Type::String | Type::Union(_), _) => Type::String,
        (Add | Sub, Type::DateTime, Type::Duration) | (Add, Type::Duration, Type::DateTime) => {
            Type::DateTime
        }
        (Add | Sub, Type::Date, Type::Duration) | (Add, Type::Duration, Type::Date) => Type::Date,
        (Sub, Type::DateTime, Type::DateTime) | (Sub, Type::Date, Type::Date) => Type::Duration,
        (Div, Type::Duration, Type::Duration) => Type::Float,
        (_, Type::Duration, _) | (_, _, Type::Duration) => Type::Duration,
        (Add, Type::List(_), _) => a.clone(),
        _ => Type::Error,
    }
}

fn bind(program: &Program, param: &Type, arg: &Type, bound: &mut HashMap<u32, Type>) -> bool {
    match param {
        Type::Var(v) => match bound.get(v) {
            Some(b) => program.assignable(arg, None, b) || program.assignable(b, None, arg),
            None => {
                bound.insert(*v, settle(arg.clone()));
                true
            }
        },
        Type::List(p) => match arg {
            Type::List(a) => bind(program, p, a, bound),
            _ => false,
        },
        other => {
            program.assignable(arg, None, other)
                || (*arg == Type::String && matches!(other, Type::Union(_)))
        }
    }
}

/// Arguments in parameter order: positional first, then by name.
fn order_args<'a>(
    params: &[crate::check::types::ParamDef],
    args: &'a [ast::Arg],
) -> Vec<Option<&'a Expr>> {
    let mut out: Vec<Option<&Expr>> = vec![None; params.len()];
    let mut next = 0;
    for arg in args {
        match &arg.name {
            None => {
                if next < out.len() {
                    out[next] = Some(&arg.value);
                }
                next += 1;
            }
            Some(n) => {
                if let Some(i) = params.iter().position(|p| p.name == n.text) {
                    out[i] = Some(&arg.value);
                }
            }
        }
    }
    out
}
