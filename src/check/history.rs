//! What rules read from the history of events rather than from their
//! event: `previous PATH`, `PATH changed [from A] [to B]` and
//! `count(E by f, g within D)`. Each becomes a [`hir::Recall`], read through
//! `Root::Recall`; `changed` is checked as the comparisons it stands for, so
//! a value its field can never hold gets the usual "always false".

use std::sync::Arc;

use super::expr::{path, Ctx, Ty};
use super::suggest::did_you_mean;
use super::types::*;
use super::{Checker, DefKind};
use crate::diag::{Code, Diagnostic, Span};
use crate::hir::{self, ExprKind as Kind, Lit, Operands, Operator, Place, Recall, Root};
use crate::syntax::ast::{BinaryOp, Expr, Name};

type Out = (Ty, Kind);

fn bad() -> Out {
    (Ty::of(Type::Error), Kind::Error)
}

impl Checker<'_> {
    /// `previous stage`: the field's type, optional (absent the first time).
    pub(super) fn previous(&mut self, cx: &mut Ctx, inner: &Expr, whole: &Expr) -> Out {
        let ty = self.expr(cx, inner);
        if ty.ty == Type::Error || self.history_refused(cx, whole.span, "previous") {
            return bad();
        }
        let Some(field) = self.event_field(cx, inner, &ty, "previous") else {
            return bad();
        };
        let present = ty.ty.present().clone();
        let i = self.recall(Recall::Previous {
            path: field,
            ty: present.clone(),
        });
        (self.narrow(cx, whole, present.optional()), recall_read(i))
    }

    /// `stage changed [from A] [to B]`: `previous stage != stage`, or
    /// `stage == B and previous stage != B`, or `previous stage == A and
    /// stage == B`, or `previous stage == A and stage != A`.
    pub(super) fn changed(
        &mut self,
        cx: &mut Ctx,
        whole: &Expr,
        subject: &Expr,
        from: Option<&Expr>,
        to: Option<&Expr>,
    ) -> Out {
        let current = self.expr(cx, subject);
        let from_ty = from.map(|e| self.expr(cx, e));
        let to_ty = to.map(|e| self.expr(cx, e));
        let broken = |t: &Option<Ty>| t.as_ref().is_some_and(|t| t.ty == Type::Error);
        if current.ty == Type::Error || broken(&from_ty) || broken(&to_ty) {
            return bad();
        }
        if self.history_refused(cx, whole.span, "changed") {
            return bad();
        }
        let Some(field) = self.event_field(cx, subject, &current, "changed") else {
            return bad();
        };
        let present = current.ty.present().clone();
        let i = self.recall(Recall::Previous {
            path: field,
            ty: present.clone(),
        });
        let mut previous = Ty::of(present.clone().optional());
        previous.node = hir::Expr::new(
            present.optional(),
            Loc {
                file: cx.file,
                span: subject.span,
            },
            recall_read(i),
        );
        let at = Loc {
            file: cx.file,
            span: whole.span,
        };
        let mut parts = Vec::new();
        // A value is compared with the field and with its previous value,
        // which have one type: what the second comparison would report, the
        // first did.
        let mut compared: Vec<Span> = Vec::new();
        let mut compare = |me: &mut Self, op, a: &Ty, b: &Ty, r: &Expr| {
            let reported = me.diags.len();
            let (_, kind) = me.equality(cx, op, subject, r, a.clone(), b.clone());
            if compared.contains(&r.span) {
                me.diags.truncate(reported);
            }
            compared.push(r.span);
            parts.push(hir::Expr::new(Type::Bool, at, kind));
        };
        match (from.zip(from_ty), to.zip(to_ty)) {
            (None, None) => compare(self, BinaryOp::Ne, &previous, &current, subject),
            (from, to) => {
                if let Some((e, value)) = &from {
                    compare(self, BinaryOp::Eq, &previous, value, e);
                    if to.is_none() {
                        compare(self, BinaryOp::Ne, &current, value, e);
                    }
                }
                if let Some((e, value)) = &to {
                    compare(self, BinaryOp::Eq, &current, value, e);
                    if from.is_none() {
                        compare(self, BinaryOp::Ne, &previous, value, e);
                    }
                }
            }
        }
        let and = Operator {
            op: BinaryOp::And,
            on: Operands::Other,
        };
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return bad();
        };
        let node = parts.fold(first, |l, r| {
            hir::Expr::new(Type::Bool, at, Kind::Binary(and, Box::new(l), Box::new(r)))
        });
        (Ty::of(Type::Bool), node.kind)
    }

    /// `count(work_order.created by property_id, category within 90d)`.
    pub(super) fn count_of(
        &mut self,
        cx: &mut Ctx,
        whole: &Expr,
        event: &Name,
        by: &[Expr],
        within: &Expr,
    ) -> Out {
        let window = self.positive_duration(cx, within, "the count's window");
        let by_tys: Vec<Ty> = by.iter().map(|b| self.expr(cx, b)).collect();
        let Some(&counted) = self.program.events.get(&event.text) else {
            self.unknown_event(cx.file, event);
            return bad();
        };
        let loc = self.program.record(counted).loc;
        self.refer(cx.file, event.span, loc, DefKind::Event);
        if self.history_refused(cx, whole.span, "count(...)") {
            return bad();
        }
        let window_ms = match window.kind {
            Kind::Lit(Lit::Duration(ms)) => ms,
            Kind::Error => return bad(),
            _ => {
                self.report(
                    Diagnostic::new(
                        Code::NoHistory,
                        cx.file,
                        within.span,
                        "the window of `count(...)` must be a duration written out",
                    )
                    .with_help("write it as a literal such as `within 90d`: the events are kept for that long"),
                );
                return bad();
            }
        };
        let mut fields = Vec::new();
        for (b, ty) in by.iter().zip(&by_tys) {
            if ty.ty == Type::Error {
                return bad();
            }
            let Some(field) = self.event_field(cx, b, ty, "count(...)") else {
                return bad();
            };
            let counted_record = self.program.record(counted).clone();
            match record_path(&self.program, counted, &field) {
                None => {
                    let help = did_you_mean(
                        &field,
                        counted_record.fields.iter().map(|f| f.name.as_str()),
                    )
                    .unwrap_or_else(|| {
                        format!("count by fields that `{}` has too", counted_record.name)
                    });
                    self.report(
                        Diagnostic::new(
                            Code::UnknownField,
                            cx.file,
                            b.span,
                            format!("the event `{}` has no field `{field}`", counted_record.name),
                        )
                        .with_secondary(
                            counted_record.loc.file,
                            counted_record.loc.span,
                            "declared here",
                        )
                        .with_help(help),
                    );
                    return bad();
                }
                Some(theirs) => {
                    let (mine, theirs) = (ty.ty.present(), theirs.present().clone());
                    if !(self.program.assignable(mine, None, &theirs)
                        || self.program.assignable(&theirs, None, mine))
                    {
                        let (mine, theirs) = (self.program.show(mine), self.program.show(&theirs));
                        self.report(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                cx.file,
                                b.span,
                                format!(
                                    "`{field}` is a `{mine}` here but a `{theirs}` on `{}`",
                                    counted_record.name
                                ),
                            )
                            .with_help("count by fields of the same type on both events"),
                        );
                        return bad();
                    }
                }
            }
            fields.push(field);
        }
        let i = self.recall(Recall::Count {
            event_type: Arc::from(event.text.as_str()),
            fields,
            window_ms,
        });
        (Ty::of(Type::Int), recall_read(i))
    }

    /// Reports why the history cannot be read here, if it cannot.
    fn history_refused(&mut self, cx: &Ctx, span: Span, what: &str) -> bool {
        let (message, help) = if cx.event.is_none() {
            if cx.lenient {
                return true; // the trigger is unknown, already reported
            }
            (
                format!("`{what}` needs the event that triggered the rule, and there is none here"),
                "use it in the conditions or the body of a rule that starts with `when`"
                    .to_string(),
            )
        } else if cx.quiet {
            (
                format!("`{what}` cannot be read in a rule on what did not happen, which runs when the quiet period has passed"),
                "read it in a rule on the start or the watched event, or use the start event's fields (in scope here) and `quiet_since`".to_string(),
            )
        } else if cx.suspended > 0 {
            let text = self.text(cx.file, span).to_string();
            (
                format!("`{what}` cannot be read inside a timer or an approval, which runs later"),
                format!("read it when the rule fires and keep it with `let`, such as `let before = {text}` before the block"),
            )
        } else {
            return false;
        };
        self.report(Diagnostic::new(Code::NoHistory, cx.file, span, message).with_help(help));
        true
    }

    /// The path of the triggering event's field that `e` reads, or a report.
    fn event_field(&mut self, cx: &Ctx, e: &Expr, ty: &Ty, what: &str) -> Option<Arc<str>> {
        let is_field = matches!(
            &ty.node.kind,
            Kind::Read(Place {
                root: Root::Event,
                ..
            })
        );
        match path(e) {
            Some(p) if is_field => Some(Arc::from(p.as_str())),
            _ => {
                let example = match what {
                    "previous" => "`previous stage`",
                    "changed" => "`stage changed to \"won\"`",
                    _ => "`count(work_order.created by property_id within 90d)`",
                };
                self.report(
                    Diagnostic::new(
                        Code::NoHistory,
                        cx.file,
                        e.span,
                        format!("`{what}` takes a field of the triggering event"),
                    )
                    .with_help(format!("name a field of the event, such as {example}")),
                );
                None
            }
        }
    }

    /// The index of a recall, kept once, and noted as read by this rule.
    fn recall(&mut self, recall: Recall) -> usize {
        let i = match self.hir.recalls.iter().position(|r| *r == recall) {
            Some(i) => i,
            None => {
                self.hir.recalls.push(recall);
                self.hir.recalls.len() - 1
            }
        };
        self.rule_recalls.push(i);
        i
    }
}

fn recall_read(i: usize) -> Kind {
    Kind::Read(Place {
        root: Root::Recall(i),
        path: Vec::new(),
    })
}

/// The type of a dotted field path in a record, if it has it.
fn record_path(program: &Program, record: RecordId, path: &str) -> Option<Type> {
    let mut ty = Type::Record(record);
    for name in path.split('.') {
        let Type::Record(id) = ty.present().clone() else {
            return None;
        };
        let field = program.record(id).field(name)?;
        ty = field.ty.clone();
    }
    Some(ty)
}
