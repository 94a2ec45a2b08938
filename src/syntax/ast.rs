//! The syntax tree. Every node carries a byte [`Span`] into its file; nothing
//! here knows about lines, columns, types or the engine.

use crate::diag::Span;

/// A name as written, with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    pub text: String,
    pub span: Span,
}

/// A string without interpolation: a URL, a cron expression, a union member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrLit {
    pub value: String,
    pub span: Span,
}

/// One parsed file: its items (broken items are [`Item::Error`]) and where its
/// keywords are, for highlighting.
#[derive(Clone, Debug, Default)]
pub struct SourceFile {
    pub items: Vec<Item>,
    pub keywords: Vec<Span>,
    /// Every comment, `#` and `##`, in source order.
    pub comments: Vec<Span>,
}

#[derive(Clone, Debug)]
pub enum Item {
    Type(TypeDecl),
    Event(EventDecl),
    Message(MessageDecl),
    Action(ActionDecl),
    Fn(FnDecl),
    ExternFn(ExternFnDecl),
    Rule(RuleDecl),
    Test(TestDecl),
    /// An item that did not parse; its diagnostic was reported.
    Error(Span),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Type(d) => d.span,
            Item::Event(d) => d.span,
            Item::Message(d) => d.span,
            Item::Action(d) => d.span,
            Item::Fn(d) => d.span,
            Item::ExternFn(d) => d.span,
            Item::Rule(d) => d.span,
            Item::Test(d) => d.span,
            Item::Error(span) => *span,
        }
    }
}

/// `test "name" ... end`: steps run in order against the program's rules.
#[derive(Clone, Debug)]
pub struct TestDecl {
    pub span: Span,
    pub name: StrLit,
    pub steps: Vec<TestStep>,
}

#[derive(Clone, Debug)]
pub struct TestStep {
    pub span: Span,
    pub kind: TestStepKind,
}

#[derive(Clone, Debug)]
pub enum TestStepKind {
    /// `given [partial] event.type [key "k"] { field: value, ... }`
    Given {
        partial: bool,
        event: Name,
        key: Option<Expr>,
        payload: TestRecord,
    },
    /// `wait 2d` or `wait until 2026-12-01T09:00:00Z`
    Wait { until: bool, value: Expr },
    /// `approve` or `reject` the oldest pending approval.
    Decide { approve: bool },
    /// `expect [no] action [target] [{ arg: value, ... }]`
    Expect {
        negated: bool,
        action: Name,
        target: Option<Name>,
        args: Option<TestRecord>,
    },
    /// `expect nothing`: no action left unmatched.
    ExpectNothing,
}

/// `{ field: value, ... }` in a test, where values may be records again.
#[derive(Clone, Debug)]
pub struct TestRecord {
    pub span: Span,
    pub fields: Vec<TestField>,
}

#[derive(Clone, Debug)]
pub struct TestField {
    pub span: Span,
    pub name: Name,
    pub value: TestValue,
}

#[derive(Clone, Debug)]
pub enum TestValue {
    Expr(Expr),
    Record(TestRecord),
}

#[derive(Clone, Debug)]
pub struct TypeDecl {
    pub span: Span,
    pub name: Name,
    pub fields: Vec<FieldDecl>,
}

#[derive(Clone, Debug)]
pub struct EventDecl {
    pub span: Span,
    pub name: Name,
    pub fields: Vec<FieldDecl>,
}

#[derive(Clone, Debug)]
pub struct FieldDecl {
    pub span: Span,
    pub name: Name,
    pub ty: TypeExpr,
}

#[derive(Clone, Debug)]
pub struct TypeExpr {
    pub span: Span,
    pub kind: TypeExprKind,
    pub optional: bool,
}

#[derive(Clone, Debug)]
pub enum TypeExprKind {
    Named(Name),
    List(Box<TypeExpr>),
    Union(Vec<StrLit>),
    Paren(Box<TypeExpr>),
}

#[derive(Clone, Debug)]
pub struct MessageDecl {
    pub span: Span,
    pub name: Name,
    pub fields: Vec<MessageField>,
}

