//! From the checker's typed tree ([`crate::hir`]) to compiled rules.
//!
//! Lowering decides nothing about types: every expression arrives with its
//! type, its names resolved to [`Place`]s, its literals' kinds decided and
//! its calls bound. It turns expressions into closures over a [`Frame`],
//! folds constants, compiles constant regular expressions once, gives the
//! comparisons of a field with a constant their own closure that reads the
//! slot in place ([`Pred`]), and flattens statements into [`Op`]s; the
//! bodies of timers and approvals become separate blocks, so a continuation
//! is just (rule, block, captured values).
//!
//! It runs only on programs without errors. An error node it meets anyway
//! becomes a fault, never a guess.

use std::sync::Arc;

use regex::Regex;
use rust_decimal::Decimal;

use super::builtins;
use super::decode::{Shape, Shapes};
use super::eval::{arith, equal, fault, test, Cond, Eval, Fault, Frame};
use super::history::History;
use super::index::{IndexKey, RuleIndex};
use super::pred::{Access, Pred};
use super::program::*;
use super::rhai::{self as rhai_fns, RhaiFn};
use super::value::{Record, Value};
use crate::check::types::Type;
use crate::check::Analysis;
use crate::diag::{Code, Diagnostic, FileId, Span};
use crate::hir::{self, Callee, ExprKind, Lit, Part, Root};
use crate::syntax::ast::BinaryOp;

/// Compiled rules, ready to run.
pub struct Ruleset {
    /// A digest of what runs: part of every idempotency key.
    pub version: String,
    pub rules: Vec<Rule>,
    pub lib: Library,
    pub(crate) index: RuleIndex,
    /// For each event type, the fields that cancel timers (`unless E on k`).
    pub(crate) cancel_fields: foldhash::HashMap<Arc<str>, Vec<(Arc<str>, usize)>>,
    /// Each rule's rank in the order rules run for one event, when some have
    /// a `priority` (`None`: all in source order).
    pub(crate) order: Option<Vec<u32>>,
    /// For each event type, the rules that watch for its absence (`when no`)
    /// and the slot of the field they watch: such an event starts their
    /// quiet period again.
    pub(crate) watchers: foldhash::HashMap<Arc<str>, Vec<(usize, usize)>>,
    /// What the rules remember and count, by event type.
    pub(crate) history: History,
    /// The payload of schedule-triggered rules.
    pub(crate) empty: Arc<Record>,
    /// The webhook actions, by name: where each is delivered, with which
    /// headers.
    pub webhooks: std::collections::HashMap<Arc<str>, crate::check::Webhook>,
}

impl Ruleset {
    pub fn shapes(&self) -> &Shapes {
        &self.lib.shapes
    }

    /// Rule `r`. The engine's indices (the rule index's, a context's, a
    /// continuation's) name only rules the ruleset has; another is a fault,
    /// not a panic.
    #[inline]
    pub(crate) fn rule(&self, r: usize) -> Result<&Rule, Fault> {
        match self.rules.get(r) {
            Some(rule) => Ok(rule),
            None => Err(no_such("rule", r)),
        }
    }

    /// Whether a rule runs on a schedule (`cron`, `every`): then the engine
    /// must know the tenants to fire it for.
    pub fn has_schedules(&self) -> bool {
        !self.index.schedules.is_empty()
    }
}

/// Options for [`compile_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Wrap every expression so that a value of another type than the
    /// checker gave it is a fault naming both: the test that lowering and
    /// the checker agree. Slower; for tests.
    pub check_types: bool,
}

/// Compiles a checked program. Refuses a program with errors (they are
/// returned).
pub fn compile(analysis: &Analysis) -> Result<Ruleset, Vec<Diagnostic>> {
    compile_with(analysis, Options::default())
}

