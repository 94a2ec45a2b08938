//! Expressions: their types, constant values, and the checks on operators,
//! names, fields, calls and optionals.

use std::collections::HashMap;
use std::sync::Arc;

use super::stdlib;
use super::suggest::did_you_mean;
use super::types::*;
use super::{Checker, DefKind};
use crate::diag::{Code, Diagnostic, FileId, Span};
use crate::hir::{self, Callee as Bound, ExprKind as Kind, Lit, Operands, Operator, Place, Root};
use crate::syntax::ast::{Arg, BinaryOp, Expr, ExprKind, Name, Template, TemplatePart, UnaryOp};

/// What checking an expression gives before its node is made: its type and
/// constant, and the kind of its node.
type Out = (Ty, Kind);

fn bad() -> Out {
    (Ty::error(), Kind::Error)
}

/// A number literal, a constant when it parses.
fn number_literal(text: &str) -> Out {
    let lit = Kind::Lit(Lit::Number(text.into()));
    match text.parse::<f64>() {
        Ok(n) => (Ty::konst(Type::Number, Const::Num(n)), lit),
        Err(_) => (Ty::of(Type::Number), lit),
    }
}

/// The node of a binary operation on checked operands.
fn binary_node(op: BinaryOp, on: Operands, a: Ty, b: Ty) -> Kind {
    Kind::Binary(Operator { op, on }, Box::new(a.node), Box::new(b.node))
}

/// What is being called, for matching arguments to parameters.
pub(super) struct Callee<'p> {
    pub name: &'p str,
    /// "function" or "action", for messages.
    pub kind: &'p str,
    pub params: &'p [ParamDef],
}

/// A value known while checking (for folding conditions and checking unions).
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Const {
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(String),
}

impl Const {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Const::Int(i) => Some(*i as f64),
            Const::Num(n) => Some(*n),
            _ => None,
        }
    }
}

/// An expression's type, its value when it is a constant, and its typed node
/// (see [`hir`]).
#[derive(Clone, Debug)]
pub(super) struct Ty {
    pub ty: Type,
    pub konst: Option<Const>,
    pub node: hir::Expr,
}

/// Where a node that is being built, or was taken, is.
const NOWHERE: Loc = Loc {
    file: 0,
    span: Span { start: 0, end: 0 },
};

