//! Moving a parsed item to another place in its file. An editor's change
//! moves every item after it; an item whose text did not change is not parsed
//! again but moved (see [`super::parse::Reuse`]).
//!
//! Every node is taken apart without `..`, so a field added to the tree is a
//! compile error here until it is moved too.

use crate::diag::{Diagnostic, Fix, Label, Span};

use super::ast::*;

/// A distance to move by, in bytes, modulo 2^32: an offset moved stays in its
/// file (both files are under 4 GiB), so wrapping arithmetic gives the exact
/// result whichever way the item moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Delta(u32);

impl Delta {
    /// The move from an item at `from` to the same item at `to`.
    pub(crate) fn between(from: u32, to: u32) -> Delta {
        Delta(to.wrapping_sub(from))
    }

    pub(crate) fn is_zero(self) -> bool {
        self.0 == 0
    }
}

pub(crate) trait Shift {
    fn shift(&mut self, by: Delta);
}

impl Shift for Span {
    fn shift(&mut self, by: Delta) {
        self.start = self.start.wrapping_add(by.0);
        self.end = self.end.wrapping_add(by.0);
    }
}

impl<T: Shift> Shift for Vec<T> {
    fn shift(&mut self, by: Delta) {
        for x in self {
            x.shift(by);
        }
    }
}

impl<T: Shift> Shift for Option<T> {
    fn shift(&mut self, by: Delta) {
        if let Some(x) = self {
            x.shift(by);
        }
    }
}

impl<T: Shift> Shift for Box<T> {
    fn shift(&mut self, by: Delta) {
        (**self).shift(by);
    }
}

impl<A: Shift, B: Shift> Shift for (A, B) {
    fn shift(&mut self, by: Delta) {
        self.0.shift(by);
        self.1.shift(by);
    }
}

/// `Shift` for structs: every field named, the ones without spans after `;`.
macro_rules! shift_struct {
    ($ty:ident { $($field:ident),* $(; $($plain:ident),*)? }) => {
        impl Shift for $ty {
            fn shift(&mut self, by: Delta) {
                let $ty { $($field,)* $($($plain: _,)*)? } = self;
                $($field.shift(by);)*
            }
        }
    };
}

impl Shift for Diagnostic {
    fn shift(&mut self, by: Delta) {
        let Diagnostic {
            code: _,
            severity: _,
            message: _,
            primary,
            secondary,
            help: _,
            fix,
        } = self;
        primary.shift(by);
        secondary.shift(by);
        fix.shift(by);
    }
}

shift_struct!(Label { span; file, text });
shift_struct!(Fix { span; title, replacement });

shift_struct!(Name { span; text });
shift_struct!(StrLit { span; value });
shift_struct!(TestDecl { span, name, steps });
shift_struct!(TestStep { span, kind });
shift_struct!(TestRecord { span, fields });
shift_struct!(TestField { span, name, value });
shift_struct!(TypeDecl { span, name, fields });
shift_struct!(EventDecl { span, name, fields });
shift_struct!(FieldDecl { span, name, ty });
shift_struct!(TypeExpr { span, kind; optional });
shift_struct!(MessageDecl { span, name, fields });
shift_struct!(MessageField { span, name, value });
shift_struct!(ActionDecl {
    span,
    name,
    params,
    body
});
shift_struct!(Webhook { url, headers });
shift_struct!(Header { span, name, value });
shift_struct!(Param { span, name, ty });
shift_struct!(FnDecl {
    span,
    name,
    params,
    ret,
    body
});
shift_struct!(ExternFnDecl {
    span,
    name,
    type_params,
    params,
    ret
});
shift_struct!(RuleDecl {
    span,
    name,
    title,
    trigger,
    clauses,
    body
});
shift_struct!(Quiet {
    span,
    event,
    field,
    period,
    since,
    until
});
shift_struct!(Block { span, stmts });
shift_struct!(Stmt { span, kind });
shift_struct!(Unless { span, event, field });
shift_struct!(RecordField { span, name, value });
shift_struct!(Arg { span, name, value });
shift_struct!(Expr { span, kind });
shift_struct!(Template { parts; raw });

impl Shift for Item {
    fn shift(&mut self, by: Delta) {
        match self {
            Item::Type(d) => d.shift(by),
            Item::Event(d) => d.shift(by),
            Item::Message(d) => d.shift(by),
            Item::Action(d) => d.shift(by),
            Item::Fn(d) => d.shift(by),
            Item::ExternFn(d) => d.shift(by),
            Item::Rule(d) => d.shift(by),
            Item::Test(d) => d.shift(by),
            Item::Error(span) => span.shift(by),
        }
    }
}

impl Shift for TestStepKind {
    fn shift(&mut self, by: Delta) {
        match self {
            TestStepKind::Given {
                partial: _,
                event,
                key,
                payload,
            } => {
                event.shift(by);
                key.shift(by);
                payload.shift(by);
            }
            TestStepKind::Wait { until: _, value } => value.shift(by),
            TestStepKind::Decide { approve: _ } | TestStepKind::ExpectNothing => {}
            TestStepKind::Expect {
                negated: _,
                action,
                target,
                args,
            } => {
                action.shift(by);
                target.shift(by);
                args.shift(by);
            }
        }
    }
}

impl Shift for TestValue {
    fn shift(&mut self, by: Delta) {
        match self {
            TestValue::Expr(e) => e.shift(by),
            TestValue::Record(r) => r.shift(by),
        }
    }
}

