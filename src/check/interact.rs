//! What the checker sees between rules: two rules that can both fire for
//! one event and send the same message (to the same recipient, since a
//! message names its recipient from the event), or call the same action
//! with the same arguments (W0106); a rule that a rule before it always
//! stops (W0107); rules that emit each other's events in a cycle nothing
//! breaks (W0108); a timer that is always late and skipped (W0109).
//!
//! Sound for what it sees: a pair is left alone when their conditions (and
//! the `if`s around the two actions) contradict each other on a field
//! compared with constants, or when one rule runs first (`priority`) and
//! always `stop`s. What it cannot see, it assumes may happen: conditions it
//! cannot compare (function calls, computed values), the `else` side of an
//! `if`, throttles and counts.

use std::collections::HashMap;

use super::rules::contradiction_all;
use super::Checker;
use crate::diag::{Code, Diagnostic, FileId, Span};
use crate::syntax::ast::*;

/// A rule on an event, as far as its interactions go.
struct Site<'a> {
    file: FileId,
    /// The rule, for messages: where its name (or, unnamed, its trigger) is.
    at: Span,
    /// Whether it goes on for every event of its type (no clause).
    unconditional: bool,
    /// The events it emits whatever happens (not inside an `if`), where.
    emits: Vec<(&'a str, Span)>,
    event: &'a str,
    name: &'a str,
    /// `priority N`: rules with one run first.
    priority: Option<i64>,
    /// Whether its body always ends with `stop` (a `stop` outside any `if`).
    always_stops: bool,
    conditions: Vec<Expr>,
    effects: Vec<Effect<'a>>,
}

/// An action a rule may perform, with the `if` conditions around it.
struct Effect<'a> {
    /// `send welcome`, `apply_price(listing_id, recommended)`.
    what: String,
    span: Span,
    around: Vec<&'a Expr>,
}