/// [`compile`] with [`Options`].
pub fn compile_with(analysis: &Analysis, options: Options) -> Result<Ruleset, Vec<Diagnostic>> {
    let errors: Vec<Diagnostic> = analysis.errors().cloned().collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let shapes = Shapes::new(&analysis.program);
    let mut cx = Lower {
        analysis,
        options,
        diags: Vec::new(),
    };

    let mut functions = Vec::new();
    for function in &analysis.hir.functions {
        let Some(function) = function else {
            functions.push(FnImpl::Missing {
                name: String::new(),
            });
            continue;
        };
        functions.push(match &function.body {
            hir::FnBody::Expr(body) => FnImpl::Steward {
                body: cx.expr(body).eval,
            },
            hir::FnBody::Rhai(script) => FnImpl::Rhai(RhaiFn {
                name: function.name.clone(),
                params: function.params.iter().map(|(n, _)| n.clone()).collect(),
                ret: Shape::of(&function.ret),
                script: script.clone(),
            }),
            hir::FnBody::Unavailable { file, span, path } => {
                cx.diags.push(
                    Diagnostic::new(
                        Code::RhaiSyntax,
                        *file,
                        *span,
                        format!("the Rhai script `{path}` is not available to run"),
                    )
                    .with_help("run the rules from their files, so the script can be read"),
                );
                FnImpl::Missing {
                    name: function.name.clone(),
                }
            }
        });
    }

    // A rule whose trigger the checker could not make out was reported as an
    // error, so a program that gets here has none.
    let rules: Vec<Rule> = analysis
        .hir
        .rules
        .iter()
        .filter_map(|r| cx.rule(r))
        .collect();
    if !cx.diags.is_empty() {
        return Err(cx.diags);
    }

    let cancel_fields = cancel_fields(&rules, &shapes);
    let index = RuleIndex::build(&rules);
    let order = priority_order(&rules);
    let history = History::build(&analysis.hir, &shapes);
    let mut watchers: foldhash::HashMap<Arc<str>, Vec<(usize, usize)>> = Default::default();
    for (i, rule) in rules.iter().enumerate() {
        if let Some(q) = &rule.quiet {
            let slot = shapes
                .events
                .get(&*q.event)
                .and_then(|id| shapes.record(*id).slot(&q.field));
            if let Some(slot) = slot {
                watchers.entry(q.event.clone()).or_default().push((i, slot));
            }
        }
    }
    let empty = Arc::new(Record {
        shape: shapes.envelope,
        slots: Box::new([]),
    });
    Ok(Ruleset {
        version: version_of(analysis),
        rules,
        lib: Library::new(functions, rhai_fns::sandbox(), shapes),
        index,
        cancel_fields,
        order,
        watchers,
        history,
        empty,
        webhooks: analysis
            .program
            .actions
            .values()
            .filter_map(|a| Some((Arc::from(a.name.as_str()), a.webhook.clone()?)))
            .collect(),
    })
}

/// For each event type, the fields whose values cancel pending work: a
/// timer's or a schedule statement's `unless E on k`, a watch's `until E on
/// k`.
fn cancel_fields(
    rules: &[Rule],
    shapes: &Shapes,
) -> foldhash::HashMap<Arc<str>, Vec<(Arc<str>, usize)>> {
    let mut pairs: Vec<(Arc<str>, Arc<str>)> = Vec::new();
    for rule in rules {
        for block in &rule.blocks {
            visit_ops(block, &mut |op| {
                if let Op::Timer(t) = op {
                    pairs.extend(t.unless.iter().map(|(e, f, _)| (e.clone(), f.clone())));
                }
            });
        }
        let repeats = rule.repeats.iter().flat_map(|r| &r.unless);
        pairs.extend(repeats.map(|(e, f, _)| (e.clone(), f.clone())));
        pairs.extend(rule.quiet.as_ref().and_then(|q| q.until.clone()));
    }
    let mut fields: foldhash::HashMap<Arc<str>, Vec<(Arc<str>, usize)>> = Default::default();
    for (event, field) in pairs {
        let slot = shapes
            .events
            .get(&*event)
            .and_then(|id| shapes.record(*id).slot(&field));
        if let Some(slot) = slot {
            let list = fields.entry(event).or_default();
            if !list.iter().any(|(f, _)| *f == field) {
                list.push((field, slot));
            }
        }
    }
    fields
}

/// The rank of each rule when some have a `priority`: those first, lowest
/// first, ties by name; then the others in source order.
fn priority_order(rules: &[Rule]) -> Option<Vec<u32>> {
    if rules.iter().all(|r| r.priority.is_none()) {
        return None;
    }
    let mut by_rank: Vec<(usize, &Rule)> = rules.iter().enumerate().collect();
    by_rank.sort_by(|&(a, ra), &(b, rb)| match (ra.priority, rb.priority) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| ra.name.cmp(&rb.name)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(&b),
    });
    let mut rank = vec![0u32; rules.len()];
    for (position, &(r, _)) in by_rank.iter().enumerate() {
        if let Some(slot) = rank.get_mut(r) {
            *slot = u32::try_from(position).unwrap_or(u32::MAX);
        }
    }
    Some(rank)
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

/// A lowered expression and, when it is a constant, its value.
struct Compiled {
    eval: Eval,
    konst: Option<Value>,
}

fn konst(value: Value) -> Compiled {
    let v = value.clone();
    Compiled {
        eval: Box::new(move |_| Ok(v.clone())),
        konst: Some(value),
    }
}