impl Ty {
    pub fn of(ty: Type) -> Ty {
        Ty {
            ty,
            konst: None,
            node: hir::Expr::error(NOWHERE),
        }
    }
    fn konst(ty: Type, konst: Const) -> Ty {
        Ty {
            ty,
            konst: Some(konst),
            node: hir::Expr::error(NOWHERE),
        }
    }
    /// Moves the node out (leaving an error node).
    pub fn take(&mut self) -> hir::Expr {
        std::mem::replace(&mut self.node, hir::Expr::error(NOWHERE))
    }
    /// The node, with what is still open decided (`0.5` is a float).
    pub fn finished(mut self) -> hir::Expr {
        self.node.finish();
        self.node
    }
    fn error() -> Ty {
        Ty::of(Type::Error)
    }
    pub fn str_konst(&self) -> Option<&str> {
        match &self.konst {
            Some(Const::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// A `let` or a function parameter in scope.
#[derive(Clone, Debug)]
pub(super) struct Local {
    pub name: String,
    pub ty: Type,
    pub loc: Loc,
    pub used: bool,
    pub is_param: bool,
}

/// Where a message is being sent from, while its fields are checked in the
/// sending rule's scope.
#[derive(Clone, Debug)]
pub(super) struct SendSite {
    pub file: FileId,
    pub span: Span,
    pub message: String,
}

/// The scope an expression is checked in.
#[derive(Clone, Debug)]
pub(super) struct Ctx {
    pub file: FileId,
    /// The triggering event's payload, in event-triggered rules.
    pub event: Option<RecordId>,
    pub locals: Vec<Local>,
    /// Paths (`guest.phone`) known to be present here.
    pub facts: Vec<String>,
    pub send: Option<SendSite>,
    /// Whether `envelope` and `event` exist (event-triggered rules).
    pub in_rule: bool,
    /// The trigger event is unknown (already reported): unknown names are
    /// not reported again.
    pub lenient: bool,
    /// Inside how many timer and approval blocks (which run later, without
    /// the history the rule read when it fired).
    pub suspended: u32,
    /// In a rule on what did not happen (`when no ...`), which runs when the
    /// quiet period has passed.
    pub quiet: bool,
    /// In the block of this action (`action NAME(...) do ... end`), which
    /// sees its parameters only.
    pub action: Option<String>,
}

impl Ctx {
    pub fn new(file: FileId) -> Ctx {
        Ctx {
            file,
            event: None,
            locals: Vec::new(),
            facts: Vec::new(),
            send: None,
            in_rule: false,
            lenient: false,
            suspended: 0,
            quiet: false,
            action: None,
        }
    }
}

/// The dotted path an expression reads (`guest.phone`), for narrowing optionals.
pub(super) fn path(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Name(n) => Some(n.text.clone()),
        ExprKind::Field(base, f) => path(base).map(|p| format!("{p}.{}", f.text)),
        ExprKind::Paren(inner) => path(inner),
        // Checked like any optional: `previous stage != none and ...`.
        ExprKind::Previous(inner) => path(inner).map(|p| format!("previous {p}")),
        _ => None,
    }
}

/// The paths a condition proves present when it has the value `when`.
pub(super) fn facts(e: &Expr, when: bool, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::Paren(inner) => facts(inner, when, out),
        ExprKind::Unary(UnaryOp::Not, inner) => facts(inner, !when, out),
        ExprKind::Binary(op @ (BinaryOp::Ne | BinaryOp::Eq), l, r) => {
            let proves_present = (*op == BinaryOp::Ne) == when;
            let other = match (&l.kind, &r.kind) {
                (_, ExprKind::None) => Some(l),
                (ExprKind::None, _) => Some(r),
                _ => None,
            };
            match other {
                Some(side) if proves_present => out.extend(path(side)),
                // `x == "a"` is true only when `x` is present.
                None if when && *op == BinaryOp::Eq => {
                    out.extend(path(l));
                    out.extend(path(r));
                }
                _ => {}
            }
        }
        ExprKind::Binary(BinaryOp::And, l, r) if when => {
            facts(l, true, out);
            facts(r, true, out);
        }
        ExprKind::Binary(BinaryOp::Or, l, r) if !when => {
            facts(l, false, out);
            facts(r, false, out);
        }
        _ => {}
    }
}

pub(super) fn strip_parens(e: &Expr) -> &Expr {
    match &e.kind {
        ExprKind::Paren(inner) => strip_parens(inner),
        _ => e,
    }
}

impl Checker<'_> {
    pub(super) fn expr(&mut self, cx: &mut Ctx, e: &Expr) -> Ty {
        let (mut ty, kind) = self.expr_inner(cx, e);
        let at = Loc {
            file: cx.file,
            span: e.span,
        };
        ty.node = hir::Expr::new(ty.ty.clone(), at, kind);
        ty
    }

    /// Checks `e` where a value of type `expected` is needed; reports a
    /// mismatch at `e`. `if` expressions are checked branch by branch, so
    /// string literals can fill a union. The node's number literals are
    /// decided for `expected`.
    pub(super) fn expect(&mut self, cx: &mut Ctx, e: &Expr, expected: &Type, what: &str) -> Ty {
        let at = Loc {
            file: cx.file,
            span: e.span,
        };
        if let ExprKind::If(c, t, f) = &strip_parens(e).kind {
            let cond = self.condition(cx, c).node;
            let mut then_cx = cx.clone();
            facts(c, true, &mut then_cx.facts);
            let a = self.expect(&mut then_cx, t, expected, what).node;
            cx.locals = then_cx.locals;
            let mut else_cx = cx.clone();
            facts(c, false, &mut else_cx.facts);
            let b = self.expect(&mut else_cx, f, expected, what).node;
            cx.locals = else_cx.locals;
            let mut ty = Ty::of(expected.clone());
            ty.node = hir::Expr::new(
                expected.clone(),
                at,
                Kind::If(Box::new(cond), Box::new(a), Box::new(b)),
            );
            return ty;
        }
        let ty = self.expr(cx, e);
        let mut ty = if expected.is_optional() {
            ty
        } else {
            self.present(cx, e, ty)
        };
        if !self.program.assignable(&ty.ty, ty.str_konst(), expected) {
            self.mismatch(cx.file, e, &ty, expected, what);
            let mut ty = Ty::of(expected.clone());
            ty.node = hir::Expr::error(at);
            return ty;
        }
        ty.node.settle(expected);
        ty
    }

    pub(super) fn mismatch(
        &mut self,
        file: FileId,
        e: &Expr,
        found: &Ty,
        expected: &Type,
        what: &str,
    ) {
        let (code, message, help) = match (&found.ty, expected) {
            (Type::Float | Type::Number, Type::Decimal) | (Type::Decimal, Type::Float) => (
                Code::DecimalFloatMix,
                format!("{what} must be a `{}`, but this is a `{}`", self.program.show(expected), self.program.show(&found.ty)),
                "`decimal` is exact money and never mixes with `float` silently; convert with `to_decimal(x)` or `to_float(x)`".to_string(),
            ),
            (Type::String, Type::Union(members)) => {
                let shown = self.program.show(expected);
                match found.str_konst() {
                    Some(k) => (
                        Code::NotInUnion,
                        format!("`\"{k}\"` is not one of {shown}"),
                        format!("use one of {}", members.iter().map(|m| format!("`\"{m}\"`")).collect::<Vec<_>>().join(", ")),
                    ),
                    None => (
                        Code::TypeMismatch,
                        format!("{what} must be one of {shown}, but this is any `string`"),
                        "choose the value with `if ... then \"a\" else \"b\"` so each branch is a member".to_string(),
                    ),
                }
            }
            (Type::Date, Type::DateTime) => (
                Code::TypeMismatch,
                format!("{what} must be a `datetime`, but this is a `date`"),
                "a `date` has no time of day; pick one with `at_time(day, 9, 0, \"America/Toronto\")`".to_string(),
            ),
            _ => (
                Code::TypeMismatch,
                format!("{what} must be a `{}`, but this is a `{}`", self.program.show(expected), self.program.show(&found.ty)),
                format!("give a `{}` here", self.program.show(expected)),
            ),
        };
        let label = format!("this is a `{}`", self.program.show(&found.ty));
        self.report(
            Diagnostic::new(code, file, e.span, message)
                .with_label(label)
                .with_help(help),
        );
    }

    /// The value's type without `?`, reporting a use of an unchecked optional.
    pub(super) fn present(&mut self, cx: &Ctx, e: &Expr, ty: Ty) -> Ty {
        self.present_or(cx, e, ty, None)
    }

    /// [`Self::present`], with the default the fix offers (`"ops@example.com"`
    /// for a person) rather than the type's empty value.
    pub(super) fn present_or(&mut self, cx: &Ctx, e: &Expr, ty: Ty, default: Option<&str>) -> Ty {
        match ty.ty.clone() {
            Type::Optional(inner) => {
                let text = self.text(cx.file, e.span).to_string();
                let default = default.unwrap_or(match *inner {
                    Type::String | Type::Union(_) => "\"\"",
                    Type::Int => "0",
                    Type::Float | Type::Decimal => "0.0",
                    Type::Bool => "false",
                    _ => "...",
                });
                let mut diag = Diagnostic::new(Code::UncheckedOptional, cx.file, e.span, format!("`{text}` may be absent"))
                    .with_label(format!("this is a `{}`", self.program.show(&Type::Optional(inner.clone()))))
                    .with_help(format!(
                        "check it first (`{text} != none and ...`) or give a default with `??`, such as `({text} ?? {default})`"
                    ));
                if default != "..." {
                    diag = diag.with_fix(
                        format!("give a default: `{text} ?? {default}`"),
                        e.span,
                        format!("({text} ?? {default})"),
                    );
                }
                self.report(diag);
                Ty {
                    ty: *inner,
                    konst: None,
                    node: ty.node,
                }
            }
            other => Ty {
                ty: other,
                konst: ty.konst,
                node: ty.node,
            },
        }
    }

    /// A condition: a present `bool`.
    pub(super) fn condition(&mut self, cx: &mut Ctx, e: &Expr) -> Ty {
        let ty = self.expr(cx, e);
        let ty = self.present(cx, e, ty);
        if !matches!(ty.ty, Type::Bool | Type::Error) {
            let shown = self.program.show(&ty.ty);
            let text = self.text(cx.file, e.span).to_string();
            let help = match ty.ty {
                Type::String | Type::Union(_) => format!("compare it: `{text} == \"...\"`"),
                _ if ty.ty.is_numeric() => format!("compare it: `{text} > 0`"),
                Type::List(_) => format!("test its length: `len({text}) > 0`"),
                _ => "a condition is a comparison or a `bool` field, joined with `and`, `or` and `not`".to_string(),
            };
            self.report(
                Diagnostic::new(
                    Code::ConditionNotBool,
                    cx.file,
                    e.span,
                    format!("a condition must be a `bool`, but `{text}` is a `{shown}`"),
                )
                .with_label(format!("this is a `{shown}`"))
                .with_help(help),
            );
            let mut bad = Ty::of(Type::Error);
            bad.node = hir::Expr::error(ty.node.at);
            return bad;
        }
        ty
    }

    fn expr_inner(&mut self, cx: &mut Ctx, e: &Expr) -> Out {
        match &e.kind {
            ExprKind::Int(i) => (
                Ty::konst(Type::Int, Const::Int(*i)),
                Kind::Lit(Lit::Int(*i)),
            ),
            ExprKind::Number(text) => number_literal(text),
            ExprKind::Duration(ms) => (Ty::of(Type::Duration), Kind::Lit(Lit::Duration(*ms))),
            ExprKind::Date(d) => (Ty::of(Type::Date), Kind::Lit(Lit::Date(*d))),
            ExprKind::DateTime(t) => (
                Ty::of(Type::DateTime),
                Kind::Lit(Lit::DateTime(t.with_timezone(&chrono::Utc))),
            ),
            ExprKind::Bool(b) => (
                Ty::konst(Type::Bool, Const::Bool(*b)),
                Kind::Lit(Lit::Bool(*b)),
            ),
            ExprKind::None => (Ty::of(Type::None), Kind::Lit(Lit::None)),
            ExprKind::Str(template) => self.text_template(cx, template),
            ExprKind::Paren(inner) => {
                let mut ty = self.expr(cx, inner);
                let node = ty.take();
                (ty, node.kind)
            }
            ExprKind::Name(name) => self.name(cx, name.text.as_str(), name.span, e),
            ExprKind::Previous(inner) => self.previous(cx, inner, e),
            ExprKind::Changed { subject, from, to } => {
                self.changed(cx, e, subject, from.as_deref(), to.as_deref())
            }
            ExprKind::CountOf { event, by, within } => self.count_of(cx, e, event, by, within),
            ExprKind::Field(base, field) => self.field(cx, e, base, field),
            ExprKind::Call(name, args) => {
                self.call(cx, name.text.as_str(), name.span, args, e.span)
            }
            ExprKind::List(items) => self.list(cx, items),
            ExprKind::Unary(op, inner) => self.unary(cx, *op, inner),
            ExprKind::Binary(op, l, r) => self.binary(cx, *op, l, r, e),
            ExprKind::If(c, t, f) => self.if_expr(cx, c, t, f),
        }
    }

    /// A text, plain or with `{...}` parts, each of which must be
    /// displayable.
    fn text_template(&mut self, cx: &mut Ctx, template: &Template) -> Out {
        let mut parts = Vec::new();
        for part in &template.parts {
            if let TemplatePart::Text(t) = part {
                parts.push(hir::Part::Text(t.clone()));
            }
            if let TemplatePart::Expr(inner) = part {
                let ty = self.expr(cx, inner);
                let ty = self.present(cx, inner, ty);
                if !ty.ty.is_displayable() {
                    let shown = self.program.show(&ty.ty);
                    self.report(
                        Diagnostic::new(Code::TypeMismatch, cx.file, inner.span, format!("a `{shown}` cannot be shown in text"))
                            .with_label(format!("this is a `{shown}`"))
                            .with_help("show one of its fields, or for a list of strings use `join(list, \", \")`"),
                    );
                }
                parts.push(hir::Part::Expr(ty.finished()));
            }
        }
        match template.as_plain() {
            Some(text) => {
                let lit = Kind::Lit(Lit::Str(Arc::from(text.as_str())));
                (Ty::konst(Type::String, Const::Str(text)), lit)
            }
            None => (Ty::of(Type::String), Kind::Template(parts)),
        }
    }

    /// `base.field`: a field of a record or an event, optional when the
    /// record is.
    fn field(&mut self, cx: &mut Ctx, e: &Expr, base: &Expr, field: &Name) -> Out {
        // A field of an optional record is optional: absent when the record is.
        let mut base_ty = self.expr(cx, base);
        let base_node = base_ty.take();
        let Some((ty, slot)) = self.field_slot(cx.file, base, &base_ty.ty, field) else {
            return bad();
        };
        let kind = match base_node.kind {
            Kind::Read(mut place) => {
                place.path.push(slot);
                Kind::Read(place)
            }
            Kind::Whole(root) => Kind::Read(Place {
                root,
                path: vec![slot],
            }),
            _ => Kind::Field(Box::new(base_node), slot),
        };
        (self.narrow(cx, e, ty), kind)
    }

    /// The type of `field` on a value of type `base_ty` and its slot in the
    /// record; `None`, reported, when it has no such field.
    fn field_slot(
        &mut self,
        file: FileId,
        base: &Expr,
        base_ty: &Type,
        field: &Name,
    ) -> Option<(Type, usize)> {
        let through_optional = base_ty.is_optional();
        match base_ty.present().clone() {
            Type::Error => None,
            Type::Record(id) => {
                let record = self.program.record(id);
                let found = record
                    .fields
                    .iter()
                    .enumerate()
                    .find(|(_, f)| f.name == field.text);
                match found {
                    Some((slot, f)) => {
                        let (ty, target) = (f.ty.clone(), f.loc);
                        self.refer(file, field.span, target, DefKind::Field);
                        let ty = if through_optional { ty.optional() } else { ty };
                        Some((ty, slot))
                    }
                    None => {
                        let what = if record.is_event {
                            format!("the event `{}`", record.name)
                        } else {
                            format!("`{}`", record.name)
                        };
                        let help = did_you_mean(
                            &field.text,
                            record.fields.iter().map(|f| f.name.as_str()),
                        )
                        .unwrap_or_else(|| {
                            format!("the fields of {what} are {}", field_list(record))
                        });
                        self.report(
                            Diagnostic::new(
                                Code::UnknownField,
                                file,
                                field.span,
                                format!("no field `{}` on {what}", field.text),
                            )
                            .with_label("unknown field")
                            .with_help(help),
                        );
                        None
                    }
                }
            }
            other => {
                let shown = self.program.show(&other);
                let text = self.text(file, base.span).to_string();
                self.report(
                    Diagnostic::new(
                        Code::NoFields,
                        file,
                        field.span,
                        format!("`{text}` is a `{shown}`, which has no fields"),
                    )
                    .with_secondary(file, base.span, format!("this is a `{shown}`"))
                    .with_help("only records (declared with `type`) and events have fields"),
                );
                None
            }
        }
    }

    /// `[a, b, ...]`: every item of one type, the list's element type.
    fn list(&mut self, cx: &mut Ctx, items: &[Expr]) -> Out {
        let mut elem: Option<Ty> = None;
        let mut nodes = Vec::new();
        for item in items {
            let mut ty = self.expr(cx, item);
            nodes.push(ty.take());
            elem = Some(match elem {
                None => ty,
                Some(prev) => match self.join(&prev.ty, &ty.ty) {
                    Some(t) => Ty::of(t),
                    None => {
                        let (a, b) = (self.program.show(&prev.ty), self.program.show(&ty.ty));
                        self.report(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                cx.file,
                                item.span,
                                format!("a list holds one type, but this is a `{b}` after a `{a}`"),
                            )
                            .with_label(format!("this is a `{b}`"))
                            .with_help(format!("make every item a `{a}`")),
                        );
                        Ty::error()
                    }
                },
            });
        }
        let elem = elem.map_or(Type::Error, |t| t.ty);
        for node in &mut nodes {
            node.settle(&elem);
        }
        (Ty::of(Type::List(Box::new(elem))), Kind::List(nodes))
    }

