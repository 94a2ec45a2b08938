//! What the checker sees between rules: two rules that can both fire for
//! one event and send the same message (to the same recipient, since a
//! message names its recipient from the event), or call the same action
//! with the same arguments (W0106).
//!
//! Sound for what it sees: a pair is left alone when their conditions (and
//! the `if`s around the two actions) contradict each other on a field
//! compared with constants, or when one rule runs first (`priority`) and
//! always `stop`s. What it cannot see, it assumes may happen: conditions it
//! cannot compare (function calls, computed values), the `else` side of an
//! `if`, throttles and counts.

use super::rules::contradiction_all;
use super::Checker;
use crate::diag::{Code, Diagnostic, FileId, Span};
use crate::syntax::ast::*;

/// A rule on an event, as far as its interactions go.
struct Site<'a> {
    file: FileId,
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
                sites.push(site);
            }
        }
        for (i, a) in sites.iter().enumerate() {
            for b in sites.iter().skip(i + 1) {
                if a.event != b.event || stops_the_other(a, b) {
                    continue;
                }
                self.duplicates(a, b);
            }
        }
    }

    fn duplicates(&mut self, a: &Site, b: &Site) {
        let mut reported: Vec<&str> = Vec::new();
        for ea in &a.effects {
            for eb in b.effects.iter().filter(|eb| eb.what == ea.what) {
                if reported.contains(&eb.what.as_str()) {
                    continue;
                }
                let mut all: Vec<&Expr> = a.conditions.iter().chain(&b.conditions).collect();
                all.extend(ea.around.iter().chain(&eb.around));
                if contradiction_all(&all).is_some() {
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
            }
        }
    }
}

/// Whether one of the two runs first and always stops the other (`a`
/// comes first in the source).
fn stops_the_other(a: &Site, b: &Site) -> bool {
    let a_first = match (a.priority, b.priority) {
        (Some(x), Some(y)) => (x, a.name) <= (y, b.name),
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) => true,
    };
    if a_first {
        a.always_stops
    } else {
        b.always_stops
    }
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