fn dynamic(eval: Eval) -> Compiled {
    Compiled { eval, konst: None }
}

struct Lower<'a> {
    analysis: &'a Analysis,
    options: Options,
    diags: Vec<Diagnostic>,
}

impl Lower<'_> {
    fn text(&self, file: FileId, span: Span) -> String {
        self.analysis
            .sources
            .text(file)
            .get(span.range())
            .unwrap_or("")
            .to_string()
    }

    fn rule(&mut self, r: &hir::Rule) -> Option<Rule> {
        let trigger = match &r.trigger {
            hir::Trigger::Event { event_type, record } => RuleTrigger::Event {
                event_type: event_type.clone(),
                record: *record,
            },
            hir::Trigger::Cron { schedule, zone } => RuleTrigger::Cron {
                schedule: schedule.clone(),
                zone: *zone,
            },
            hir::Trigger::Interval(ms) => RuleTrigger::Interval((*ms).max(1)),
            // Filed under the event that starts the watch.
            hir::Trigger::Quiet(q) => RuleTrigger::Event {
                event_type: q.start.clone(),
                record: q.start_record,
            },
            hir::Trigger::Error => return None,
        };
        if let hir::Trigger::Quiet(q) = &r.trigger {
            return self.quiet_rule(r, q, trigger);
        }
        let mut conditions = Vec::new();
        let mut test = Pred::Const(true);
        let mut after_count = Pred::Const(true);
        let mut index_key = None;
        // With a `count` clause, the conditions before it decide which
        // events are counted (and only they can file the rule in the
        // index); the ones after it, whether the rule goes on.
        let counted = r.count.as_ref().map_or(r.conditions.len(), |(_, n)| *n);
        for (i, part) in r.conditions.iter().enumerate() {
            if index_key.is_none() && i < counted {
                index_key = self.index_key(part);
            }
            let mut reads = Vec::new();
            self.reads(part, &mut reads);
            conditions.push(Condition {
                text: self.text(part.at.file, part.at.span),
                cond: self.cond(part),
                reads,
            });
            let into = if i < counted {
                &mut test
            } else {
                &mut after_count
            };
            *into = match std::mem::replace(into, Pred::Const(true)) {
                Pred::Const(true) => self.pred(part),
                before => Pred::all(before, self.pred(part)),
            };
        }
        let window = |cx: &Self, t: &hir::Window| Throttle {
            count: cx.expr(&t.count).eval,
            per: cx.expr(&t.per).eval,
            by: t.by.as_ref().map(|b| cx.expr(b).eval),
        };
        let throttle = r.throttle.as_ref().map(|t| window(self, t));
        let count = r.count.as_ref().map(|(t, _)| {
            let rest = match after_count {
                Pred::Const(true) => None,
                rest => Some(rest.into_cond()),
            };
            (window(self, t), rest)
        });
        let mut rule = Rule {
            name: r.name.clone(),
            title: r.title.clone(),
            trigger,
            conditions,
            test: test.into_cond(),
            throttle,
            count,
            blocks: vec![Vec::new()],
            block_steps: vec![BlockRef {
                step: 0,
                branch: Branch::Body,
            }],
            index_key,
            quiet: None,
            repeats: Vec::new(),
            priority: r.priority,
        };
        let body = self.block(&mut rule, &r.body);
        if let Some(first) = rule.blocks.first_mut() {
            *first = body;
        }
        Some(rule)
    }

    /// A rule on what did not happen: its start event arms the watch, and
    /// the block that runs when the quiet period passes holds its
    /// conditions and its body (`quiet_since` is its local 0).
    fn quiet_rule(&mut self, r: &hir::Rule, q: &hir::Quiet, trigger: RuleTrigger) -> Option<Rule> {
        let shapes = &self.analysis.program;
        let start_slot = shapes
            .record(q.start_record)
            .fields
            .iter()
            .position(|f| *f.name == *q.start_field)?;
        let mut test = Pred::Const(true);
        for part in &r.conditions {
            test = match test {
                Pred::Const(true) => self.pred(part),
                test => Pred::all(test, self.pred(part)),
            };
        }
        let mut rule = Rule {
            name: r.name.clone(),
            title: r.title.clone(),
            trigger,
            conditions: Vec::new(),
            test: Pred::Const(true).into_cond(),
            throttle: None,
            count: None,
            blocks: vec![Vec::new()],
            block_steps: vec![BlockRef {
                step: 0,
                branch: Branch::Body,
            }],
            index_key: None,
            quiet: None,
            repeats: Vec::new(),
            priority: None,
        };
        let body = self.block(&mut rule, &r.body);
        let block = rule.blocks.len();
        rule.blocks.push(vec![Op::If {
            branches: vec![(test.into_cond(), body)],
            otherwise: Vec::new(),
        }]);
        rule.block_steps.push(BlockRef {
            step: 0,
            branch: Branch::Do,
        });
        rule.quiet = Some(Quiet {
            period: self.expr(&q.period).eval,
            event: q.event.clone(),
            field: q.field.clone(),
            start_slot,
            until: q.until.clone(),
            block,
        });
        Some(rule)
    }

    /// `field == "const"` or `field in ["a", "b"]` on a field that is always
    /// present: the rule index can find the rule by the field's value.
    fn index_key(&self, e: &hir::Expr) -> Option<(Place, String, Vec<IndexKey>)> {
        let ExprKind::Binary(op, l, r) = &e.kind else {
            return None;
        };
        let (place_side, other) = match op.op {
            BinaryOp::Eq if matches!(l.kind, ExprKind::Read(_)) => (l, r),
            BinaryOp::Eq => (r, l),
            BinaryOp::In => (l, r),
            _ => return None,
        };
        let ExprKind::Read(place) = &place_side.kind else {
            return None;
        };
        if place_side.ty.is_optional() || !matches!(place.root, Root::Event) {
            return None;
        }
        let value = self.expr(other).konst?;
        let keys: Option<Vec<IndexKey>> = match (op.op, &value) {
            (BinaryOp::In, Value::List(items)) => items.iter().map(IndexKey::of).collect(),
            (BinaryOp::Eq, v) => IndexKey::of(v).map(|k| vec![k]),
            _ => None,
        };
        let text = self.text(place_side.at.file, place_side.at.span);
        Some((place.clone(), text, keys?))
    }

    /// `unless E on k` of a timer or a schedule: the event type, the field,
    /// and this event's value of it.
    fn unless(&self, unless: &[hir::Unless]) -> Vec<(Arc<str>, Arc<str>, Eval)> {
        unless
            .iter()
            .map(|u| (u.event.clone(), u.field.clone(), self.expr(&u.value).eval))
            .collect()
    }

    /// The block of a timer or a schedule statement, named by its step.
    fn do_block(&mut self, rule: &mut Rule, body: &[hir::Stmt], step: u32) -> usize {
        let owner = BlockRef {
            step,
            branch: Branch::Do,
        };
        self.sub_block(rule, body, owner)
    }

    /// The fields an expression reads, as written, for `explain`.
    fn reads(&self, e: &hir::Expr, out: &mut Vec<(String, Place)>) {
        if let ExprKind::Read(place) = &e.kind {
            let text = match place.root {
                Root::Recall(i) => match self.analysis.hir.recalls.get(i) {
                    Some(recall) => History::describe(recall),
                    None => self.text(e.at.file, e.at.span),
                },
                _ => self.text(e.at.file, e.at.span),
            };
            if !out.iter().any(|(t, _)| *t == text) {
                out.push((text, place.clone()));
            }
            return;
        }
        match &e.kind {
            ExprKind::Field(x, _) | ExprKind::Neg(x) | ExprKind::Not(x) | ExprKind::Widen(x) => {
                self.reads(x, out)
            }
            ExprKind::Call(_, items) | ExprKind::List(items) => {
                items.iter().for_each(|i| self.reads(i, out))
            }
            ExprKind::Binary(_, l, r) => {
                self.reads(l, out);
                self.reads(r, out);
            }
            ExprKind::If(c, t, f) => {
                self.reads(c, out);
                self.reads(t, out);
                self.reads(f, out);
            }
            ExprKind::Template(parts) => {
                for part in parts {
                    if let Part::Expr(x) = part {
                        self.reads(x, out);
                    }
                }
            }
            ExprKind::Lit(_) | ExprKind::Read(_) | ExprKind::Whole(_) | ExprKind::Error => {}
        }
    }

    fn block(&mut self, rule: &mut Rule, stmts: &[hir::Stmt]) -> Vec<Op> {
        let mut ops = Vec::new();
        for stmt in stmts {
            let op = match stmt {
                hir::Stmt::Let { value, .. } => Op::Let(self.expr(value).eval),
                hir::Stmt::If {
                    branches,
                    otherwise,
                } => {
                    let mut lowered = Vec::new();
                    for (cond, body) in branches {
                        let c = self.cond(cond);
                        lowered.push((c, self.block(rule, body)));
                    }
                    Op::If {
                        branches: lowered,
                        otherwise: self.block(rule, otherwise),
                    }
                }
                hir::Stmt::Act(act) => Op::Act(Act {
                    pos: act.step,
                    action: act.action.clone(),
                    args: act
                        .args
                        .iter()
                        .map(|(name, e)| (name.clone(), self.expr(e).eval))
                        .collect(),
                    emit: act.emit.clone(),
                }),
                hir::Stmt::Timer {
                    step,
                    kind,
                    when,
                    unless,
                    skip_late,
                    body,
                } => {
                    let when = self.expr(when).eval;
                    let unless = self.unless(unless);
                    let block = self.do_block(rule, body, *step);
                    Op::Timer(TimerOp {
                        pos: *step,
                        kind: *kind,
                        when,
                        unless,
                        skip_late: *skip_late,
                        block,
                    })
                }
                hir::Stmt::Stop => Op::Stop,
                // A block action's call: a scope of its own, which is what
                // an `if` without conditions runs.
                hir::Stmt::Inline { body, .. } => Op::If {
                    branches: Vec::new(),
                    otherwise: self.block(rule, body),
                },
                hir::Stmt::Every {
                    step,
                    schedule,
                    zone,
                    unless,
                    body,
                } => {
                    let zone = match zone {
                        hir::Zone::Fixed(tz) => RepeatZone::Fixed(*tz),
                        hir::Zone::Of(e) => RepeatZone::Of(self.expr(e).eval),
                    };
                    let unless = self.unless(unless);
                    let block = self.do_block(rule, body, *step);
                    rule.repeats.push(Repeat {
                        pos: *step,
                        schedule: schedule.clone(),
                        zone,
                        unless,
                        block,
                    });
                    Op::Every(rule.repeats.len() - 1)
                }
                hir::Stmt::Approval {
                    step,
                    role,
                    within,
                    body,
                    otherwise,
                } => {
                    let within = self.expr(within).eval;
                    let owner = |branch| BlockRef {
                        step: *step,
                        branch,
                    };
                    let block = self.sub_block(rule, body, owner(Branch::Do));
                    let otherwise = otherwise
                        .as_ref()
                        .map(|b| self.sub_block(rule, b, owner(Branch::Else)));
                    Op::Approval(ApprovalOp {
                        pos: *step,
                        role: role.clone(),
                        within,
                        block,
                        otherwise,
                    })
                }
            };
            ops.push(op);
        }
        ops
    }

    fn sub_block(&mut self, rule: &mut Rule, stmts: &[hir::Stmt], owner: BlockRef) -> usize {
        let index = rule.blocks.len();
        rule.blocks.push(Vec::new());
        rule.block_steps.push(owner);
        let ops = self.block(rule, stmts);
        if let Some(block) = rule.blocks.get_mut(index) {
            *block = ops;
        }
        index
    }

    /// Lowers a condition.
    fn cond(&self, e: &hir::Expr) -> Cond {
        self.pred(e).into_cond()
    }

    /// Lowers a condition to a [`Pred`], with inline leaves for the common
    /// shapes (a field against a constant, a bool field).
    fn pred(&self, e: &hir::Expr) -> Pred {
        let ExprKind::Binary(op, l, r) = &e.kind else {
            return match &e.kind {
                ExprKind::Lit(Lit::Bool(b)) => Pred::Const(*b),
                ExprKind::Not(inner) => !self.pred(inner),
                ExprKind::Read(place) => Pred::Bool {
                    at: Access::of(place.clone()),
                    want: true,
                },
                _ => self.value_pred(e),
            };
        };
        let op = op.op;
        match op {
            BinaryOp::And => Pred::all(self.pred(l), self.pred(r)),
            BinaryOp::Or => Pred::any(self.pred(l), self.pred(r)),
            _ if op.is_comparison() => {
                // A field compared with a constant: read the slot, compare in place.
                if let ExprKind::Read(place) = &l.kind {
                    if let Some(k) = self.expr(r).konst {
                        return Pred::compare(place.clone(), op, k);
                    }
                }
                if let ExprKind::Read(place) = &r.kind {
                    if let Some(k) = self.expr(l).konst {
                        return Pred::compare(place.clone(), flip(op), k);
                    }
                }
                let a = self.expr(l).eval;
                let b = self.expr(r).eval;
                Pred::Other(Box::new(move |f| Ok(test(op, &a(f)?, &b(f)?))))
            }
            BinaryOp::In | BinaryOp::NotIn => {
                let negate = op == BinaryOp::NotIn;
                let list = self.expr(r);
                if let (ExprKind::Read(place), Some(Value::List(items))) = (&l.kind, &list.konst) {
                    let place = place.clone();
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
                let a = self.expr(l).eval;
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
            BinaryOp::StartsWith | BinaryOp::EndsWith | BinaryOp::Contains => {
                let b = self.expr(r);
                if let (ExprKind::Read(place), Some(Value::Str(k))) = (&l.kind, &b.konst) {
                    let (place, k) = (place.clone(), k.clone());
                    return Pred::Other(Box::new(move |f| {
                        Ok(match place.get(f) {
                            Value::Str(s) => text_test(op, s, &k),
                            Value::List(items) => items.iter().any(|i| i.as_str() == Some(&k)),
                            _ => false,
                        })
                    }));
                }
                let a = self.expr(l).eval;
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
            BinaryOp::Matches => {
                let a = self.expr(l).eval;
                let b = self.expr(r);
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
            _ => self.value_pred(e),
        }
    }

    /// A condition that is some other `bool` expression.
    fn value_pred(&self, e: &hir::Expr) -> Pred {
        let c = self.expr(e);
        if let Some(Value::Bool(b)) = c.konst {
            return Pred::Const(b);
        }
        let eval = c.eval;
        Pred::Other(Box::new(move |f| match eval(f)? {
            Value::Bool(b) => Ok(b),
            other => fault(format!("expected a bool, found a {}", other.kind())),
        }))
    }

    /// Lowers an expression, wrapped in a check of its type when the options
    /// ask for it.
    fn expr(&self, e: &hir::Expr) -> Compiled {
        let c = self.expr_inner(e);
        if !self.options.check_types {
            return c;
        }
        let shown = self.analysis.program.show(&e.ty);
        let at = self.text(e.at.file, e.at.span);
        if let Some(k) = &c.konst {
            if conforms(k, &e.ty) {
                return c;
            }
            let kind = k.kind();
            return dynamic(Box::new(move |_| {
                fault(format!(
                    "`{at}` is a `{shown}` to the checker, but lowered to a constant {kind}"
                ))
            }));
        }
        let ty = e.ty.clone();
        let inner = c.eval;
        dynamic(Box::new(move |f| {
            let v = inner(f)?;
            if !conforms(&v, &ty) {
                return fault(format!(
                    "`{at}` is a `{shown}` to the checker, but gave a {}",
                    v.kind()
                ));
            }
            Ok(v)
        }))
    }

    fn expr_inner(&self, e: &hir::Expr) -> Compiled {
        match &e.kind {
            ExprKind::Lit(lit) => literal(lit),
            ExprKind::Read(place) => {
                let place = place.clone();
                dynamic(Box::new(move |f| Ok(place.get(f).clone())))
            }
            ExprKind::Whole(root) => whole(*root),
            ExprKind::Field(base, slot) => self.field(base, *slot),
            ExprKind::Template(parts) => self.template(parts),
            ExprKind::List(items) => self.list(items),
            ExprKind::Neg(inner) => self.neg(inner),
            ExprKind::Widen(inner) => self.widen_int(e, inner),
            ExprKind::Binary(op, l, r) => match op.op {
                BinaryOp::Coalesce => self.coalesce(l, r),
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
                    self.arithmetic(op.op, l, r)
                }
                _ => self.condition_value(e),
            },
            ExprKind::Not(_) => self.condition_value(e),
            ExprKind::If(c, t, f) => self.if_value(c, t, f),
            ExprKind::Call(callee, args) => self.call(callee, args),
            ExprKind::Error => {
                let at = self.text(e.at.file, e.at.span);
                dynamic(Box::new(move |_| {
                    fault(format!("`{at}` did not check, so it cannot run"))
                }))
            }
        }
    }

    /// `base.field`: the field's slot of the record, `none` when there is
    /// no record.
    fn field(&self, base: &hir::Expr, slot: usize) -> Compiled {
        let base = self.expr(base).eval;
        dynamic(Box::new(move |f| match base(f)? {
            Value::Record(r) => Ok(r.slots.get(slot).cloned().unwrap_or(Value::None)),
            _ => Ok(Value::None),
        }))
    }

    /// A text with `{...}` parts, each shown and the whole kept within the
    /// bound on text.
    fn template(&self, parts: &[Part]) -> Compiled {
        enum Piece {
            Text(String),
            Expr(Eval),
        }
        let pieces: Vec<Piece> = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => Piece::Text(t.clone()),
                Part::Expr(x) => Piece::Expr(self.expr(x).eval),
            })
            .collect();
        dynamic(Box::new(move |f| {
            use std::fmt::Write;
            let mut out = String::new();
            for piece in &pieces {
                match piece {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Expr(x) => {
                        let _ = write!(out, "{}", x(f)?);
                    }
                }
                super::eval::text_fits("text", out.len())?;
            }
            Ok(Value::Str(Arc::from(out)))
        }))
    }

    /// `[a, b, ...]`, a constant when every item is.
    fn list(&self, items: &[hir::Expr]) -> Compiled {
        let lowered: Vec<Compiled> = items.iter().map(|i| self.expr(i)).collect();
        if lowered.iter().all(|c| c.konst.is_some()) {
            let values: Vec<Value> = lowered.into_iter().filter_map(|c| c.konst).collect();
            return konst(Value::List(Arc::from(values)));
        }
        let evals: Vec<Eval> = lowered.into_iter().map(|c| c.eval).collect();
        dynamic(Box::new(move |f| {
            let values = evals.iter().map(|x| x(f)).collect::<Result<Vec<_>, _>>()?;
            Ok(Value::List(Arc::from(values)))
        }))
    }

    /// `-x`, folded when `x` is a constant that negates.
    fn neg(&self, inner: &hir::Expr) -> Compiled {
        let c = self.expr(inner);
        if let Some(k) = c.konst.clone() {
            if let Ok(v) = negate(k) {
                return konst(v);
            }
        }
        let inner = c.eval;
        dynamic(Box::new(move |f| negate(inner(f)?)))
    }

    /// An `int` used as a `float` or a `decimal` (the type of `e`), folded
    /// when it is a constant.
    fn widen_int(&self, e: &hir::Expr, inner: &hir::Expr) -> Compiled {
        let to_decimal = e.ty.present() == &Type::Decimal;
        let c = self.expr(inner);
        if let Some(k) = c.konst.clone() {
            return konst(widen(k, to_decimal));
        }
        let inner = c.eval;
        dynamic(Box::new(move |f| Ok(widen(inner(f)?, to_decimal))))
    }

    /// `l ?? r`: `r` when `l` is absent.
    fn coalesce(&self, l: &hir::Expr, r: &hir::Expr) -> Compiled {
        let (a, b) = (self.expr(l).eval, self.expr(r).eval);
        dynamic(Box::new(move |f| match a(f)? {
            Value::None => b(f),
            v => Ok(v),
        }))
    }

    /// `+`, `-`, `*`, `/`, `%`, folded when both sides are constants and the
    /// operation does not fail.
    fn arithmetic(&self, op: BinaryOp, l: &hir::Expr, r: &hir::Expr) -> Compiled {
        let (a, b) = (self.expr(l), self.expr(r));
        if let (Some(x), Some(y)) = (&a.konst, &b.konst) {
            if let Ok(v) = arith(op, x, y) {
                return konst(v);
            }
        }
        let (a, b) = (a.eval, b.eval);
        dynamic(Box::new(move |f| arith(op, &a(f)?, &b(f)?)))
    }

    /// `if c then t else f`: only the branch chosen runs.
    fn if_value(&self, c: &hir::Expr, t: &hir::Expr, f: &hir::Expr) -> Compiled {
        let cond = self.cond(c);
        let (a, b) = (self.expr(t).eval, self.expr(f).eval);
        dynamic(Box::new(move |fr| if cond(fr)? { a(fr) } else { b(fr) }))
    }

    /// A condition used as a value, folded when it reads nothing.
    fn condition_value(&self, e: &hir::Expr) -> Compiled {
        let c = self.cond(e);
        if is_constant(e) {
            let empty = Arc::new(Record {
                shape: 0,
                slots: Box::new([]),
            });
            let lib = Library::empty();
            let frame = Frame {
                event: &empty,
                envelope: &empty,
                locals: &[],
                recalled: &[],
                now: chrono::DateTime::<chrono::Utc>::default(),
                lib: &lib,
            };
            if let Ok(b) = c(&frame) {
                return konst(Value::Bool(b));
            }
        }
        dynamic(Box::new(move |f| Ok(Value::Bool(c(f)?))))
    }

    fn call(&self, callee: &Callee, args: &[hir::Expr]) -> Compiled {
        let evals: Vec<Eval> = args.iter().map(|a| self.expr(a).eval).collect();
        let eval: Eval = match callee {
            Callee::Builtin { name, .. } => match builtins::lookup(name, evals.len()) {
                Some(imp) => Box::new(move |f| {
                    let values = evals.iter().map(|x| x(f)).collect::<Result<Vec<_>, _>>()?;
                    imp(&values, f)
                }),
                None => {
                    let name = name.clone();
                    Box::new(move |_| fault(format!("the built-in `{name}` is not implemented")))
                }
            },
            Callee::User(id) => {
                let index = *id as usize;
                Box::new(move |f| {
                    let values = evals.iter().map(|x| x(f)).collect::<Result<Vec<_>, _>>()?;
                    match f.lib.functions.get(index) {
                        Some(FnImpl::Steward { body, .. }) => body(&Frame {
                            event: f.event,
                            envelope: f.envelope,
                            locals: &values,
                            recalled: f.recalled,
                            now: f.now,
                            lib: f.lib,
                        }),
                        Some(FnImpl::Rhai(r)) => r.call(&f.lib.rhai, &f.lib.shapes, &values),
                        Some(FnImpl::Missing { name }) => {
                            fault(format!("the function `{name}` did not check"))
                        }
                        None => fault("a call of a function that is not in this ruleset"),
                    }
                })
            }
        };
        dynamic(eval)
    }
}