impl Checker<'_> {
    pub(super) fn interactions(&mut self) {
        let files = self.files;
        let mut sites = Vec::new();
        for f in files.iter().filter(|f| !f.stdlib) {
            let text = self.sources.text(f.id);
            for item in &f.tree.items {
                let Item::Rule(r) = item else { continue };
                let Trigger::When { event, .. } = &r.trigger else {
                    continue;
                };
                if !self.program.events.contains_key(&event.text) {
                    continue;
                }
                let mut site = Site {
                    file: f.id,
                    at: r.name.as_ref().map_or(r.span, |n| n.span),
                    unconditional: r
                        .clauses
                        .iter()
                        .all(|c| matches!(c, Clause::Priority { .. })),
                    emits: r
                        .body
                        .stmts
                        .iter()
                        .filter_map(|s| match &s.kind {
                            StmtKind::Emit { event, .. } => Some((event.text.as_str(), s.span)),
                            _ => None,
                        })
                        .collect(),
                    event: &event.text,
                    name: r.name.as_ref().map_or("", |n| n.text.as_str()),
                    priority: None,
                    always_stops: r
                        .body
                        .stmts
                        .iter()
                        .any(|s| matches!(s.kind, StmtKind::Stop)),
                    conditions: Vec::new(),
                    effects: Vec::new(),
                };
                for clause in &r.clauses {
                    match clause {
                        Clause::Condition { cond, .. } => site.conditions.push(cond.clone()),
                        Clause::Unless { cond, .. } => site.conditions.push(Expr {
                            span: cond.span,
                            kind: ExprKind::Unary(UnaryOp::Not, Box::new(cond.clone())),
                        }),
                        Clause::Priority { value, .. } => {
                            if let ExprKind::Int(n) = value.kind {
                                site.priority = Some(n);
                            }
                        }
                        Clause::Throttle { .. } | Clause::Count { .. } => {}
                    }
                }
                effects(&r.body.stmts, text, &mut Vec::new(), &mut site.effects);
                self.late_timers(f.id, &r.body.stmts);
                sites.push(site);
            }
        }
        // Only rules on one event meet: each rule against those before it.
        let mut on_event: HashMap<&str, Vec<&Site>> = HashMap::new();
        for b in &sites {
            let before = on_event.entry(b.event).or_default();
            // The rules before it that neither stop it nor are stopped by it.
            let mut both_run = Vec::with_capacity(before.len());
            for &a in before.iter() {
                match stops_the_other(a, b) {
                    Some((first, second)) => self.shadowed(first, second),
                    None => both_run.push(a),
                }
            }
            self.duplicates(&both_run, b);
            before.push(b);
        }
        self.emit_cycles(&sites);
    }

    /// A rule that a rule before it always stops, whenever it would fire:
    /// the first stops for every event of the type, or on conditions the
    /// second's include.
    fn shadowed(&mut self, first: &Site, second: &Site) {
        let text = |s: &Site, e: &Expr| self.text(s.file, e.span).to_string();
        let theirs: Vec<String> = second.conditions.iter().map(|c| text(second, c)).collect();
        let covered = first
            .conditions
            .iter()
            .all(|c| theirs.contains(&text(first, c)));
        if !(first.unconditional || covered) {
            return;
        }
        let name = |s: &Site| self.text(s.file, s.at).to_string();
        let (first_name, second_name) = (name(first), name(second));
        self.report(
            Diagnostic::new(
                Code::ShadowedRule,
                second.file,
                second.at,
                format!("`{second_name}` never runs: `{first_name}` runs before it and always stops"),
            )
            .with_label("never runs")
            .with_secondary(first.file, first.at, "this rule stops the event's handling")
            .with_help("give it a lower priority number than the rule that stops, or make that rule's `stop` conditional"),
        );
    }

    /// Rules that emit each other's events with nothing to break the cycle:
    /// each goes on for every event of its type and emits the next one
    /// whatever happens.
    fn emit_cycles(&mut self, sites: &[Site]) {
        let edges: Vec<(&str, &str, FileId, Span)> = sites
            .iter()
            .filter(|s| s.unconditional)
            .flat_map(|s| {
                s.emits
                    .iter()
                    .map(move |(to, at)| (s.event, *to, s.file, *at))
            })
            .collect();
        let mut reported: Vec<String> = Vec::new();
        for &(from, to, file, at) in &edges {
            // A path from `to` back to `from`, breadth first.
            let mut paths: Vec<Vec<&str>> = vec![vec![from, to]];
            let mut seen: Vec<&str> = vec![to];
            let mut cycle = None;
            while let Some(path) = (!paths.is_empty()).then(|| paths.remove(0)) {
                let last = path.last().copied().unwrap_or(from);
                if last == from {
                    cycle = Some(path);
                    break;
                }
                for &(a, b, _, _) in &edges {
                    if a == last && (b == from || !seen.contains(&b)) {
                        seen.push(b);
                        let mut next = path.clone();
                        next.push(b);
                        paths.push(next);
                    }
                }
            }
            let Some(cycle) = cycle else { continue };
            // The path ends where it starts: each member once.
            let Some((_, members)) = cycle.split_last() else {
                continue;
            };
            let mut key: Vec<&str> = members.to_vec();
            key.sort_unstable();
            let key = key.join(" ");
            if reported.contains(&key) {
                continue;
            }
            reported.push(key);
            let shown: Vec<String> = cycle.iter().map(|e| format!("`{e}`")).collect();
            self.report(
                Diagnostic::new(
                    Code::EmitCycle,
                    file,
                    at,
                    format!("these rules emit each other's events in a cycle: {}", shown.join(" → ")),
                )
                .with_help("each rule on the way fires for every event and emits the next; add a condition that ends the cycle (the engine stops a chain after 1,000 events, as an error)"),
            );
        }
    }

    /// `at T skip if late` where `T` is always before the event: `now()`
    /// less a duration. It is skipped every time.
    fn late_timers(&mut self, file: FileId, stmts: &[Stmt]) {
        for stmt in stmts {
            match &stmt.kind {
                StmtKind::Timer {
                    kind: TimerKind::At,
                    when,
                    skip_late: true,
                    body,
                    ..
                } => {
                    let before_now = match &when.kind {
                        ExprKind::Binary(BinaryOp::Sub, l, r) => {
                            matches!(&l.kind, ExprKind::Call(n, a) if n.text == "now" && a.is_empty())
                                && matches!(r.kind, ExprKind::Duration(ms) if ms > 0)
                        }
                        _ => false,
                    };
                    if before_now {
                        self.report(
                            Diagnostic::new(
                                Code::TimerNeverRuns,
                                file,
                                when.span,
                                "this time is always before the event, so `skip if late` always skips it",
                            )
                            .with_help("wait for a time after the event (`after 2h`, `at check_in - 2d`), or drop `skip if late` to run it at once"),
                        );
                    }
                    self.late_timers(file, &body.stmts);
                }
                StmtKind::Timer { body, .. } => self.late_timers(file, &body.stmts),
                StmtKind::If {
                    branches,
                    otherwise,
                } => {
                    for (_, b) in branches {
                        self.late_timers(file, &b.stmts);
                    }
                    if let Some(o) = otherwise {
                        self.late_timers(file, &o.stmts);
                    }
                }
                StmtKind::Approval {
                    body, otherwise, ..
                } => {
                    self.late_timers(file, &body.stmts);
                    if let Some(o) = otherwise {
                        self.late_timers(file, &o.stmts);
                    }
                }
                _ => {}
            }
        }
    }

    /// Each action of `b` that a rule before it (`before`: those that run
    /// with it) also performs for the same event, reported once, with
    /// the first such rule. Once an action is reported the other rules are
    /// not compared, so a ruleset of many rules doing the same thing costs
    /// a comparison per rule, not one per pair.
    fn duplicates(&mut self, before: &[&Site], b: &Site) {
        let event = self.program.events.get(b.event).copied();
        let mut reported: Vec<&str> = Vec::new();
        for eb in &b.effects {
            if reported.contains(&eb.what.as_str()) {
                continue;
            }
            let same = before.iter().flat_map(|a| {
                a.effects
                    .iter()
                    .filter(|ea| ea.what == eb.what)
                    .map(move |ea| (a, ea))
            });
            for (a, ea) in same {
                let mut all: Vec<&Expr> = a.conditions.iter().chain(&b.conditions).collect();
                all.extend(ea.around.iter().chain(&eb.around));
                let domain = |p: &str| self.union_members(event, p);
                if contradiction_all(&all, &domain).is_some() {
                    continue;
                }
                reported.push(&eb.what);
                self.report(
                    Diagnostic::new(
                        Code::LikelyDuplicate,
                        b.file,
                        eb.span,
                        format!("`{}` is also done by another rule on `{}`, which can fire for the same event", eb.what, b.event),
                    )
                    .with_label("done here")
                    .with_secondary(a.file, ea.span, "and here")
                    .with_help("the recipient would get it twice: keep it in one rule, make the rules' conditions exclusive, or give the first a `priority` and `stop`"),
                );
                break;
            }
        }
    }
}