    /// `not x` on a `bool`, `-x` on a number or a duration, folded when
    /// `x` is a constant.
    fn unary(&mut self, cx: &mut Ctx, op: UnaryOp, inner: &Expr) -> Out {
        let ty = self.expr(cx, inner);
        let mut ty = self.present(cx, inner, ty);
        let node = Box::new(ty.take());
        match op {
            UnaryOp::Not => {
                if !matches!(ty.ty, Type::Bool | Type::Error) {
                    self.bad_operand(cx.file, inner, &ty.ty, "`not` applies to a `bool`");
                    return bad();
                }
                let ty = match ty.konst {
                    Some(Const::Bool(b)) => Ty::konst(Type::Bool, Const::Bool(!b)),
                    _ => Ty::of(Type::Bool),
                };
                (ty, Kind::Not(node))
            }
            UnaryOp::Neg => {
                if !(ty.ty.is_numeric() || matches!(ty.ty, Type::Duration | Type::Error)) {
                    self.bad_operand(
                        cx.file,
                        inner,
                        &ty.ty,
                        "`-` applies to numbers and durations",
                    );
                    return bad();
                }
                let konst = match ty.konst {
                    Some(Const::Int(i)) => i.checked_neg().map(Const::Int),
                    Some(Const::Num(n)) => Some(Const::Num(-n)),
                    _ => None,
                };
                let mut out = Ty::of(ty.ty);
                out.konst = konst;
                (out, Kind::Neg(node))
            }
        }
    }