/// A literal: a constant, but for a number the checker left undecided.
fn literal(lit: &Lit) -> Compiled {
    match lit {
        Lit::Int(i) => konst(Value::Int(*i)),
        Lit::Float(x) => konst(Value::Float(*x)),
        Lit::Decimal(d) => konst(Value::Decimal(*d)),
        Lit::Str(s) => konst(Value::Str(s.clone())),
        Lit::Bool(b) => konst(Value::Bool(*b)),
        Lit::None => konst(Value::None),
        Lit::Duration(ms) => konst(Value::Duration(*ms)),
        Lit::Date(d) => konst(Value::Date(*d)),
        Lit::DateTime(t) => konst(Value::DateTime(*t)),
        Lit::Number(text) => {
            let text = text.clone();
            dynamic(Box::new(move |_| {
                fault(format!(
                    "the number `{text}` was left undecided by the checker"
                ))
            }))
        }
    }
}

/// `event` or `envelope` as a whole record.
fn whole(root: Root) -> Compiled {
    let is_event = root == Root::Event;
    dynamic(Box::new(move |f| {
        Ok(Value::Record(if is_event {
            f.event.clone()
        } else {
            f.envelope.clone()
        }))
    }))
}

fn negate(v: Value) -> Result<Value, Fault> {
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
}