impl Shift for TypeExprKind {
    fn shift(&mut self, by: Delta) {
        match self {
            TypeExprKind::Named(n) => n.shift(by),
            TypeExprKind::List(t) | TypeExprKind::Paren(t) => t.shift(by),
            TypeExprKind::Union(options) => options.shift(by),
        }
    }
}

impl Shift for ActionBody {
    fn shift(&mut self, by: Delta) {
        match self {
            ActionBody::Webhook(w) => w.shift(by),
            ActionBody::Block(b) => b.shift(by),
        }
    }
}

impl Shift for HeaderValue {
    fn shift(&mut self, by: Delta) {
        match self {
            HeaderValue::Text(t) => t.shift(by),
            HeaderValue::Secret { prefix, secret } => {
                prefix.shift(by);
                secret.shift(by);
            }
        }
    }
}

impl Shift for FnBody {
    fn shift(&mut self, by: Delta) {
        match self {
            FnBody::Expr(e) => e.shift(by),
            FnBody::Rhai(s) => s.shift(by),
        }
    }
}

impl Shift for Trigger {
    fn shift(&mut self, by: Delta) {
        match self {
            Trigger::When { span, event } => {
                span.shift(by);
                event.shift(by);
            }
            Trigger::Every { span, schedule } => {
                span.shift(by);
                schedule.shift(by);
            }
            Trigger::Quiet(q) => q.shift(by),
        }
    }
}

impl Shift for Schedule {
    fn shift(&mut self, by: Delta) {
        match self {
            Schedule::Cron { expr, zone } => {
                expr.shift(by);
                zone.shift(by);
            }
            Schedule::Interval(e) => e.shift(by),
        }
    }
}

impl Shift for Clause {
    fn shift(&mut self, by: Delta) {
        match self {
            Clause::Throttle {
                span,
                count,
                per,
                by: key,
            } => {
                span.shift(by);
                count.shift(by);
                per.shift(by);
                key.shift(by);
            }
            Clause::Condition { span, cond } | Clause::Unless { span, cond } => {
                span.shift(by);
                cond.shift(by);
            }
            Clause::Priority { span, value } => {
                span.shift(by);
                value.shift(by);
            }
            Clause::Count {
                span,
                count,
                within,
                by: key,
            } => {
                span.shift(by);
                count.shift(by);
                within.shift(by);
                key.shift(by);
            }
        }
    }
}

impl Shift for StmtKind {
    fn shift(&mut self, by: Delta) {
        match self {
            StmtKind::Let { name, ty, value } => {
                name.shift(by);
                ty.shift(by);
                value.shift(by);
            }
            StmtKind::If {
                branches,
                otherwise,
            } => {
                branches.shift(by);
                otherwise.shift(by);
            }
            StmtKind::Send { message } => message.shift(by),
            StmtKind::Stop => {}
            StmtKind::Notify { to, text } => {
                to.shift(by);
                text.shift(by);
            }
            StmtKind::CreateTask { title, to, due } => {
                title.shift(by);
                to.shift(by);
                due.shift(by);
            }
            StmtKind::Emit {
                event,
                fields,
                record_span,
            } => {
                event.shift(by);
                fields.shift(by);
                record_span.shift(by);
            }
            StmtKind::Log { text } => text.shift(by),
            StmtKind::Timer {
                kind: _,
                when,
                zone,
                unless,
                skip_late: _,
                body,
            } => {
                when.shift(by);
                zone.shift(by);
                unless.shift(by);
                body.shift(by);
            }
            StmtKind::Approval {
                role,
                within,
                body,
                otherwise,
            } => {
                role.shift(by);
                within.shift(by);
                body.shift(by);
                otherwise.shift(by);
            }
            StmtKind::Call { name, args } => {
                name.shift(by);
                args.shift(by);
            }
        }
    }
}

impl Shift for Assignee {
    fn shift(&mut self, by: Delta) {
        match self {
            Assignee::Role(n) => n.shift(by),
            Assignee::Person { who, user: _ } => who.shift(by),
        }
    }
}

impl Shift for TemplatePart {
    fn shift(&mut self, by: Delta) {
        match self {
            TemplatePart::Text(_) => {}
            TemplatePart::Expr(e) => e.shift(by),
        }
    }
}

impl Shift for ExprKind {
    fn shift(&mut self, by: Delta) {
        match self {
            ExprKind::Int(_)
            | ExprKind::Number(_)
            | ExprKind::Duration(_)
            | ExprKind::Date(_)
            | ExprKind::DateTime(_)
            | ExprKind::Bool(_)
            | ExprKind::None => {}
            ExprKind::Str(t) => t.shift(by),
            ExprKind::Name(n) => n.shift(by),
            ExprKind::Field(e, n) => {
                e.shift(by);
                n.shift(by);
            }
            ExprKind::Call(n, args) => {
                n.shift(by);
                args.shift(by);
            }
            ExprKind::List(items) => items.shift(by),
            ExprKind::Unary(_, e) | ExprKind::Paren(e) | ExprKind::Previous(e) => e.shift(by),
            ExprKind::Binary(_, a, b) => {
                a.shift(by);
                b.shift(by);
            }
            ExprKind::If(c, a, b) => {
                c.shift(by);
                a.shift(by);
                b.shift(by);
            }
            ExprKind::Changed { subject, from, to } => {
                subject.shift(by);
                from.shift(by);
                to.shift(by);
            }
            ExprKind::CountOf {
                event,
                by: keys,
                within,
            } => {
                event.shift(by);
                keys.shift(by);
                within.shift(by);
            }
        }
    }
}