#[derive(Clone, Debug)]
pub struct MessageField {
    pub span: Span,
    pub name: Name,
    pub value: Expr,
}

#[derive(Clone, Debug)]
pub struct ActionDecl {
    pub span: Span,
    pub name: Name,
    pub params: Vec<Param>,
    pub body: ActionBody,
}

/// What an action does: a webhook POST, or the actions of a block.
#[derive(Clone, Debug)]
pub enum ActionBody {
    /// `via webhook "URL"`, with headers or not.
    Webhook(Webhook),
    /// `do ... end`: other actions, run where the action is called.
    Block(Block),
}

/// `via webhook "URL" with header "X-Api-Key" = secret pms_key, ...`.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: StrLit,
    pub headers: Vec<Header>,
}

/// One `header "Name" = value` of a webhook.
#[derive(Clone, Debug)]
pub struct Header {
    pub span: Span,
    pub name: StrLit,
    pub value: HeaderValue,
}

/// A header's value: text written in the rule, or a tenant's secret, read
/// when the webhook is sent (after an optional text such as `"Bearer " +`).
#[derive(Clone, Debug)]
pub enum HeaderValue {
    Text(StrLit),
    Secret {
        prefix: Option<StrLit>,
        secret: Name,
    },
}

#[derive(Clone, Debug)]
pub struct Param {
    pub span: Span,
    pub name: Name,
    pub ty: TypeExpr,
}

#[derive(Clone, Debug)]
pub struct FnDecl {
    pub span: Span,
    pub name: Name,
    pub params: Vec<Param>,
    pub ret: TypeExpr,
    pub body: FnBody,
}

#[derive(Clone, Debug)]
pub enum FnBody {
    Expr(Expr),
    /// `from rhai "file.rhai"`: the path as written, relative to the rule file.
    Rhai(StrLit),
}

#[derive(Clone, Debug)]
pub struct ExternFnDecl {
    pub span: Span,
    pub name: Name,
    pub type_params: Vec<Name>,
    pub params: Vec<Param>,
    pub ret: TypeExpr,
}

/// A rule, in the full `rule ... end` form or the one-line `when ... then ...` form.
#[derive(Clone, Debug)]
pub struct RuleDecl {
    pub span: Span,
    /// `None` for the one-line form.
    pub name: Option<Name>,
    pub title: Option<StrLit>,
    pub trigger: Trigger,
    /// `throttle`, `count` and `if` clauses, in source order.
    pub clauses: Vec<Clause>,
    pub body: Block,
}

#[derive(Clone, Debug)]
pub enum Trigger {
    When {
        span: Span,
        event: Name,
    },
    Every {
        span: Span,
        schedule: Schedule,
    },
    /// `when no EVENT on FIELD for D since START on FIELD until END on FIELD`.
    Quiet(Box<Quiet>),
}

/// A trigger on what did not happen: no `event` whose `field` equals the
/// watched value for `period`, the clock started by `since` and restarted by
/// each `event`; `until` ends the watch.
#[derive(Clone, Debug)]
pub struct Quiet {
    pub span: Span,
    pub event: Name,
    pub field: Name,
    pub period: Expr,
    pub since: Option<(Name, Name)>,
    pub until: Option<(Name, Name)>,
}

#[derive(Clone, Debug)]
pub enum Schedule {
    Cron { expr: StrLit, zone: Option<StrLit> },
    Interval(Expr),
}

#[derive(Clone, Debug)]
pub enum Clause {
    Throttle {
        span: Span,
        count: Expr,
        per: Expr,
        by: Option<Expr>,
    },
    Condition {
        span: Span,
        cond: Expr,
    },
    /// `priority 1`.
    Priority {
        span: Span,
        value: Expr,
    },
    /// `unless cond`: the negation of an `if` clause.
    Unless {
        span: Span,
        cond: Expr,
    },
    /// `count 5 within 10m by email`.
    Count {
        span: Span,
        count: Expr,
        within: Expr,
        by: Option<Expr>,
    },
}

#[derive(Clone, Debug)]
pub struct Block {
    pub span: Span,
    pub stmts: Vec<Stmt>,
}