/// An `int` as a `float` or a `decimal`; anything else (`none`) as it is.
fn widen(v: Value, to_decimal: bool) -> Value {
    match v {
        Value::Int(i) if to_decimal => Value::Decimal(Decimal::from(i)),
        Value::Int(i) => Value::Float(i as f64),
        other => other,
    }
}

/// Whether an expression reads nothing from the event, locals or clock.
fn is_constant(e: &hir::Expr) -> bool {
    match &e.kind {
        ExprKind::Lit(_) => true,
        ExprKind::Template(parts) => parts.iter().all(|p| match p {
            Part::Text(_) => true,
            Part::Expr(x) => is_constant(x),
        }),
        ExprKind::Neg(x) | ExprKind::Not(x) | ExprKind::Widen(x) => is_constant(x),
        ExprKind::Binary(_, l, r) => is_constant(l) && is_constant(r),
        ExprKind::List(items) => items.iter().all(is_constant),
        ExprKind::If(c, t, f) => is_constant(c) && is_constant(t) && is_constant(f),
        ExprKind::Read(_)
        | ExprKind::Whole(_)
        | ExprKind::Field(..)
        | ExprKind::Call(..)
        | ExprKind::Error => false,
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

/// Whether a runtime value is one of the static type `ty`: what
/// [`Options::check_types`] checks. A union's text must be a member; a
/// record, of the record's shape; `Error` and type parameters take anything.
pub fn conforms(v: &Value, ty: &Type) -> bool {
    match (v, ty) {
        (_, Type::Error | Type::Var(_)) => true,
        (Value::None, Type::Optional(_) | Type::None) => true,
        (v, Type::Optional(inner)) => conforms(v, inner),
        (Value::Str(s), Type::Union(members)) => members.iter().any(|m| **m == **s),
        (Value::Int(_), Type::Int)
        | (Value::Float(_), Type::Float)
        | (Value::Decimal(_), Type::Decimal)
        | (Value::Bool(_), Type::Bool)
        | (Value::Str(_), Type::String)
        | (Value::Date(_), Type::Date)
        | (Value::DateTime(_), Type::DateTime)
        | (Value::Duration(_), Type::Duration) => true,
        (Value::List(items), Type::List(item)) => items.iter().all(|i| conforms(i, item)),
        (Value::Record(r), Type::Record(id)) => r.shape == *id,
        _ => false,
    }
}
