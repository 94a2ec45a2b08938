//! The formatter: one canonical layout, from the syntax tree.
//!
//! Comments are not in the tree; they are put back by position: a comment
//! before a line-level node (an item, a field, a clause, a statement, an `end`)
//! is printed on its own line above it, and a comment on the same line after
//! a node stays at the end of that line. A statement, test step, clause,
//! message field or function with a comment inside it (in a multi-line call,
//! record or list) is printed as written, only re-indented, so the comment
//! stays where it was. Literals are printed as written.
//!
//! Invariants: formatting is idempotent, and `parse(format(x))` equals
//! `parse(x)` without spans (tested over every corpus file).

use crate::diag::{Diagnostic, Span};
use crate::syntax::ast::*;

const INDENT: &str = "  ";
/// Lines longer than this are laid out over several lines where the layout allows.
const WIDTH: usize = 100;

/// Formats a whole file; files with syntax errors are refused with their diagnostics.
pub fn format_source(text: &str) -> Result<String, Vec<Diagnostic>> {
    let (tree, diags) = super::parse(0, text);
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut p = Printer {
        src: text,
        comments: &tree.comments,
        next: 0,
        out: String::new(),
        indent: 0,
        last_end: 0,
    };
    for (i, item) in tree.items.iter().enumerate() {
        if i > 0 {
            p.blank();
        }
        p.item(item);
    }
    p.flush_comments(text.len() as u32);
    let mut out = p.out;
    while out.ends_with("\n\n") {
        out.pop();
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// The canonical text of each item of a parsed file except tests: laid out
/// as `format_source` would, without comments, so it does not change with
/// layout, comments or blank lines. The ruleset version hashes these.
pub fn canonical_items(tree: &SourceFile, text: &str) -> Vec<String> {
    tree.items
        .iter()
        .filter(|item| !matches!(item, Item::Test(_)))
        .map(|item| {
            let mut p = Printer {
                src: text,
                comments: &[],
                next: 0,
                out: String::new(),
                indent: 0,
                last_end: item.span().start,
            };
            p.item(item);
            // Blank lines kept from the source are layout, not meaning.
            p.out
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// The text that identifies a statement within its rule: the statement
/// laid out canonically, without comments, and for a block statement only
/// its head (`after 2h unless job.done on id`), so editing the block or
/// anything around it leaves it as it was.
pub fn step_text(stmt: &Stmt, text: &str) -> String {
    let p = Printer {
        src: text,
        comments: &[],
        next: 0,
        out: String::new(),
        indent: 0,
        last_end: 0,
    };
    p.head(stmt)
}

struct Printer<'a> {
    src: &'a str,
    comments: &'a [Span],
    /// The first comment not printed yet.
    next: usize,
    out: String,
    indent: usize,
    /// Where the last printed node or comment ended in the source.
    last_end: u32,
}

impl Printer<'_> {
    fn slice(&self, span: Span) -> &str {
        self.src.get(span.range()).unwrap_or("")
    }

    fn blank(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    /// Whether the source has an empty line between the last printed thing and `start`.
    fn blank_in_source(&self, start: u32) -> bool {
        let gap = self
            .src
            .get(self.last_end as usize..start as usize)
            .unwrap_or("");
        let lines: Vec<&str> = gap.split('\n').collect();
        lines.len() > 2
            && lines
                .get(1..lines.len() - 1)
                .is_some_and(|inner| inner.iter().any(|l| l.trim().is_empty()))
    }

    fn keep_blank_line(&mut self, start: u32) {
        let at_block_start = self.out.ends_with(" then\n")
            || self.out.ends_with(" do\n")
            || self.out.ends_with("{\n")
            || self.out.ends_with("else\n")
            || self.out.ends_with("=\n")
            || self.out.ends_with("then\n");
        if !at_block_start && self.blank_in_source(start) {
            self.blank();
        }
    }

    /// Prints the comments that start before `before`, each on its own line.
    fn flush_comments(&mut self, before: u32) {
        while let Some(&c) = self.comments.get(self.next) {
            if c.start >= before {
                break;
            }
            self.keep_blank_line(c.start);
            let text = self.slice(c).to_string();
            self.push_indent();
            self.out.push_str(&text);
            self.out.push('\n');
            self.last_end = c.end;
            self.next += 1;
        }
    }

    fn push_indent(&mut self) {
        for _ in 0..self.indent {
            self.out.push_str(INDENT);
        }
    }

    /// Prints one line for a node that starts at `start` and whose text ends
    /// at `end` in the source, with comments before it and after it.
    fn line(&mut self, start: u32, text: &str, end: u32) {
        self.flush_comments(start);
        self.keep_blank_line(start);
        self.push_indent();
        self.out.push_str(text);
        self.last_end = self.last_end.max(end);
        // A comment later on the same source line stays at the end of this line.
        if let Some(&c) = self.comments.get(self.next) {
            let between = self.src.get(end as usize..c.start as usize).unwrap_or("\n");
            if c.start >= end && !between.contains('\n') {
                self.out.push(' ');
                let src = self.src;
                self.out.push_str(src.get(c.range()).unwrap_or(""));
                self.last_end = c.end;
                self.next += 1;
            }
        }
        self.out.push('\n');
    }

    /// Prints a node that is all of `span` as `text`, or, when a comment sits
    /// inside it (in a multi-line call, record, list or body), as written:
    /// the formatter keeps comments where they are and cannot place them
    /// inside a layout of its own.
    fn node(&mut self, span: Span, text: &str) {
        let inside = self
            .comments
            .get(self.next..)
            .unwrap_or_default()
            .iter()
            .take_while(|c| c.end <= span.end)
            .filter(|c| c.start > span.start)
            .count();
        if inside == 0 {
            return self.line(span.start, text, span.end);
        }
        self.flush_comments(span.start);
        // Continuation lines move with the first line, as written relative to it.
        let line_start = self
            .src
            .get(..span.start as usize)
            .unwrap_or("")
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let column = span.start as usize - line_start;
        let target = self.indent * INDENT.len();
        let mut written = String::new();
        for (i, line) in self.slice(span).split('\n').enumerate() {
            let line = line.trim_end();
            if i > 0 {
                written.push('\n');
                if !line.is_empty() {
                    let spaces = line.len() - line.trim_start_matches(' ').len();
                    let kept = (spaces + target).saturating_sub(column);
                    written.push_str(&" ".repeat(kept));
                    written.push_str(line.get(spaces..).unwrap_or(""));
                }
                continue;
            }
            written.push_str(line);
        }
        self.next += inside;
        self.line(span.start, &written, span.end);
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Type(d) => self.record("type", &d.name.text, &d.fields, d.span),
            Item::Event(d) => self.record("event", &d.name.text, &d.fields, d.span),
            Item::Message(d) => self.message(d),
            Item::Action(d) => self.action(d),
            Item::Fn(d) if self.has_comment_in(d.span) => self.node(d.span, ""),
            Item::Fn(d) => self.function(d),
            Item::ExternFn(d) => {
                let generics = if d.type_params.is_empty() {
                    String::new()
                } else {
                    format!(
                        "<{}>",
                        d.type_params
                            .iter()
                            .map(|t| t.text.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let text = format!(
                    "extern fn {}{generics}({}) -> {}",
                    d.name.text,
                    self.params(&d.params),
                    self.ty(&d.ret)
                );
                self.line(d.span.start, &text, d.span.end);
            }
            Item::Rule(r) => self.rule(r),
            Item::Test(t) => self.test(t),
            Item::Error(span) => {
                // Not reached: files with syntax errors are not formatted.
                let text = self.slice(*span).to_string();
                self.line(span.start, &text, span.end);
            }
        }
    }

    fn message(&mut self, d: &MessageDecl) {
        let head = format!("message {} {{", d.name.text);
        if d.fields.is_empty() && !self.has_comment_in(d.span) {
            return self.line(
                d.span.start,
                &format!("message {} {{}}", d.name.text),
                d.span.end,
            );
        }
        self.line(d.span.start, &head, d.name.span.end);
        self.indent += 1;
        for f in &d.fields {
            let text = format!("{}: {}", f.name.text, self.expr(&f.value));
            self.node(f.span, &text);
        }
        self.close(d.span, "}");
    }

    fn action(&mut self, d: &ActionDecl) {
        match &d.body {
            ActionBody::Webhook(hook) => {
                let text = format!(
                    "action {}({}) via webhook {}",
                    d.name.text,
                    self.params(&d.params),
                    self.slice(hook.url.span)
                );
                if hook.headers.is_empty() {
                    return self.line(d.span.start, &text, d.span.end);
                }
                // One header a line under the action, the `with` ending the first.
                self.line(d.span.start, &format!("{text} with"), hook.url.span.end);
                self.indent += 1;
                let last = hook.headers.len() - 1;
                for (i, h) in hook.headers.iter().enumerate() {
                    let value = match &h.value {
                        HeaderValue::Text(text) => self.slice(text.span).to_string(),
                        HeaderValue::Secret { prefix, secret } => match prefix {
                            Some(p) => {
                                format!("{} + secret {}", self.slice(p.span), secret.text)
                            }
                            None => format!("secret {}", secret.text),
                        },
                    };
                    let comma = if i == last { "" } else { "," };
                    let text = format!("header {} = {value}{comma}", self.slice(h.name.span));
                    self.node(h.span, &text);
                }
                self.indent -= 1;
            }
            ActionBody::Block(body) => {
                let head = format!("action {}({}) do", d.name.text, self.params(&d.params));
                let do_end = self
                    .src
                    .get(..body.span.start as usize)
                    .unwrap_or("")
                    .rfind("do")
                    .map_or(d.name.span.end, |i| i as u32 + 2);
                self.line(d.span.start, &head, do_end);
                self.indent += 1;
                self.block(body);
                self.close(d.span, "end");
            }
        }
    }

    fn function(&mut self, d: &FnDecl) {
        let head = format!(
            "fn {}({}) -> {}",
            d.name.text,
            self.params(&d.params),
            self.ty(&d.ret)
        );
        match &d.body {
            FnBody::Rhai(path) => {
                let text = format!("{head} from rhai {}", self.slice(path.span));
                self.line(d.span.start, &text, d.span.end);
            }
            FnBody::Expr(body) => match &body.kind {
                ExprKind::If(..) => {
                    self.line(d.span.start, &format!("{head} ="), d.ret.span.end);
                    self.indent += 1;
                    self.if_chain(body);
                    self.indent -= 1;
                }
                _ => {
                    let text = format!("{head} = {}", self.expr(body));
                    self.line(d.span.start, &text, d.span.end);
                }
            },
        }
    }

    fn test(&mut self, t: &TestDecl) {
        self.line(
            t.span.start,
            &format!("test {}", self.slice(t.name.span)),
            t.name.span.end,
        );
        self.indent += 1;
        for step in &t.steps {
            let text = match &step.kind {
                TestStepKind::Given {
                    partial,
                    event,
                    key,
                    payload,
                } => {
                    let mut text = String::from("given ");
                    if *partial {
                        text.push_str("partial ");
                    }
                    text.push_str(&event.text);
                    if let Some(k) = key {
                        text.push_str(&format!(" key {}", self.expr(k)));
                    }
                    format!("{text} {}", self.test_record(payload))
                }
                TestStepKind::Wait { until, value } => {
                    format!(
                        "wait {}{}",
                        if *until { "until " } else { "" },
                        self.expr(value)
                    )
                }
                TestStepKind::Decide { approve } => {
                    (if *approve { "approve" } else { "reject" }).to_string()
                }
                TestStepKind::Expect {
                    negated,
                    action,
                    target,
                    args,
                } => {
                    let mut text = String::from("expect ");
                    if *negated {
                        text.push_str("no ");
                    }
                    text.push_str(&action.text);
                    if let Some(t) = target {
                        text.push(' ');
                        text.push_str(&t.text);
                    }
                    if let Some(a) = args {
                        text.push(' ');
                        text.push_str(&self.test_record(a));
                    }
                    text
                }
                TestStepKind::ExpectNothing => "expect nothing".to_string(),
            };
            self.node(step.span, &text);
        }
        self.close(t.span, "end");
    }

    fn test_record(&self, r: &TestRecord) -> String {
        if r.fields.is_empty() {
            return "{}".to_string();
        }
        let fields: Vec<String> = r
            .fields
            .iter()
            .map(|f| {
                let value = match &f.value {
                    TestValue::Expr(e) => self.expr(e),
                    TestValue::Record(inner) => self.test_record(inner),
                };
                format!("{}: {value}", f.name.text)
            })
            .collect();
        format!("{{ {} }}", fields.join(", "))
    }

    /// An expression `if` laid out one branch per line.
    fn if_chain(&mut self, e: &Expr) {
        let mut current = e;
        let mut first = true;
        loop {
            match &current.kind {
                ExprKind::If(c, t, f) => {
                    let kw = if first { "if" } else { "else if" };
                    let text = format!("{kw} {} then {}", self.expr(c), self.expr(t));
                    self.line(c.span.start, &text, t.span.end);
                    first = false;
                    current = f;
                }
                _ => {
                    let text = format!("else {}", self.expr(current));
                    self.line(current.span.start, &text, current.span.end);
                    return;
                }
            }
        }
    }

    fn has_comment_in(&self, span: Span) -> bool {
        self.comments
            .get(self.next..)
            .unwrap_or_default()
            .iter()
            .any(|c| c.start > span.start && c.end < span.end)
    }

    fn record(&mut self, kw: &str, name: &str, fields: &[FieldDecl], span: Span) {
        if fields.is_empty() && !self.has_comment_in(span) {
            return self.line(span.start, &format!("{kw} {name} {{}}"), span.end);
        }
        self.line(
            span.start,
            &format!("{kw} {name} {{"),
            span.start + kw.len() as u32 + 1 + name.len() as u32,
        );
        self.indent += 1;
        for f in fields {
            let text = format!("{}: {}", f.name.text, self.ty(&f.ty));
            self.line(f.span.start, &text, f.span.end);
        }
        self.close(span, "}");
    }

    /// Closes a block whose node spans `span`, ending with `closer`.
    fn close(&mut self, span: Span, closer: &str) {
        let at = span.end - closer.len() as u32;
        self.flush_comments(at);
        self.indent -= 1;
        self.line(at, closer, span.end);
    }

    fn params(&self, params: &[Param]) -> String {
        params
            .iter()
            .map(|p| format!("{}: {}", p.name.text, self.ty(&p.ty)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn ty(&self, t: &TypeExpr) -> String {
        let base = match &t.kind {
            TypeExprKind::Named(n) => n.text.clone(),
            TypeExprKind::List(inner) => format!("list<{}>", self.ty(inner)),
            TypeExprKind::Paren(inner) => format!("({})", self.ty(inner)),
            TypeExprKind::Union(members) => members
                .iter()
                .map(|m| self.slice(m.span))
                .collect::<Vec<_>>()
                .join(" | "),
        };
        if t.optional {
            format!("{base}?")
        } else {
            base
        }
    }

    fn trigger(&self, t: &Trigger) -> (String, Span) {
        match t {
            Trigger::When { span, event } => (format!("when {}", event.text), *span),
            Trigger::Quiet(q) => {
                let mut text = format!(
                    "when no {} on {} for {}",
                    q.event.text,
                    q.field.text,
                    self.expr(&q.period)
                );
                if let Some((event, field)) = &q.since {
                    text.push_str(&format!(" since {} on {}", event.text, field.text));
                }
                if let Some((event, field)) = &q.until {
                    text.push_str(&format!(" until {} on {}", event.text, field.text));
                }
                (text, q.span)
            }
            Trigger::Every { span, schedule } => {
                let text = match schedule {
                    Schedule::Cron {
                        expr,
                        zone: Some(zone),
                    } => format!(
                        "every {} in {}",
                        self.slice(expr.span),
                        self.slice(zone.span)
                    ),
                    Schedule::Cron { expr, zone: None } => {
                        format!("every {}", self.slice(expr.span))
                    }
                    Schedule::Interval(e) => format!("every {}", self.expr(e)),
                };
                (text, *span)
            }
        }
    }

    fn clause(&self, c: &Clause) -> (String, Span) {
        match c {
            Clause::Throttle {
                span,
                count,
                per,
                by,
            } => {
                let by = by
                    .as_ref()
                    .map(|b| format!(" by {}", self.expr(b)))
                    .unwrap_or_default();
                (
                    format!("throttle {} per {}{by}", self.expr(count), self.expr(per)),
                    *span,
                )
            }
            Clause::Condition { span, cond } => (format!("if {}", self.expr(cond)), *span),
            Clause::Priority { span, value } => (format!("priority {}", self.expr(value)), *span),
            Clause::Unless { span, cond } => (format!("unless {}", self.expr(cond)), *span),
            Clause::Count {
                span,
                count,
                within,
                by,
            } => {
                let by = by
                    .as_ref()
                    .map(|b| format!(" by {}", self.expr(b)))
                    .unwrap_or_default();
                (
                    format!(
                        "count {} within {}{by}",
                        self.expr(count),
                        self.expr(within)
                    ),
                    *span,
                )
            }
        }
    }

    /// Whether a body fits after `then` on the same line: one statement with
    /// no block of its own and no comment.
    fn inline_body(&self, body: &Block) -> Option<String> {
        match body.stmts.as_slice() {
            [stmt]
                if !is_block_stmt(stmt)
                    && !self.has_comment_in(Span {
                        start: body.span.start.saturating_sub(1),
                        end: body.span.end + 1,
                    }) =>
            {
                Some(self.simple_stmt(stmt))
            }
            _ => None,
        }
    }

    fn rule(&mut self, r: &RuleDecl) {
        let (trigger, tspan) = self.trigger(&r.trigger);
        let clauses: Vec<(String, Span)> = r.clauses.iter().map(|c| self.clause(c)).collect();
        let inline = self.inline_body(&r.body);
        match &r.name {
            None => {
                // The one-line form, when it fits on one line.
                if let Some(body) = &inline {
                    let mut parts = vec![trigger.clone()];
                    parts.extend(clauses.iter().map(|(c, _)| c.clone()));
                    let text = format!("{} then {body}", parts.join(" "));
                    if text.len() <= WIDTH && !self.has_comment_in(r.span) {
                        return self.line(r.span.start, &text, r.span.end);
                    }
                }
                self.line(tspan.start, &trigger, tspan.end);
                self.indent += 1;
                self.clauses_and_body(&clauses, &r.body, inline);
                self.indent -= 1;
            }
            Some(name) => {
                let head = match &r.title {
                    Some(t) => format!("rule {} {}", name.text, self.slice(t.span)),
                    None => format!("rule {}", name.text),
                };
                let head_end = r.title.as_ref().map_or(name.span.end, |t| t.span.end);
                self.line(r.span.start, &head, head_end);
                self.indent += 1;
                self.line(tspan.start, &trigger, tspan.end);
                self.clauses_and_body(&clauses, &r.body, inline);
                self.close(r.span, "end");
            }
        }
    }

    fn clauses_and_body(
        &mut self,
        clauses: &[(String, Span)],
        body: &Block,
        inline: Option<String>,
    ) {
        for (text, span) in clauses {
            self.node(*span, text);
        }
        match inline {
            Some(stmt) => {
                let start = body.span.start;
                self.line(start, &format!("then {stmt}"), body.span.end);
            }
            None => {
                let then_at = self
                    .src
                    .get(..body.span.start as usize)
                    .unwrap_or("")
                    .rfind("then")
                    .map_or(body.span.start, |i| i as u32);
                self.line(then_at, "then", then_at + 4);
                self.indent += 1;
                self.block(body);
                self.indent -= 1;
            }
        }
    }

    fn block(&mut self, b: &Block) {
        for stmt in &b.stmts {
            self.stmt(stmt);
        }
    }

    /// A statement's first line without its `do`: a block statement's head,
    /// or the whole of a simple one.
    fn head(&self, stmt: &Stmt) -> String {
        match &stmt.kind {
            StmtKind::If { branches, .. } => match branches.first() {
                Some((cond, _)) => format!("if {}", self.expr(cond)),
                None => "if".to_string(),
            },
            StmtKind::Timer {
                kind,
                when,
                zone,
                unless,
                skip_late,
                ..
            } => {
                let kw = match kind {
                    TimerKind::After => "after",
                    TimerKind::At => "at",
                    TimerKind::Every => "every",
                };
                let mut head = format!("{kw} {}", self.expr(when));
                if let Some(zone) = zone {
                    head.push_str(&format!(" in {}", self.expr(zone)));
                }
                for u in unless {
                    head.push_str(&format!(" unless {} on {}", u.event.text, u.field.text));
                }
                if *skip_late {
                    head.push_str(" skip if late");
                }
                head
            }
            StmtKind::Approval { role, within, .. } => format!(
                "require approval from role {} within {}",
                role.text,
                self.expr(within)
            ),
            _ => self.simple_stmt(stmt),
        }
    }

    fn simple_stmt(&self, stmt: &Stmt) -> String {
        match &stmt.kind {
            StmtKind::Let {
                name,
                ty: Some(t),
                value,
            } => format!("let {}: {} = {}", name.text, self.ty(t), self.expr(value)),
            StmtKind::Let {
                name,
                ty: None,
                value,
            } => format!("let {} = {}", name.text, self.expr(value)),
            StmtKind::Send { message } => format!("send {}", message.text),
            StmtKind::Stop => "stop".to_string(),
            StmtKind::Notify { to, text } => {
                format!("notify {} {}", self.assignee(to), self.expr(text))
            }
            StmtKind::CreateTask { title, to, due } => {
                let due = due
                    .as_ref()
                    .map(|d| format!(" due {}", self.expr(d)))
                    .unwrap_or_default();
                format!(
                    "create task {} for {}{due}",
                    self.expr(title),
                    self.assignee(to)
                )
            }
            StmtKind::Emit { event, fields, .. } => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{}: {}", f.name.text, self.expr(&f.value)))
                    .collect();
                if fields.is_empty() {
                    format!("emit {} {{}}", event.text)
                } else {
                    format!("emit {} {{ {} }}", event.text, fields.join(", "))
                }
            }
            StmtKind::Log { text } => format!("log {}", self.expr(text)),
            StmtKind::Call { name, args } => format!("{}({})", name.text, self.args(args)),
            // A block statement has no one-line form, and callers print
            // blocks themselves; were one asked for, its head stands in.
            StmtKind::If { .. } | StmtKind::Timer { .. } | StmtKind::Approval { .. } => {
                self.head(stmt)
            }
        }
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match &stmt.kind {
            StmtKind::If {
                branches,
                otherwise,
            } => {
                for (i, (cond, body)) in branches.iter().enumerate() {
                    let kw = if i == 0 { "if" } else { "else if" };
                    let start = if i == 0 {
                        stmt.span.start
                    } else {
                        self.keyword_before(cond.span.start, "else")
                    };
                    if i > 0 {
                        self.indent -= 1;
                    }
                    self.line(
                        start,
                        &format!("{kw} {} then", self.expr(cond)),
                        cond.span.end,
                    );
                    self.indent += 1;
                    self.block(body);
                }
                if let Some(body) = otherwise {
                    let at = self.keyword_before(body.span.start, "else");
                    self.flush_comments(at);
                    self.indent -= 1;
                    self.line(at, "else", at + 4);
                    self.indent += 1;
                    self.block(body);
                }
                self.close(stmt.span, "end");
            }
            StmtKind::Timer {
                when,
                zone,
                unless,
                body,
                ..
            } => {
                let head = format!("{} do", self.head(stmt));
                let head_end = unless
                    .last()
                    .map_or(zone.as_ref().map_or(when.span.end, |z| z.span.end), |u| {
                        u.span.end
                    });
                self.line(stmt.span.start, &head, head_end);
                self.indent += 1;
                self.block(body);
                self.close(stmt.span, "end");
            }
            StmtKind::Approval {
                within,
                body,
                otherwise,
                ..
            } => {
                let head = format!("{} do", self.head(stmt));
                self.line(stmt.span.start, &head, within.span.end);
                self.indent += 1;
                self.block(body);
                if let Some(other) = otherwise {
                    let at = self.keyword_before(other.span.start, "else");
                    self.flush_comments(at);
                    self.indent -= 1;
                    self.line(at, "else", at + 4);
                    self.indent += 1;
                    self.block(other);
                }
                self.close(stmt.span, "end");
            }
            _ => {
                let text = self.simple_stmt(stmt);
                self.node(stmt.span, &text);
            }
        }
    }

    /// The offset of the last `kw` before `offset` (an `else` before its block).
    fn keyword_before(&self, offset: u32, kw: &str) -> u32 {
        let mut at = offset as usize;
        while let Some(i) = self.src.get(..at).unwrap_or("").rfind(kw) {
            let before_ok = i
                .checked_sub(1)
                .and_then(|j| self.src.as_bytes().get(j))
                .is_none_or(|b| !is_ident_byte(*b));
            let after_ok = self
                .src
                .as_bytes()
                .get(i + kw.len())
                .is_none_or(|b| !is_ident_byte(*b));
            let in_comment = self
                .comments
                .iter()
                .any(|c| c.start as usize <= i && i < c.end as usize);
            if before_ok && after_ok && !in_comment {
                return i as u32;
            }
            at = i;
        }
        offset
    }

    fn args(&self, args: &[Arg]) -> String {
        args.iter()
            .map(|a| match &a.name {
                Some(n) => format!("{}: {}", n.text, self.expr(&a.value)),
                None => self.expr(&a.value),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn assignee(&self, to: &Assignee) -> String {
        match to {
            Assignee::Role(role) => format!("role {}", role.text),
            Assignee::Person { who, user: true } => format!("user {}", self.expr(who)),
            Assignee::Person { who, user: false } => self.expr(who),
        }
    }

    fn expr(&self, e: &Expr) -> String {
        match &e.kind {
            ExprKind::Int(_)
            | ExprKind::Number(_)
            | ExprKind::Duration(_)
            | ExprKind::Date(_)
            | ExprKind::DateTime(_)
            | ExprKind::Str(_)
            | ExprKind::Bool(_)
            | ExprKind::None
            | ExprKind::Name(_) => self.slice(e.span).to_string(),
            ExprKind::Field(base, f) => format!("{}.{}", self.expr(base), f.text),
            ExprKind::Call(name, args) => format!("{}({})", name.text, self.args(args)),
            ExprKind::List(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(|i| self.expr(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ExprKind::Unary(UnaryOp::Not, inner) => format!("not {}", self.expr(inner)),
            ExprKind::Unary(UnaryOp::Neg, inner) => format!("-{}", self.expr(inner)),
            ExprKind::Binary(op, l, r) => {
                format!("{} {} {}", self.expr(l), op.as_str(), self.expr(r))
            }
            ExprKind::If(c, t, f) => format!(
                "if {} then {} else {}",
                self.expr(c),
                self.expr(t),
                self.expr(f)
            ),
            ExprKind::Paren(inner) => format!("({})", self.expr(inner)),
            ExprKind::Previous(path) => format!("previous {}", self.expr(path)),
            ExprKind::Changed { subject, from, to } => {
                let mut out = format!("{} changed", self.expr(subject));
                if let Some(from) = from {
                    out.push_str(&format!(" from {}", self.expr(from)));
                }
                if let Some(to) = to {
                    out.push_str(&format!(" to {}", self.expr(to)));
                }
                out
            }
            ExprKind::CountOf { event, by, within } => {
                let by = if by.is_empty() {
                    String::new()
                } else {
                    let paths: Vec<String> = by.iter().map(|b| self.expr(b)).collect();
                    format!(" by {}", paths.join(", "))
                };
                format!("count({}{by} within {})", event.text, self.expr(within))
            }
        }
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_block_stmt(stmt: &Stmt) -> bool {
    matches!(
        stmt.kind,
        StmtKind::If { .. } | StmtKind::Timer { .. } | StmtKind::Approval { .. }
    )
}