    /// `if c then t else f`: each branch checked knowing whether `c`
    /// holds, both of one type.
    fn if_expr(&mut self, cx: &mut Ctx, c: &Expr, t: &Expr, f: &Expr) -> Out {
        let mut cond = self.condition(cx, c);
        let mut then_cx = cx.clone();
        facts(c, true, &mut then_cx.facts);
        let mut a = self.expr(&mut then_cx, t);
        cx.locals = then_cx.locals;
        let mut else_cx = cx.clone();
        facts(c, false, &mut else_cx.facts);
        let mut b = self.expr(&mut else_cx, f);
        cx.locals = else_cx.locals;
        match self.join(&a.ty, &b.ty) {
            Some(ty) => {
                let (mut an, mut bn) = (a.take(), b.take());
                an.settle(&ty);
                bn.settle(&ty);
                let kind = Kind::If(Box::new(cond.take()), Box::new(an), Box::new(bn));
                let mut out = Ty::of(ty);
                out.konst = match cond.konst {
                    Some(Const::Bool(true)) => a.konst,
                    Some(Const::Bool(false)) => b.konst,
                    _ => None,
                };
                (out, kind)
            }
            None => {
                let (sa, sb) = (self.program.show(&a.ty), self.program.show(&b.ty));
                self.report(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        cx.file,
                        f.span,
                        format!("`then` gives a `{sa}` but `else` gives a `{sb}`"),
                    )
                    .with_label(format!("this is a `{sb}`"))
                    .with_secondary(cx.file, t.span, format!("this is a `{sa}`"))
                    .with_help("both branches of an `if` expression must have the same type"),
                );
                bad()
            }
        }
    }

    /// An optional read at a path known to be present is not optional there.
    pub(super) fn narrow(&self, cx: &Ctx, e: &Expr, ty: Type) -> Ty {
        if ty.is_optional() && path(e).is_some_and(|p| cx.facts.contains(&p)) {
            return Ty::of(ty.present().clone());
        }
        Ty::of(ty)
    }

    fn name(&mut self, cx: &mut Ctx, name: &str, span: Span, e: &Expr) -> Out {
        let found = cx
            .locals
            .iter_mut()
            .enumerate()
            .rev()
            .find(|(_, l)| l.name == name);
        if let Some((index, local)) = found {
            local.used = true;
            let (ty, loc, kind) = (
                local.ty.clone(),
                local.loc,
                if local.is_param {
                    DefKind::Param
                } else {
                    DefKind::Let
                },
            );
            self.refer(cx.file, span, loc, kind);
            let read = Kind::Read(Place {
                root: Root::Local(index),
                path: Vec::new(),
            });
            return (self.narrow(cx, e, ty), read);
        }
        if let Some(id) = cx.event {
            let record = self.program.record(id);
            if let Some((slot, field)) = record
                .fields
                .iter()
                .enumerate()
                .find(|(_, f)| f.name == name)
            {
                let (ty, loc) = (field.ty.clone(), field.loc);
                self.refer(cx.file, span, loc, DefKind::Field);
                let read = Kind::Read(Place {
                    root: Root::Event,
                    path: vec![slot],
                });
                return (self.narrow(cx, e, ty), read);
            }
            if name == stdlib::EVENT {
                let loc = self.program.record(id).loc;
                self.refer(cx.file, span, loc, DefKind::Event);
                return (Ty::of(Type::Record(id)), Kind::Whole(Root::Event));
            }
        }
        if cx.in_rule && name == stdlib::ENVELOPE {
            if let Some(&id) = self.program.types.get(stdlib::ENVELOPE_TYPE) {
                let loc = self.program.record(id).loc;
                self.refer(cx.file, span, loc, DefKind::Type);
                return (Ty::of(Type::Record(id)), Kind::Whole(Root::Envelope));
            }
        }
        self.unknown_name(cx, name, span);
        bad()
    }

    fn unknown_name(&mut self, cx: &Ctx, name: &str, span: Span) {
        if cx.lenient {
            return;
        }
        if let Some(site) = &cx.send {
            let (what, fix) = match cx.event {
                Some(id) => {
                    let record = self.program.record(id);
                    (
                        format!("the event `{}` has no field `{name}`", record.name),
                        format!(
                            "add `{name}` to `{}`, or send a message that does not use it",
                            record.name
                        ),
                    )
                }
                None => (
                    format!("this rule has no `{name}` in scope"),
                    "bind it with `let` before the `send`, or send a message that does not use it"
                        .to_string(),
                ),
            };
            let diag = Diagnostic::new(
                Code::UnboundParameter,
                site.file,
                site.span,
                format!(
                    "the message `{}` uses `{name}`, which is not in scope here",
                    site.message
                ),
            )
            .with_label(what)
            .with_secondary(cx.file, span, format!("`{name}` is used here"))
            .with_help(fix);
            self.report(diag);
            return;
        }
        let mut candidates: Vec<String> = cx.locals.iter().map(|l| l.name.clone()).collect();
        if let Some(id) = cx.event {
            candidates.extend(
                self.program
                    .record(id)
                    .fields
                    .iter()
                    .map(|f| f.name.clone()),
            );
        }
        let suggestion = did_you_mean(name, candidates.iter().map(String::as_str));
        let is_fn = self.program.functions.contains_key(name);
        let diag = match cx.event {
            Some(id) if !is_fn => {
                let record = self.program.record(id);
                let help = suggestion.unwrap_or_else(|| {
                    format!("the fields of `{}` are {}", record.name, field_list(record))
                });
                Diagnostic::new(
                    Code::UnknownField,
                    cx.file,
                    span,
                    format!("no field `{name}` on `{}`", record.name),
                )
                .with_label("unknown field")
                .with_help(help)
            }
            _ => {
                let help = if is_fn {
                    Some(format!("`{name}` is a function: call it, `{name}(...)`"))
                } else if let (Some(action), None) = (&cx.action, &suggestion) {
                    Some(format!(
                        "an action's block sees its parameters only: declare `{name}` as one (`action {action}(..., {name}: string)`) and pass it where the action is called"
                    ))
                } else if !cx.in_rule && (name == stdlib::EVENT || name == stdlib::ENVELOPE) {
                    Some(format!(
                        "`{name}` exists only in rules triggered by an event (`when ...`)"
                    ))
                } else {
                    suggestion
                };
                let diag = Diagnostic::new(
                    Code::UnknownName,
                    cx.file,
                    span,
                    format!("no `{name}` in scope"),
                )
                .with_label("unknown name");
                match help {
                    Some(h) => diag.with_help(h),
                    None => diag,
                }
            }
        };
        self.report(diag);
    }

    fn bad_operand(&mut self, file: FileId, e: &Expr, ty: &Type, help: &str) {
        let shown = self.program.show(ty);
        let text = self.text(file, e.span).to_string();
        self.report(
            Diagnostic::new(
                Code::InvalidOperands,
                file,
                e.span,
                format!("`{text}` is a `{shown}`, which this operator does not take"),
            )
            .with_label(format!("this is a `{shown}`"))
            .with_help(help.to_string()),
        );
    }

    /// The common type of two values (if branches, list items, numbers).
    fn join(&self, a: &Type, b: &Type) -> Option<Type> {
        Some(match (a, b) {
            (Type::Error, _) | (_, Type::Error) => Type::Error,
            (a, b) if a == b => a.clone(),
            (Type::None, Type::Optional(_)) => b.clone(),
            (Type::Optional(_), Type::None) => a.clone(),
            (Type::None, other) | (other, Type::None) => other.clone().optional(),
            (Type::Optional(x), y) | (y, Type::Optional(x)) => self.join(x, y)?.optional(),
            (Type::Union(x), Type::Union(y)) => {
                let mut members: Vec<String> = x.to_vec();
                members.extend(y.iter().filter(|m| !x.contains(m)).cloned());
                Type::Union(members.into())
            }
            (Type::Union(_), Type::String) | (Type::String, Type::Union(_)) => Type::String,
            (Type::List(x), Type::List(y)) => Type::List(Box::new(self.join(x, y)?)),
            _ => return numeric_join(a, b).ok().flatten(),
        })
    }

    fn binary(&mut self, cx: &mut Ctx, op: BinaryOp, l: &Expr, r: &Expr, whole: &Expr) -> Out {
        use BinaryOp::*;
        match op {
            And | Or => return self.logical(cx, op, l, r),
            Coalesce => return self.coalesce(cx, l, r),
            _ => {}
        }

        let file = cx.file;
        let a = self.expr(cx, l);
        let b = self.expr(cx, r);
        if matches!(op, Eq | Ne) {
            return self.equality(cx, op, l, r, a, b);
        }
        let a = self.present(cx, l, a);
        let b = self.present(cx, r, b);
        if a.ty == Type::Error || b.ty == Type::Error {
            return bad();
        }
        match op {
            Lt | Le | Gt | Ge => self.ordering(file, op, l, r, a, b),
            In | NotIn => self.membership(file, op, l, r, a, b, whole.span),
            Contains => self.contains(file, l, r, a, b),
            StartsWith | EndsWith | Matches => self.text_test(file, op, l, r, a, b),
            Add | Sub | Mul | Div | Rem => self.arithmetic(file, op, l, r, a, b),
            // Handled above.
            And | Or | Coalesce | Eq | Ne => bad(),
        }
    }

    /// `l and r`, `l or r`: two conditions, `r` checked knowing what `l`
    /// says when it is evaluated; folded when the constants decide.
    fn logical(&mut self, cx: &mut Ctx, op: BinaryOp, l: &Expr, r: &Expr) -> Out {
        use BinaryOp::*;
        let mut a = self.condition(cx, l);
        let mut rcx = cx.clone();
        facts(l, op == And, &mut rcx.facts);
        let mut b = self.condition(&mut rcx, r);
        cx.locals = rcx.locals;
        let konst = match (op, &a.konst, &b.konst) {
            (And, Some(Const::Bool(false)), _) | (And, _, Some(Const::Bool(false))) => {
                Some(Const::Bool(false))
            }
            (Or, Some(Const::Bool(true)), _) | (Or, _, Some(Const::Bool(true))) => {
                Some(Const::Bool(true))
            }
            (_, Some(Const::Bool(x)), Some(Const::Bool(_))) => {
                Some(Const::Bool(*x)).and(b.konst.clone())
            }
            _ => None,
        };
        let mut out = Ty::of(Type::Bool);
        out.konst = konst;
        let on = Operator {
            op,
            on: Operands::Bool,
        };
        (
            out,
            Kind::Binary(on, Box::new(a.take()), Box::new(b.take())),
        )
    }

    /// `l ?? r`: an optional `l` with a default of its type.
    fn coalesce(&mut self, cx: &mut Ctx, l: &Expr, r: &Expr) -> Out {
        let file = cx.file;
        let mut a = self.expr(cx, l);
        let mut b = self.expr(cx, r);
        let inner = match &a.ty {
            Type::Optional(inner) => (**inner).clone(),
            Type::Error => return bad(),
            other => {
                let text = self.text(file, l.span).to_string();
                self.report(
                    Diagnostic::new(
                        Code::NeedlessDefault,
                        file,
                        r.span,
                        format!("`{text}` is never absent, so this default is never used"),
                    )
                    .with_secondary(
                        file,
                        l.span,
                        format!("this is a `{}`", self.program.show(other)),
                    )
                    .with_help(format!("remove `?? {}`", self.text(file, r.span))),
                );
                let kind = a.take().kind;
                return (a, kind);
            }
        };
        let b_present = if b.ty.is_optional() {
            b.ty.present().clone()
        } else {
            b.ty.clone()
        };
        if !self.program.assignable(&b_present, b.str_konst(), &inner) {
            self.mismatch(file, r, &b, &inner, "the default");
            return (Ty::of(inner), Kind::Error);
        }
        let ty = self.join(&inner, &b_present).unwrap_or(inner);
        let (mut an, mut bn) = (a.take(), b.take());
        an.settle(&ty);
        bn.settle(&ty);
        let ty = if b.ty.is_optional() {
            ty.optional()
        } else {
            ty
        };
        let on = Operator {
            op: BinaryOp::Coalesce,
            on: Operands::Other,
        };
        (Ty::of(ty), Kind::Binary(on, Box::new(an), Box::new(bn)))
    }

    /// `<`, `<=`, `>`, `>=` on numbers or on ordered values of one type,
    /// folded when both sides are constants.
    fn ordering(&mut self, file: FileId, op: BinaryOp, l: &Expr, r: &Expr, a: Ty, b: Ty) -> Out {
        use BinaryOp::*;
        let joined = numeric_join(&a.ty, &b.ty);
        let comparable = match &joined {
            Ok(Some(_)) => true,
            Err(()) => return self.decimal_float(file, l, r, &a.ty, &b.ty),
            Ok(None) => {
                a.ty.is_ordered()
                    && self.join(&a.ty, &b.ty).is_some()
                    && !matches!(a.ty, Type::Bool)
            }
        };
        if !comparable {
            return self.operand_mismatch(file, op, l, r, &a.ty, &b.ty);
        }
        let konst = match (
            a.konst.as_ref().and_then(Const::as_f64),
            b.konst.as_ref().and_then(Const::as_f64),
        ) {
            (Some(x), Some(y)) => Some(Const::Bool(match op {
                Lt => x < y,
                Le => x <= y,
                Gt => x > y,
                _ => x >= y,
            })),
            _ => None,
        };
        let (on, a, b) = match joined {
            Ok(Some(t)) => {
                let t = if t == Type::Number { Type::Float } else { t };
                (Operands::of_number(&t), settled(a, &t), settled(b, &t))
            }
            _ => (Operands::of(&a.ty), a, b),
        };
        let mut out = Ty::of(Type::Bool);
        out.konst = konst;
        (out, binary_node(op, on, a, b))
    }

    /// `l in r`, `l not in r`: `r` a list of things `l` may be.
    #[allow(clippy::too_many_arguments)]
    fn membership(
        &mut self,
        file: FileId,
        op: BinaryOp,
        l: &Expr,
        r: &Expr,
        a: Ty,
        b: Ty,
        span: Span,
    ) -> Out {
        let elem = match &b.ty {
            Type::List(elem) => (**elem).clone(),
            Type::String | Type::Union(_) => {
                self.report(
                    Diagnostic::new(
                        Code::InvalidOperands,
                        file,
                        span,
                        format!("`{}` needs a list on its right", op.as_str()),
                    )
                    .with_label("the right side is text")
                    .with_help(format!(
                        "to look for text inside text, write `{} contains {}`",
                        self.text(file, r.span),
                        self.text(file, l.span)
                    )),
                );
                return bad();
            }
            other => return self.operand_mismatch(file, op, l, r, &a.ty, &other.clone()),
        };
        let fits = matches!(elem, Type::Error)
            || self.program.assignable(&a.ty, a.str_konst(), &elem)
            || self.program.assignable(&elem, None, &a.ty);
        if !fits {
            return self.operand_mismatch(file, op, l, &strip_parens(r).clone(), &a.ty, &b.ty);
        }
        if let Type::Union(members) = &a.ty {
            self.items_in_union(file, l, r, members);
        }
        let item = if elem == Type::Error {
            a.ty.clone()
        } else {
            elem
        };
        let list = Type::List(Box::new(item.clone()));
        let (a, b) = (settled(a, &item), settled(b, &list));
        let (a, b) = (finished(a), finished(b));
        (Ty::of(Type::Bool), binary_node(op, Operands::List, a, b))
    }

    /// The texts of a list literal `r` that a union `l` is looked for in
    /// are members of the union.
    fn items_in_union(&mut self, file: FileId, l: &Expr, r: &Expr, members: &[String]) {
        let ExprKind::List(items) = &strip_parens(r).kind else {
            return;
        };
        let text = self.text(file, l.span).to_string();
        for item in items {
            if let ExprKind::Str(t) = &item.kind {
                if let Some(v) = t.as_plain() {
                    if !members.contains(&v) {
                        self.not_in_union(
                            file,
                            item.span,
                            &text,
                            &v,
                            members,
                            "this item never matches",
                        );
                    }
                }
            }
        }
    }

    /// `l contains r`: text in text, or an item in a list.
    fn contains(&mut self, file: FileId, l: &Expr, r: &Expr, a: Ty, b: Ty) -> Out {
        use BinaryOp::Contains;
        let ok = match &a.ty {
            Type::String | Type::Union(_) => b.ty.is_stringy(),
            Type::List(elem) => self.program.assignable(&b.ty, b.str_konst(), elem),
            _ => false,
        };
        if !ok {
            return self.operand_mismatch(file, Contains, l, r, &a.ty, &b.ty);
        }
        let kind = match &a.ty {
            Type::List(elem) => {
                let elem = (**elem).clone();
                binary_node(Contains, Operands::List, a, finished(settled(b, &elem)))
            }
            _ => binary_node(Contains, Operands::Text, a, b),
        };
        (Ty::of(Type::Bool), kind)
    }

    /// `starts with`, `ends with`, `matches`: tests of text, a literal
    /// pattern of `matches` a valid regular expression.
    fn text_test(&mut self, file: FileId, op: BinaryOp, l: &Expr, r: &Expr, a: Ty, b: Ty) -> Out {
        if !a.ty.is_stringy() || !b.ty.is_stringy() {
            return self.operand_mismatch(file, op, l, r, &a.ty, &b.ty);
        }
        if op == BinaryOp::Matches {
            if let Some(pattern) = b.str_konst() {
                self.literal_regex(file, r.span, pattern);
            }
        }
        (Ty::of(Type::Bool), binary_node(op, Operands::Text, a, b))
    }

    /// A literal pattern of `matches` is a valid regular expression.
    fn literal_regex(&mut self, file: FileId, span: Span, pattern: &str) {
        if let Err(err) = regex::Regex::new(pattern) {
            let detail = err.to_string();
            let reason = detail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string();
            self.report(
                Diagnostic::new(Code::InvalidRegex, file, span, format!("invalid regular expression: {reason}"))
                    .with_help("the syntax is Rust's `regex` (like Perl's, without look-around); write patterns with `\\` or `{` as raw strings, `r\"\\d{3}\"`"),
            );
        }
    }

    pub(super) fn equality(
        &mut self,
        cx: &mut Ctx,
        op: BinaryOp,
        l: &Expr,
        r: &Expr,
        a: Ty,
        b: Ty,
    ) -> Out {
        let file = cx.file;
        if a.ty == Type::Error || b.ty == Type::Error {
            return (Ty::of(Type::Bool), Kind::Error);
        }
        let node = |on: Operands, a: Ty, b: Ty| {
            Kind::Binary(Operator { op, on }, Box::new(a.node), Box::new(b.node))
        };
        // Comparing with `none` asks whether an optional is there.
        if a.ty == Type::None || b.ty == Type::None {
            let (side, ty) = if a.ty == Type::None {
                (r, &b.ty)
            } else {
                (l, &a.ty)
            };
            if !ty.is_optional() && *ty != Type::None {
                let text = self.text(file, side.span).to_string();
                let always = if op == BinaryOp::Eq {
                    Code::AlwaysFalse
                } else {
                    Code::AlwaysTrue
                };
                self.report(
                    Diagnostic::new(
                        always,
                        file,
                        l.span.to(r.span),
                        format!(
                            "`{text}` is never absent, so this is always {}",
                            op == BinaryOp::Ne
                        ),
                    )
                    .with_secondary(
                        file,
                        side.span,
                        format!("this is a `{}`", self.program.show(ty)),
                    )
                    .with_help("only optional values (`T?`) can be `none`"),
                );
                let out = Ty::konst(Type::Bool, Const::Bool(op == BinaryOp::Ne));
                return (out, node(Operands::Other, a, b));
            }
            return (Ty::of(Type::Bool), node(Operands::Other, a, b));
        }
        let (pa, pb) = (a.ty.present().clone(), b.ty.present().clone());
        let joined = match numeric_join(&pa, &pb) {
            Err(()) => return self.decimal_float(file, l, r, &pa, &pb),
            Ok(joined) => joined,
        };
        let Some(common) = self.join(&pa, &pb) else {
            return self.operand_mismatch(file, op, l, r, &pa, &pb);
        };
        // A union compared with text outside it.
        let mut outside = false;
        for (u, other, other_ty) in [(&pa, r, &b), (&pb, l, &a)] {
            if let (Type::Union(members), Some(k)) = (u, other_ty.str_konst()) {
                if !outside && !members.iter().any(|m| m == k) {
                    let union_side = if std::ptr::eq(other, r) { l } else { r };
                    let text = self.text(file, union_side.span).to_string();
                    let outcome = if op == BinaryOp::Eq {
                        "this condition is always false"
                    } else {
                        "this condition is always true"
                    };
                    self.not_in_union(file, other.span, &text, k, members, outcome);
                    outside = true;
                }
            }
        }
        if outside {
            // Reported once, not again as a constant condition.
            return (Ty::of(Type::Bool), node(Operands::Text, a, b));
        }
        if let (Type::Union(x), Type::Union(y)) = (&pa, &pb) {
            if !x.iter().any(|m| y.contains(m)) {
                return self.operand_mismatch(file, op, l, r, &pa, &pb);
            }
        }
        let konst = match (&a.konst, &b.konst) {
            (Some(x), Some(y)) => {
                let equal = match (x.as_f64(), y.as_f64()) {
                    (Some(p), Some(q)) => p == q,
                    _ => x == y,
                };
                Some(Const::Bool(equal == (op == BinaryOp::Eq)))
            }
            _ => None,
        };
        let (on, a, b) = match joined {
            Some(t) => {
                let t = if t == Type::Number { Type::Float } else { t };
                (Operands::of_number(&t), settled(a, &t), settled(b, &t))
            }
            None => (Operands::of(&common), finished(a), finished(b)),
        };
        let mut out = Ty::of(Type::Bool);
        out.konst = konst;
        (out, node(on, a, b))
    }

    fn not_in_union(
        &mut self,
        file: FileId,
        span: Span,
        text: &str,
        value: &str,
        members: &[String],
        outcome: &str,
    ) {
        let listed = members
            .iter()
            .map(|m| format!("`\"{m}\"`"))
            .collect::<Vec<_>>()
            .join(", ");
        let help = match did_you_mean(value, members.iter().map(String::as_str)) {
            Some(dym) => format!("{dym} `{text}` is one of {listed}"),
            None => format!("`{text}` is one of {listed}; if `\"{value}\"` can happen, add it to the declaration"),
        };
        self.report(
            Diagnostic::new(
                Code::NotInUnion,
                file,
                span,
                format!("`{text}` is never `\"{value}\"`; {outcome}"),
            )
            .with_label(format!("not one of the values of `{text}`"))
            .with_help(help),
        );
    }

    fn decimal_float(&mut self, file: FileId, l: &Expr, r: &Expr, a: &Type, b: &Type) -> Out {
        let (lt, rt) = (self.program.show(a), self.program.show(b));
        let (ltext, rtext) = (
            self.text(file, l.span).to_string(),
            self.text(file, r.span).to_string(),
        );
        self.report(
            Diagnostic::new(Code::DecimalFloatMix, file, r.span, format!("`{ltext}` is a `{lt}` and `{rtext}` is a `{rt}`; `decimal` never mixes with `float`"))
                .with_label(format!("this is a `{rt}`"))
                .with_secondary(file, l.span, format!("this is a `{lt}`"))
                .with_help("`decimal` is exact money; convert one side explicitly with `to_decimal(x)` or `to_float(x)`"),
        );
        bad()
    }

    fn operand_mismatch(
        &mut self,
        file: FileId,
        op: BinaryOp,
        l: &Expr,
        r: &Expr,
        a: &Type,
        b: &Type,
    ) -> Out {
        let (lt, rt) = (self.program.show(a), self.program.show(b));
        let (ltext, rtext) = (
            self.text(file, l.span).to_string(),
            self.text(file, r.span).to_string(),
        );
        let help = match op {
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                format!("`{}` compares two numbers, two strings, two dates, two datetimes or two durations; compare `{ltext}` with a `{lt}`", op.as_str())
            }
            BinaryOp::Eq | BinaryOp::Ne => format!("compare `{ltext}` with another `{lt}`"),
            BinaryOp::In | BinaryOp::NotIn => {
                format!("`{}` needs a list of `{lt}` on its right", op.as_str())
            }
            BinaryOp::Contains => {
                "`contains` looks for text in text, or an item in a list of that item's type"
                    .to_string()
            }
            BinaryOp::StartsWith | BinaryOp::EndsWith | BinaryOp::Matches => {
                format!("`{}` takes text on both sides", op.as_str())
            }
            _ => format!("`{}` does not apply to a `{lt}` and a `{rt}`", op.as_str()),
        };
        self.report(
            Diagnostic::new(
                Code::InvalidOperands,
                file,
                r.span,
                format!("mismatched types: `{ltext}` is a `{lt}`, `{rtext}` is a `{rt}`"),
            )
            .with_label(format!("this is a `{rt}`"))
            .with_secondary(file, l.span, format!("this is a `{lt}`"))
            .with_help(help),
        );
        bad()
    }

    fn arithmetic(&mut self, file: FileId, op: BinaryOp, l: &Expr, r: &Expr, a: Ty, b: Ty) -> Out {
        use BinaryOp::*;
        let node = |on: Operands, a: Ty, b: Ty| {
            Kind::Binary(Operator { op, on }, Box::new(a.node), Box::new(b.node))
        };
        match numeric_join(&a.ty, &b.ty) {
            Err(()) => return self.decimal_float(file, l, r, &a.ty, &b.ty),
            Ok(Some(ty)) => {
                if op == Rem && matches!(ty, Type::Float | Type::Number) {
                    let span = l.span.to(r.span);
                    self.report(
                        Diagnostic::new(Code::InvalidOperands, file, span, "`%` does not apply to `float` values")
                            .with_label("a remainder of floats")
                            .with_help("`%` gives the remainder of `int` or `decimal` values; convert with `to_decimal(x)`, or use a `decimal` field"),
                    );
                    return bad();
                }
                let konst = match (&a.konst, &b.konst) {
                    (Some(Const::Int(x)), Some(Const::Int(y))) => match op {
                        Add => x.checked_add(*y),
                        Sub => x.checked_sub(*y),
                        Mul => x.checked_mul(*y),
                        _ => None,
                    }
                    .map(Const::Int),
                    _ => None,
                };
                // An undecided `0.5 * 2` waits for its use to decide.
                let (a, b) = (settled(a, &ty), settled(b, &ty));
                let mut out = Ty::of(ty.clone());
                out.konst = konst;
                return (out, node(Operands::of_number(&ty), a, b));
            }
            Ok(None) => {}
        }
        // Durations times numbers: an undecided number is a float.
        let (a, b) = (finished(a), finished(b));
        let ty = match (op, &a.ty, &b.ty) {
            (Add, Type::String | Type::Union(_), Type::String | Type::Union(_)) => {
                let konst = match (a.str_konst(), b.str_konst()) {
                    (Some(x), Some(y)) => Some(Const::Str(format!("{x}{y}"))),
                    _ => None,
                };
                let mut out = Ty::of(Type::String);
                out.konst = konst;
                return (out, node(Operands::Text, a, b));
            }
            (Add, Type::DateTime, Type::Duration)
            | (Add, Type::Duration, Type::DateTime)
            | (Sub, Type::DateTime, Type::Duration) => Type::DateTime,
            (Add, Type::Date, Type::Duration)
            | (Add, Type::Duration, Type::Date)
            | (Sub, Type::Date, Type::Duration) => Type::Date,
            (Sub, Type::DateTime, Type::DateTime) | (Sub, Type::Date, Type::Date) => Type::Duration,
            (Add | Sub, Type::Duration, Type::Duration) => Type::Duration,
            (Mul, Type::Duration, Type::Int | Type::Float | Type::Number)
            | (Mul, Type::Int | Type::Float | Type::Number, Type::Duration) => Type::Duration,
            (Div, Type::Duration, Type::Int | Type::Float | Type::Number) => Type::Duration,
            (Div, Type::Duration, Type::Duration) => Type::Float,
            (Add, Type::List(x), Type::List(y)) => match self.join(x, y) {
                Some(t) => {
                    let list = Type::List(Box::new(t));
                    let (a, b) = (settled(a, &list), settled(b, &list));
                    return (Ty::of(list), node(Operands::List, a, b));
                }
                None => return self.operand_mismatch(file, op, l, r, &a.ty, &b.ty),
            },
            _ => return self.operand_mismatch(file, op, l, r, &a.ty, &b.ty),
        };
        let on = match (&a.ty, &b.ty) {
            (Type::Duration, Type::Duration) => Operands::Duration,
            _ => Operands::Time,
        };
        (Ty::of(ty), node(on, a, b))
    }

    /// A call of a function in an expression.
    fn call(&mut self, cx: &mut Ctx, name: &str, name_span: Span, args: &[Arg], span: Span) -> Out {
        let mut arg_tys: Vec<Ty> = args.iter().map(|a| self.expr(cx, &a.value)).collect();
        let Some(sigs) = self.program.functions.get(name).cloned() else {
            let builtin = super::actions::builtin(name);
            if builtin.is_some() || self.program.actions.contains_key(name) {
                let help = match builtin {
                    None => format!("run it as a statement on its own line: `{name}(...)`"),
                    Some(b) => format!("`{name}` is run as a statement: `{}`", b.form),
                };
                self.report(
                    Diagnostic::new(
                        Code::WrongKindOfCall,
                        cx.file,
                        name_span,
                        format!("`{name}` is an action, not a function; it has no value"),
                    )
                    .with_help(help),
                );
                self.detach(arg_tys);
                return bad();
            }
            let candidates: Vec<String> = self.program.functions.keys().cloned().collect();
            let mut diag = Diagnostic::new(
                Code::UnknownFunction,
                cx.file,
                name_span,
                format!("no function `{name}`"),
            )
            .with_label("unknown function");
            if let Some(help) = did_you_mean(name, candidates.iter().map(String::as_str)) {
                diag = diag.with_help(help);
            }
            self.report(diag);
            self.detach(arg_tys);
            return bad();
        };
        if let Some(first) = sigs.first() {
            self.refer(cx.file, name_span, first.loc, DefKind::Function);
        }
        // The first signature whose parameters take the arguments.
        for (overload, sig) in sigs.iter().enumerate() {
            if let Some(mut bound) = self.fits(sig, args, &arg_tys) {
                if sig.kind == FnKind::Builtin {
                    self.literal_args(cx.file, sig, args, &arg_tys);
                }
                // A type parameter only literals bound (`min(0.5, 1.5)`) is a float.
                for ty in bound.values_mut() {
                    if *ty == Type::Number {
                        *ty = Type::Float;
                    }
                }
                let callee = self.callee(name, sig, overload);
                let nodes = bound_args(cx.file, span, sig, &bound, args, &mut arg_tys);
                return (
                    Ty::of(sig.ret.substitute(&bound)),
                    Kind::Call(callee, nodes),
                );
            }
        }
        if let [sig] = sigs.as_slice() {
            self.check_args(
                cx,
                Callee {
                    name: &sig.name,
                    kind: "function",
                    params: &sig.params,
                },
                args,
                &arg_tys,
                span,
            );
            let callee = self.callee(name, sig, 0);
            let bound = HashMap::new();
            let nodes = bound_args(cx.file, span, sig, &bound, args, &mut arg_tys);
            return (
                Ty::of(sig.ret.substitute(&bound)),
                Kind::Call(callee, nodes),
            );
        }
        let given: Vec<String> = arg_tys
            .iter()
            .map(|t| format!("`{}`", self.program.show(&t.ty)))
            .collect();
        let versions: Vec<String> = sigs.iter().map(|s| self.signature(s)).collect();
        self.report(
            Diagnostic::new(
                Code::TypeMismatch,
                cx.file,
                span,
                format!("no version of `{name}` takes ({})", given.join(", ")),
            )
            .with_label("no matching version")
            .with_help(format!("the versions are: {}", versions.join("; "))),
        );
        self.detach(arg_tys);
        bad()
    }

    /// What a call of `sig` (overload `overload` of `name`) runs.
    fn callee(&self, name: &str, sig: &FnSig, overload: usize) -> Bound {
        match sig.kind {
            FnKind::Builtin => Bound::Builtin {
                name: Arc::from(name),
                overload: u32::try_from(overload).unwrap_or(u32::MAX),
            },
            FnKind::Steward | FnKind::Rhai => match self.fn_ids.get(name) {
                Some(id) => Bound::User(*id),
                None => Bound::Builtin {
                    name: Arc::from(name),
                    overload: u32::MAX,
                },
            },
        }
    }

    /// Keeps the nodes of expressions that are not part of the program, for
    /// the editor's hover.
    pub(super) fn detach(&mut self, tys: Vec<Ty>) {
        self.hir.detached.extend(tys.into_iter().map(|t| t.node));
    }

    /// What can be known before running about the arguments of a built-in
    /// call: a literal time zone exists, a literal `format_date` pattern
    /// formats a value of its type, `to_string` gets something with a text.
    fn literal_args(&mut self, file: FileId, sig: &FnSig, args: &[Arg], tys: &[Ty]) {
        for ((param, arg), ty) in sig.params.iter().zip(args).zip(tys) {
            if sig.name == "to_string" && self.holds_record(&ty.ty) {
                let shown = self.program.show(&ty.ty);
                self.report(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        file,
                        arg.value.span,
                        format!("a `{shown}` cannot be shown in text"),
                    )
                    .with_label(format!("this is a `{shown}`"))
                    .with_help(
                        "show its fields instead, such as `\"{guest.first_name} <{guest.email}>\"`",
                    ),
                );
            }
            let Some(text) = ty.str_konst() else {
                continue;
            };
            match param.name.as_str() {
                "zone" => self.known_zone(file, arg.value.span, text),
                "pattern" if sig.name == "format_date" => {
                    let on_date = sig.params.first().is_some_and(|p| p.ty == Type::Date);
                    if let Err(problem) = try_pattern(text, on_date) {
                        self.report(
                            Diagnostic::new(Code::InvalidLiteral, file, arg.value.span, format!("`{text}` is not a pattern `format_date` can use: {problem}"))
                                .with_help("patterns are strftime-style, such as `\"%Y-%m-%d\"`, `\"%A %B %-d\"` or `\"%H:%M\"`; `%%` is a percent sign"),
                        );
                    }
                }
                _ => {}
            }
        }
    }

    fn holds_record(&self, ty: &Type) -> bool {
        match ty {
            Type::Record(_) => true,
            Type::List(inner) | Type::Optional(inner) => self.holds_record(inner),
            _ => false,
        }
    }

    /// Reports `name` unless it is an IANA time zone.
    pub(super) fn known_zone(&mut self, file: FileId, span: Span, name: &str) {
        if name.parse::<chrono_tz::Tz>().is_ok() {
            return;
        }
        let help = did_you_mean(name, chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()))
            .unwrap_or_else(|| {
                "use an IANA time zone name such as `\"America/Toronto\"` or `\"UTC\"`".to_string()
            });
        self.report(
            Diagnostic::new(
                Code::UnknownTimeZone,
                file,
                span,
                format!("unknown time zone `{name}`"),
            )
            .with_help(help),
        );
    }

    pub(super) fn signature(&self, sig: &FnSig) -> String {
        let params: Vec<String> = sig
            .params
            .iter()
            .map(|p| format!("{}: {}", p.name, self.program.show(&p.ty)))
            .collect();
        format!(
            "{}({}) -> {}",
            sig.name,
            params.join(", "),
            self.program.show(&sig.ret)
        )
    }

    /// Whether positional arguments fit a signature; the bound type parameters if so.
    fn fits(&self, sig: &FnSig, args: &[Arg], tys: &[Ty]) -> Option<HashMap<u32, Type>> {
        if args.iter().any(|a| a.name.is_some()) || args.len() != sig.params.len() {
            return None;
        }
        let mut bound = HashMap::new();
        // Literals last: in `min(0.5, risk)` the type parameter is `risk`'s
        // type, which `0.5` then fits, as in `min(risk, 0.5)`.
        let mut order: Vec<_> = sig.params.iter().zip(tys).collect();
        order.sort_by_key(|(_, ty)| ty.konst.is_some());
        for (param, ty) in order {
            if !self.bind(&param.ty, ty, &mut bound) {
                return None;
            }
        }
        Some(bound)
    }

    fn bind(&self, param: &Type, arg: &Ty, bound: &mut HashMap<u32, Type>) -> bool {
        match param {
            Type::Var(v) => match bound.get(v) {
                Some(b) => self.program.assignable(&arg.ty, arg.str_konst(), b),
                None => {
                    if arg.ty.is_optional() {
                        return false;
                    }
                    bound.insert(*v, arg.ty.clone());
                    true
                }
            },
            Type::List(p) => match &arg.ty {
                Type::List(a) => self.bind(p, &Ty::of((**a).clone()), bound),
                Type::Error => true,
                _ => false,
            },
            other => self.program.assignable(&arg.ty, arg.str_konst(), other),
        }
    }

    /// Matches arguments to parameters by position, then by name, reporting
    /// what is missing, unknown, repeated or of the wrong type.
    pub(super) fn check_args(
        &mut self,
        cx: &mut Ctx,
        callee: Callee<'_>,
        args: &[Arg],
        tys: &[Ty],
        span: Span,
    ) {
        let file = cx.file;
        let (filled, bad) = self.arg_slots(file, &callee, args);
        if !bad {
            self.missing_args(file, &callee, args.len(), &filled, span);
        }
        self.arg_types(cx, callee.params, args, tys, &filled);
    }

    /// The argument filling each parameter, and whether an argument was
    /// reported as out of place, extra, repeated or unknown.
    fn arg_slots(
        &mut self,
        file: FileId,
        callee: &Callee<'_>,
        args: &[Arg],
    ) -> (Vec<Option<usize>>, bool) {
        let mut filled: Vec<Option<usize>> = vec![None; callee.params.len()];
        let mut seen_named = false;
        let mut bad = false;
        for (i, arg) in args.iter().enumerate() {
            let slot = match &arg.name {
                None => self.positional_slot(file, callee, args, i, seen_named),
                Some(name) => {
                    seen_named = true;
                    self.named_slot(file, callee, name, &filled)
                }
            };
            match slot.and_then(|slot| filled.get_mut(slot)) {
                Some(slot) => *slot = Some(i),
                None => bad = true,
            }
        }
        (filled, bad)
    }

    /// The parameter the positional argument `i` fills; `None`, reported,
    /// when it follows a named one or there is no parameter left.
    fn positional_slot(
        &mut self,
        file: FileId,
        callee: &Callee<'_>,
        args: &[Arg],
        i: usize,
        seen_named: bool,
    ) -> Option<usize> {
        let Callee {
            name: callee,
            kind,
            params,
        } = *callee;
        let arg = args.get(i)?;
        if seen_named {
            self.report(
                Diagnostic::new(
                    Code::BadArgument,
                    file,
                    arg.span,
                    "a positional argument cannot follow a named one",
                )
                .with_help("put positional arguments first, or name this one too"),
            );
            return None;
        }
        if i >= params.len() {
            let noun = if params.len() == 1 {
                "argument"
            } else {
                "arguments"
            };
            self.report(
                Diagnostic::new(
                    Code::ArgumentCount,
                    file,
                    arg.span,
                    format!(
                        "`{callee}` takes {} {noun}, but {} were given",
                        params.len(),
                        args.len()
                    ),
                )
                .with_label("extra argument")
                .with_help(format!(
                    "the {kind} is `{callee}({})`",
                    param_list(&self.program, params)
                )),
            );
            return None;
        }
        Some(i)
    }

    /// The parameter the argument named `name` fills; `None`, reported,
    /// when it is given twice or there is no such parameter.
    fn named_slot(
        &mut self,
        file: FileId,
        callee: &Callee<'_>,
        name: &Name,
        filled: &[Option<usize>],
    ) -> Option<usize> {
        let params = callee.params;
        match params.iter().position(|p| p.name == name.text) {
            Some(p) => {
                if matches!(filled.get(p), Some(Some(_))) {
                    self.report(
                        Diagnostic::new(
                            Code::BadArgument,
                            file,
                            name.span,
                            format!("`{}` is given twice", name.text),
                        )
                        .with_help("give each argument once"),
                    );
                    return None;
                }
                Some(p)
            }
            None => {
                let help = did_you_mean(&name.text, params.iter().map(|p| p.name.as_str()))
                    .unwrap_or_else(|| {
                        format!("the parameters are {}", param_list(&self.program, params))
                    });
                self.report(
                    Diagnostic::new(
                        Code::BadArgument,
                        file,
                        name.span,
                        format!("`{}` has no parameter `{}`", callee.name, name.text),
                    )
                    .with_help(help),
                );
                None
            }
        }
    }

    /// Reports the required parameters no argument fills. An optional
    /// parameter (`note: string?`) may be left out: it is absent then.
    fn missing_args(
        &mut self,
        file: FileId,
        callee: &Callee<'_>,
        given: usize,
        filled: &[Option<usize>],
        span: Span,
    ) {
        let params = callee.params;
        let missing: Vec<&ParamDef> = params
            .iter()
            .zip(filled)
            .filter(|(p, f)| f.is_none() && !p.ty.is_optional())
            .map(|(p, _)| p)
            .collect();
        if missing.is_empty() {
            return;
        }
        let noun = if params.len() == 1 {
            "argument"
        } else {
            "arguments"
        };
        let described: Vec<String> = missing
            .iter()
            .map(|p| format!("`{}: {}`", p.name, self.program.show(&p.ty)))
            .collect();
        let verb = if missing.len() == 1 { "is" } else { "are" };
        self.report(
            Diagnostic::new(
                Code::ArgumentCount,
                file,
                span,
                format!(
                    "`{}` takes {} {noun}, but {given} {} given",
                    callee.name,
                    params.len(),
                    if given == 1 { "was" } else { "were" }
                ),
            )
            .with_label(format!("{given} given"))
            .with_help(format!("{} {verb} missing", described.join(" and "))),
        );
    }

    /// Reports each argument whose type does not fit its parameter's, the
    /// type variables of generic parameters bound by the arguments before.
    fn arg_types(
        &mut self,
        cx: &mut Ctx,
        params: &[ParamDef],
        args: &[Arg],
        tys: &[Ty],
        filled: &[Option<usize>],
    ) {
        let mut bound = HashMap::new();
        for (p, f) in params.iter().zip(filled) {
            if let Some((arg, ty)) = f.and_then(|i| Some((args.get(i)?, tys.get(i)?))) {
                if !self.bind(&p.ty, ty, &mut bound) {
                    let expected = p.ty.substitute(&bound);
                    let ty = if expected.is_optional() {
                        ty.clone()
                    } else {
                        self.present(cx, &arg.value, ty.clone())
                    };
                    if !self.program.assignable(&ty.ty, ty.str_konst(), &expected) {
                        self.mismatch(
                            cx.file,
                            &arg.value,
                            &ty,
                            &expected,
                            &format!("the argument `{}`", p.name),
                        );
                    }
                }
            }
        }
    }
}