#[derive(Clone, Debug)]
pub struct Stmt {
    pub span: Span,
    pub kind: StmtKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    After,
    At,
    /// `every "CRON" [in ZONE]`: `when` is the cron text, repeating.
    Every,
}

#[derive(Clone, Debug)]
pub struct Unless {
    pub span: Span,
    pub event: Name,
    pub field: Name,
}

#[derive(Clone, Debug)]
pub enum StmtKind {
    Let {
        name: Name,
        ty: Option<TypeExpr>,
        value: Expr,
    },
    If {
        branches: Vec<(Expr, Block)>,
        otherwise: Option<Block>,
    },
    Send {
        message: Name,
    },
    /// `stop`: no later rule handles the event.
    Stop,
    Notify {
        to: Assignee,
        text: Expr,
    },
    CreateTask {
        title: Expr,
        to: Assignee,
        due: Option<Expr>,
    },
    Emit {
        event: Name,
        fields: Vec<RecordField>,
        record_span: Span,
    },
    Log {
        text: Expr,
    },
    Timer {
        kind: TimerKind,
        when: Expr,
        /// `in ZONE` of `every` (UTC when left out).
        zone: Option<Expr>,
        unless: Vec<Unless>,
        skip_late: bool,
        body: Block,
    },
    Approval {
        role: Name,
        within: Expr,
        body: Block,
        otherwise: Option<Block>,
    },
    Call {
        name: Name,
        args: Vec<Arg>,
    },
}

/// Whom a notification or a task is for.
#[derive(Clone, Debug)]
pub enum Assignee {
    /// `role NAME`: everyone your application gives the role.
    Role(Name),
    /// A person: an expression holding a user id or an e-mail address;
    /// `user` when written `user EXPR`.
    Person { who: Expr, user: bool },
}

#[derive(Clone, Debug)]
pub struct RecordField {
    pub span: Span,
    pub name: Name,
    pub value: Expr,
}

#[derive(Clone, Debug)]
pub struct Arg {
    pub span: Span,
    pub name: Option<Name>,
    pub value: Expr,
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub span: Span,
    pub kind: ExprKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Or,
    And,
    Coalesce,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    Matches,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Or => "or",
            And => "and",
            Coalesce => "??",
            Eq => "==",
            Ne => "!=",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            In => "in",
            NotIn => "not in",
            Contains => "contains",
            StartsWith => "starts_with",
            EndsWith => "ends_with",
            Matches => "matches",
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Rem => "%",
        }
    }

    pub fn is_comparison(self) -> bool {
        use BinaryOp::*;
        matches!(self, Eq | Ne | Lt | Le | Gt | Ge)
    }
}

/// A string literal: text and `{expr}` parts, or raw text for `r"..."`.
#[derive(Clone, Debug)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
    pub raw: bool,
}

impl Template {
    /// The literal text when the string has no interpolation.
    pub fn as_plain(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(t) => out.push_str(t),
                TemplatePart::Expr(_) => return None,
            }
        }
        Some(out)
    }
}

#[derive(Clone, Debug)]
pub enum TemplatePart {
    Text(String),
    Expr(Expr),
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Int(i64),
    /// A literal with a fractional part, kept as written (without `_`):
    /// it becomes a `float` or an exact `decimal` depending on its use.
    Number(String),
    /// In milliseconds.
    Duration(i64),
    Date(chrono::NaiveDate),
    DateTime(chrono::DateTime<chrono::FixedOffset>),
    Str(Template),
    Bool(bool),
    None,
    Name(Name),
    Field(Box<Expr>, Name),
    Call(Name, Vec<Arg>),
    List(Vec<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    Paren(Box<Expr>),
    /// `previous stage`: the value the last event of the same key carried.
    /// The path is a name or a field path.
    Previous(Box<Expr>),
    /// `stage changed [from A] [to B]`.
    Changed {
        subject: Box<Expr>,
        from: Option<Box<Expr>>,
        to: Option<Box<Expr>>,
    },
    /// `count(work_order.created by property_id, category within 90d)`.
    CountOf {
        event: Name,
        by: Vec<Expr>,
        within: Box<Expr>,
    },
}