/// The one of the two that runs first and always stops, and the other
/// (`a` comes first in the source).
fn stops_the_other<'s, 'a>(
    a: &'s Site<'a>,
    b: &'s Site<'a>,
) -> Option<(&'s Site<'a>, &'s Site<'a>)> {
    let a_first = match (a.priority, b.priority) {
        (Some(x), Some(y)) => (x, a.name) <= (y, b.name),
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) => true,
    };
    let (first, second) = if a_first { (a, b) } else { (b, a) };
    first.always_stops.then_some((first, second))
}

/// The actions statements may perform, with the conditions of the `if`
/// branches they are in (an `else` side adds none: it cannot be compared).
fn effects<'a>(
    stmts: &'a [Stmt],
    text: &str,
    around: &mut Vec<&'a Expr>,
    out: &mut Vec<Effect<'a>>,
) {
    for stmt in stmts {
        match &stmt.kind {
            StmtKind::Send { message } => out.push(Effect {
                what: format!("send {}", message.text),
                span: stmt.span,
                around: around.clone(),
            }),
            StmtKind::Call { name, args } => {
                let args: Vec<&str> = args
                    .iter()
                    .map(|a| text.get(a.value.span.range()).unwrap_or(""))
                    .collect();
                out.push(Effect {
                    what: format!("{}({})", name.text, args.join(", ")),
                    span: stmt.span,
                    around: around.clone(),
                });
            }
            StmtKind::If {
                branches,
                otherwise,
            } => {
                for (cond, body) in branches {
                    around.push(cond);
                    effects(&body.stmts, text, around, out);
                    around.pop();
                }
                if let Some(body) = otherwise {
                    effects(&body.stmts, text, around, out);
                }
            }
            StmtKind::Timer { body, .. } => effects(&body.stmts, text, around, out),
            StmtKind::Approval {
                body, otherwise, ..
            } => {
                effects(&body.stmts, text, around, out);
                if let Some(o) = otherwise {
                    effects(&o.stmts, text, around, out);
                }
            }
            _ => {}
        }
    }
}