/// The argument nodes of a call of `sig`, in parameter order (a missing one
/// is `none`), each settled to its parameter's type.
pub(super) fn bound_args(
    file: FileId,
    span: Span,
    sig: &FnSig,
    bound: &HashMap<u32, Type>,
    args: &[Arg],
    tys: &mut [Ty],
) -> Vec<hir::Expr> {
    let at = Loc { file, span };
    let order = order_args(&sig.params, args);
    sig.params
        .iter()
        .zip(order)
        .map(|(param, i)| match i.and_then(|i| tys.get_mut(i)) {
            Some(ty) => {
                let mut node = ty.take();
                node.settle(&param.ty.substitute(bound));
                node.finish();
                node
            }
            None => hir::Expr::none(at),
        })
        .collect()
}

/// Which argument fills each parameter: positional ones first, then by name.
pub(super) fn order_args(params: &[ParamDef], args: &[Arg]) -> Vec<Option<usize>> {
    let mut out: Vec<Option<usize>> = vec![None; params.len()];
    let mut next = 0;
    for (i, arg) in args.iter().enumerate() {
        match &arg.name {
            None => {
                if let Some(slot) = out.get_mut(next) {
                    *slot = Some(i);
                }
                next += 1;
            }
            Some(n) => {
                if let Some(p) = params.iter().position(|p| p.name == n.text) {
                    if let Some(slot) = out.get_mut(p) {
                        *slot = Some(i);
                    }
                }
            }
        }
    }
    out
}

/// `ty`'s node settled for a use that needs `to`.
fn settled(mut ty: Ty, to: &Type) -> Ty {
    ty.node.settle(to);
    ty
}

/// `ty`'s node with what is open decided.
fn finished(mut ty: Ty) -> Ty {
    ty.node.finish();
    ty
}

/// `Ok(Some(t))`: both numeric with common type `t`; `Ok(None)`: not both
/// numeric; `Err`: `decimal` against `float`.
fn numeric_join(a: &Type, b: &Type) -> Result<Option<Type>, ()> {
    Ok(Some(match (a, b) {
        (Type::Int, Type::Int) => Type::Int,
        (Type::Number, Type::Number) | (Type::Number, Type::Int) | (Type::Int, Type::Number) => {
            Type::Number
        }
        (Type::Float, Type::Float | Type::Int | Type::Number)
        | (Type::Int | Type::Number, Type::Float) => Type::Float,
        (Type::Decimal, Type::Decimal | Type::Int | Type::Number)
        | (Type::Int | Type::Number, Type::Decimal) => Type::Decimal,
        (Type::Float, Type::Decimal) | (Type::Decimal, Type::Float) => return Err(()),
        _ => return Ok(None),
    }))
}

/// The fields of a record for messages: `` `a`, `b` ``, or `none`.
pub(super) fn field_list(record: &RecordDef) -> String {
    if record.fields.is_empty() {
        return "none".to_string();
    }
    record
        .fields
        .iter()
        .map(|f| format!("`{}`", f.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn param_list(program: &Program, params: &[ParamDef]) -> String {
    params
        .iter()
        .map(|p| format!("{}: {}", p.name, program.show(&p.ty)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Formats a fixed date (or time) with `pattern`, as `format_date` will.
fn try_pattern(pattern: &str, on_date: bool) -> Result<(), &'static str> {
    use chrono::format::{Item, StrftimeItems};
    use std::fmt::Write;
    let items: Vec<Item> = StrftimeItems::new(pattern).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err("it has an unknown `%` directive");
    }
    let mut out = String::new();
    let written = if on_date {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
        write!(out, "{}", day.format_with_items(items.into_iter()))
    } else {
        let time = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        write!(out, "{}", time.format_with_items(items.into_iter()))
    };
    written.map_err(|_| "a `date` has no time of day or zone to show")
}
