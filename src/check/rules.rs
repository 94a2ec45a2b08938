//! The second pass: function bodies, message shapes, and rules with their
//! statements, in the scope each one sees.

use std::collections::{HashMap, HashSet};

use super::expr::{facts, order_args, path, strip_parens, Callee, Const, Ctx, Local, SendSite, Ty};
use super::schedule;
use super::suggest::did_you_mean;
use super::types::*;
use super::{Checker, DefKind, RhaiSourceError};
use crate::diag::{Code, Diagnostic, FileId, Span};
use crate::hir;
use crate::syntax::ast::*;
use std::sync::Arc;

/// A rule's clauses and body, checked.
#[derive(Default)]
struct RuleRest {
    conditions: Vec<hir::Expr>,
    throttle: Option<hir::Window>,
    count: Option<(hir::Window, usize)>,
    priority: Option<i64>,
    body: Vec<hir::Stmt>,
}

/// The fields a message may have (the arguments of `send` after the
/// message's name), and whether each is required.
fn message_fields() -> Vec<(&'static str, bool)> {
    super::actions::message_fields()
        .map(|p| (p.name, !p.ty.is_optional()))
        .collect()
}

impl Checker<'_> {
    pub(super) fn check_bodies(&mut self) {
        let files = self.files;
        // Number the user functions first, so that a call can name any of them.
        for f in files.iter().filter(|f| !f.stdlib) {
            for item in &f.tree.items {
                if let Item::Fn(d) = item {
                    let first = self
                        .program
                        .functions
                        .get(&d.name.text)
                        .and_then(|s| s.first());
                    let declared_here = first
                        .is_some_and(|sig| sig.loc.span == d.name.span && sig.loc.file == f.id);
                    if declared_here && !self.fn_ids.contains_key(&d.name.text) {
                        let id = u32::try_from(self.hir.functions.len()).unwrap_or(u32::MAX);
                        self.fn_ids.insert(d.name.text.clone(), id);
                        self.hir.functions.push(None);
                    }
                }
            }
        }
        for f in files {
            for item in &f.tree.items {
                match item {
                    Item::Message(m) => self.message_shape(f.id, m),
                    Item::Fn(d) => self.function(f.id, d),
                    Item::Action(d) => self.action_block(f.id, d),
                    Item::Rule(r) => self.rule(f.id, r),
                    Item::Test(t) => self.test_decl(f.id, t),
                    _ => {}
                }
            }
        }
        self.recursion();
        self.interactions();
    }

    fn message_shape(&mut self, file: FileId, m: &MessageDecl) {
        let mut seen: Vec<&str> = Vec::new();
        for field in &m.fields {
            let name = field.name.text.as_str();
            let fields = message_fields();
            if !fields.iter().any(|(n, _)| *n == name) {
                let help = did_you_mean(name, fields.iter().map(|(n, _)| *n))
                    .unwrap_or_else(|| "a message has `to`, `subject` and `body`, and may have `cc`, `bcc` and `reply_to`".to_string());
                self.report(
                    Diagnostic::new(
                        Code::MessageShape,
                        file,
                        field.name.span,
                        format!("a message has no field `{name}`"),
                    )
                    .with_help(help),
                );
            } else if seen.contains(&name) {
                self.report(
                    Diagnostic::new(
                        Code::DuplicateField,
                        file,
                        field.name.span,
                        format!("`{name}` is given twice in `{}`", m.name.text),
                    )
                    .with_help("give each field once"),
                );
            }
            seen.push(name);
        }
        let missing: Vec<String> = message_fields()
            .iter()
            .filter(|(n, req)| *req && !seen.contains(n))
            .map(|(n, _)| format!("`{n}`"))
            .collect();
        if !missing.is_empty() {
            self.report(
                Diagnostic::new(
                    Code::MessageShape,
                    file,
                    m.name.span,
                    format!(
                        "the message `{}` has no {}",
                        m.name.text,
                        missing.join(" or ")
                    ),
                )
                .with_help("a message needs `to` (an email address), `subject` and `body`"),
            );
        }
    }

    fn function(&mut self, file: FileId, d: &FnDecl) {
        let Some(sig) = self
            .program
            .functions
            .get(&d.name.text)
            .and_then(|s| s.first())
            .cloned()
        else {
            return;
        };
        if sig.loc.span != d.name.span || sig.loc.file != file {
            return; // a duplicate, already reported
        }
        let Some(&id) = self.fn_ids.get(&d.name.text) else {
            return; // a standard-library declaration
        };
        let body = self.function_body(file, d, &sig);
        let function = body.map(|body| hir::Function {
            name: d.name.text.clone(),
            params: sig
                .params
                .iter()
                .map(|p| (p.name.clone(), p.ty.clone()))
                .collect(),
            ret: sig.ret.clone(),
            body,
        });
        if let Some(slot) = self.hir.functions.get_mut(id as usize) {
            *slot = function;
        }
    }

    /// A function's body, checked: its expression, or its Rhai script compiled.
    fn function_body(&mut self, file: FileId, d: &FnDecl, sig: &FnSig) -> Option<hir::FnBody> {
        match &d.body {
            FnBody::Expr(body) => {
                let mut cx = Ctx::new(file);
                cx.locals = sig
                    .params
                    .iter()
                    .map(|p| Local {
                        name: p.name.clone(),
                        ty: p.ty.clone(),
                        loc: p.loc,
                        used: false,
                        is_param: true,
                    })
                    .collect();
                let node = self.expect(&mut cx, body, &sig.ret, "the function's result");
                Some(hir::FnBody::Expr(node.finished()))
            }
            FnBody::Rhai(path) => {
                let file_name = self.sources.name(file).to_string();
                match self.host.rhai_source(&file_name, &path.value) {
                    Ok(text) => {
                        let compiled = crate::script::compile(&crate::script::sandbox(), &text);
                        let defines = compiled
                            .as_ref()
                            .ok()
                            .and_then(|ast| crate::script::defines(ast, &d.name.text));
                        if let Some(arity) = defines.filter(|n| *n != sig.params.len()) {
                            let declared = sig.params.len();
                            self.report(
                                Diagnostic::new(
                                    Code::ArgumentCount,
                                    file,
                                    path.span,
                                    format!("the script's `fn {}` takes {arity} parameter(s), but `{}` is declared with {declared}", d.name.text, d.name.text),
                                )
                                .with_label("this script")
                                .with_help("give the Rhai function the same parameters, in the same order, as the declaration"),
                            );
                        }
                        self.rhai.insert((file, path.value.clone()), text);
                        let err = match compiled {
                            Ok(ast) => {
                                return Some(hir::FnBody::Rhai(Arc::new(hir::Script {
                                    path: path.value.clone(),
                                    ast,
                                    defines_fn: defines.is_some(),
                                })))
                            }
                            Err(err) => err,
                        };
                        self.report(
                            Diagnostic::new(
                                Code::RhaiSyntax,
                                file,
                                path.span,
                                format!("the Rhai script `{}` does not compile: {err}", path.value),
                            )
                            .with_label("this script")
                            .with_help("the script is a Rhai expression whose value is the function's result; its parameters are variables"),
                        );
                        None
                    }
                    Err(RhaiSourceError::Unavailable) => Some(hir::FnBody::Unavailable {
                        file,
                        span: path.span,
                        path: path.value.clone(),
                    }),
                    Err(RhaiSourceError::Outside) => {
                        self.report(
                        Diagnostic::new(
                            Code::RhaiFileOutside,
                            file,
                            path.span,
                            format!("the Rhai file `{}` is outside the rule files' folders", path.value),
                        )
                        .with_label("not read")
                        .with_help("a script must be named by a relative path that stays inside the folder of the rule files (after links)"),
                    );
                        None
                    }
                    Err(RhaiSourceError::Missing) => {
                        self.report(
                            Diagnostic::new(
                                Code::RhaiFileMissing,
                                file,
                                path.span,
                                format!("no Rhai file `{}`", path.value),
                            )
                            .with_label("not found next to this file")
                            .with_help(
                                "Rhai files are found relative to the rule file that names them",
                            ),
                        );
                        None
                    }
                    Err(e) => {
                        self.report(
                            Diagnostic::new(
                                Code::RhaiFileMissing,
                                file,
                                path.span,
                                format!("the Rhai file `{}` {e}", path.value),
                            )
                            .with_label("this script")
                            .with_help("a Rhai script must be a readable UTF-8 file"),
                        );
                        None
                    }
                }
            }
        }
    }

    /// Steward functions may not call themselves, directly or through others:
    /// evaluation must always end.
    /// Functions that call themselves, and block actions whose calls come
    /// back to them, through others or not (E0211).
    fn recursion(&mut self) {
        let files = self.files;
        let mut calls: HashMap<&str, (FileId, Span, Vec<&str>)> = HashMap::new();
        let mut actions = HashSet::new();
        for f in files {
            for item in &f.tree.items {
                let mut called = Vec::new();
                let name = match item {
                    Item::Fn(FnDecl {
                        name,
                        body: FnBody::Expr(body),
                        ..
                    }) => {
                        calls_in(body, &mut called);
                        name
                    }
                    Item::Action(ActionDecl {
                        name,
                        body: ActionBody::Block(body),
                        ..
                    }) => {
                        actions_called(&body.stmts, &mut called);
                        actions.insert(name.text.as_str());
                        name
                    }
                    _ => continue,
                };
                calls
                    .entry(name.text.as_str())
                    .or_insert((f.id, name.span, called));
            }
        }
        let mut names: Vec<&str> = calls.keys().copied().collect();
        names.sort();
        let mut reported = HashSet::new();
        for start in names {
            let Some(&(file, span, _)) = calls.get(start) else {
                continue;
            };
            // Depth-first search for a path back to `start`.
            let mut stack = vec![(start, vec![start])];
            let mut visited = HashSet::new();
            while let Some((at, trail)) = stack.pop() {
                for &next in calls.get(at).map(|c| c.2.as_slice()).unwrap_or(&[]) {
                    if next == start {
                        if reported.insert(start) {
                            let cycle = trail
                                .iter()
                                .chain([&start])
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(" calls ");
                            let help = if actions.contains(start) {
                                "an action's block cannot call itself, so each call performs a known set of actions; call the other actions from the rule, one after the other"
                            } else {
                                "Steward functions cannot be recursive, so every rule finishes; write the logic without recursion, or in Rhai"
                            };
                            self.report(
                                Diagnostic::new(
                                    Code::Recursive,
                                    file,
                                    span,
                                    format!("`{start}` calls itself"),
                                )
                                .with_label(cycle)
                                .with_help(help),
                            );
                        }
                    } else if calls.contains_key(next) && visited.insert(next) {
                        let mut t = trail.clone();
                        t.push(next);
                        stack.push((next, t));
                    }
                }
            }
        }
    }

    /// Whom a notification or a task is for, as its argument: `role` (a
    /// name) or `assignee` (a string that must be there: an optional is
    /// defaulted with `??`).
    fn assignee(&mut self, cx: &mut Ctx, to: &Assignee, what: &str) -> (&'static str, hir::Expr) {
        match to {
            Assignee::Role(role) => {
                self.role_not_a_value(cx, role);
                let node = hir::Expr::new(
                    Type::String,
                    Loc {
                        file: cx.file,
                        span: role.span,
                    },
                    hir::ExprKind::Lit(hir::Lit::Str(Arc::from(role.text.as_str()))),
                );
                ("role", node)
            }
            Assignee::Person { who, .. } => {
                let ty = self.expr(cx, who);
                let ty = self.present_or(cx, who, ty, Some("\"ops@example.com\""));
                if !self
                    .program
                    .assignable(&ty.ty, ty.str_konst(), &Type::String)
                {
                    self.mismatch(cx.file, who, &ty, &Type::String, what);
                    let at = Loc {
                        file: cx.file,
                        span: who.span,
                    };
                    return ("assignee", hir::Expr::error(at));
                }
                let mut node = ty.node;
                node.settle(&Type::String);
                node.finish();
                ("assignee", node)
            }
        }
    }

    /// Warns when a role is named like a field or a `let` in scope: roles are
    /// names, so `notify role owner_id` notifies the role called `owner_id`,
    /// not the person whose id the field holds.
    fn role_not_a_value(&mut self, cx: &Ctx, role: &Name) {
        let local = cx.locals.iter().any(|l| l.name == role.text);
        let field = cx
            .event
            .is_some_and(|id| self.program.record(id).field(&role.text).is_some());
        if !(local || field) {
            return;
        }
        let what = if local {
            "a `let`"
        } else {
            "a field of the event"
        };
        self.report(
            Diagnostic::new(
                Code::RoleNamedLikeValue,
                cx.file,
                role.span,
                format!("`{}` is a role name here, and also {what}", role.text),
            )
            .with_label("the role named this, not the value")
            .with_help(format!("roles are fixed names your application maps to people (`role owner`); the value is not used. To reach the person the value names, write it without `role`: `{}`", role.text)),
        );
    }

    /// Reports `name` when a field of that name is already in `given`: a
    /// payload (of `emit`, or of `given` in a test) names each field once.
    pub(super) fn given_once(&mut self, file: FileId, given: &[&Name], name: &Name) {
        if let Some(first) = given.iter().find(|g| g.text == name.text) {
            self.report(
                Diagnostic::new(
                    Code::DuplicateField,
                    file,
                    name.span,
                    format!("`{}` is given twice", name.text),
                )
                .with_label("given again here")
                .with_secondary(file, first.span, "first given here")
                .with_help("give each field once"),
            );
        }
    }

    fn rule(&mut self, file: FileId, r: &RuleDecl) {
        if r.name.is_none() {
            self.stateful_needs_name(file, r);
        }
        let mut cx = Ctx::new(file);
        let trigger = match &r.trigger {
            Trigger::When { event, .. } => match self.program.events.get(&event.text) {
                Some(&id) => {
                    let loc = self.program.record(id).loc;
                    self.refer(file, event.span, loc, DefKind::Event);
                    cx.event = Some(id);
                    cx.in_rule = true;
                    hir::Trigger::Event {
                        event_type: Arc::from(event.text.as_str()),
                        record: id,
                    }
                }
                None => {
                    self.unknown_event(file, event);
                    // Names cannot be known without the event: accept them
                    // silently and check the rest.
                    cx.in_rule = true;
                    cx.lenient = true;
                    hir::Trigger::Error
                }
            },
            Trigger::Every { schedule: s, .. } => self.schedule(file, s),
            Trigger::Quiet(q) => self.quiet(&mut cx, q),
        };
        let name: Arc<str> = match &r.name {
            Some(n) => Arc::from(n.text.as_str()),
            None => {
                let source = self.sources.get(file);
                let line = source.lines.line_col(r.span.start).line.saturating_add(1);
                let base = std::path::Path::new(&*source.name)
                    .file_name()
                    .map_or_else(|| source.name.to_string(), |n| n.to_string_lossy().into());
                Arc::from(format!("{base}:{line}"))
            }
        };
        if matches!(r.trigger, Trigger::Quiet(_)) {
            self.no_windows_on_quiet(file, r);
        }
        self.rule_recalls.clear();
        let rest = self.rule_rest(&mut cx, r);
        self.clauses_contradict(file, r, cx.event);
        let mut recalls = std::mem::take(&mut self.rule_recalls);
        recalls.sort_unstable();
        recalls.dedup();
        self.hir.rules.push(hir::Rule {
            name,
            file,
            span: r.span,
            title: r.title.as_ref().map(|t| t.value.clone()),
            trigger,
            conditions: rest.conditions,
            throttle: rest.throttle,
            count: rest.count,
            priority: rest.priority,
            recalls,
            body: rest.body,
        });
    }

    /// A rule that holds state (a timer, an approval, a throttle window, a
    /// schedule position) is identified by its name, which stays when the
    /// file is renamed or edited; the one-line form has none.
    fn stateful_needs_name(&mut self, file: FileId, r: &RuleDecl) {
        let what = if matches!(r.trigger, Trigger::Every { .. }) {
            "runs on a schedule"
        } else if matches!(r.trigger, Trigger::Quiet(_)) {
            "watches for what does not happen"
        } else if r
            .clauses
            .iter()
            .any(|c| matches!(c, Clause::Throttle { .. }))
        {
            "is throttled"
        } else if r.clauses.iter().any(|c| matches!(c, Clause::Count { .. })) {
            "counts events"
        } else if holds_state(&r.body.stmts) {
            "waits (a timer or an approval)"
        } else {
            return;
        };
        let base = match &r.trigger {
            Trigger::When { event, .. } => event.text.replace('.', "_"),
            Trigger::Quiet(q) => format!("no_{}", q.event.text.replace('.', "_")),
            Trigger::Every { .. } => "schedule".to_string(),
        };
        let names: HashSet<&str> = self
            .files
            .iter()
            .flat_map(|f| f.tree.items.iter())
            .filter_map(|item| match item {
                Item::Rule(RuleDecl { name: Some(n), .. }) => Some(n.text.as_str()),
                _ => None,
            })
            .collect();
        let taken = |n: &str| names.contains(n);
        let name = std::iter::once(base.clone())
            .chain((2..).map(|i| format!("{base}_{i}")))
            .find(|n| !taken(n))
            .unwrap_or(base);
        let text = self.sources.text(file).get(r.span.range()).unwrap_or("");
        let end = if text.contains('\n') { "\nend" } else { " end" };
        let span = Span::new(r.span.start as usize, r.span.start as usize);
        self.report(
            Diagnostic::new(Code::UnnamedStatefulRule, file, span, format!("this rule {what}, so it needs a name"))
                .with_label("a rule without a name")
                .with_help("timers, approvals, throttles and schedules are kept under the rule's name, so that editing or renaming the file does not lose them or run them twice; write it as `rule NAME ... end`")
                .with_fix(format!("name it `{name}`"), r.span, format!("rule {name} {text}{end}")),
        );
    }

    pub(super) fn unknown_event(&mut self, file: FileId, event: &Name) {
        let names: Vec<String> = self.program.events.keys().cloned().collect();
        let help = did_you_mean(&event.text, names.iter().map(String::as_str))
            .unwrap_or_else(|| format!("declare it: `event {} {{ ... }}`", event.text));
        self.report(
            Diagnostic::new(
                Code::UnknownEvent,
                file,
                event.span,
                format!("no event `{}`", event.text),
            )
            .with_label("unknown event")
            .with_help(help),
        );
    }

    /// A cron expression written at `span` (a string literal), parsed, or
    /// reported at the field that is wrong.
    fn cron(&mut self, file: FileId, span: Span, text: &str) -> Result<schedule::CronSchedule, ()> {
        let parsed = schedule::CronSchedule::parse(text);
        if let Err(err) = &parsed {
            // Point at the field inside the string when we know it.
            let at = match err.field {
                Some((start, end)) if span.len() as usize == text.len() + 2 => Span::new(
                    span.start as usize + 1 + start,
                    span.start as usize + 1 + end,
                ),
                _ => span,
            };
            self.report(
                Diagnostic::new(
                    Code::InvalidCron,
                    file,
                    at,
                    format!("invalid cron expression: {}", err.message),
                )
                .with_help(err.help.clone()),
            );
        }
        parsed.map_err(|_| ())
    }

    /// `every "CRON" in ZONE unless E on k do ... end` in a rule: a schedule
    /// of the rule's event key.
    #[allow(clippy::too_many_arguments)]
    fn every(
        &mut self,
        cx: &mut Ctx,
        step: u32,
        span: Span,
        when: &Expr,
        zone: Option<&Expr>,
        unless: &[Unless],
        skip_late: bool,
        body: &Block,
        steps: &mut hir::Steps,
    ) -> Option<hir::Stmt> {
        let file = cx.file;
        let schedule = match &when.kind {
            ExprKind::Str(t) => match t.as_plain() {
                Some(text) => self.cron(file, when.span, &text).ok(),
                None => {
                    self.report(
                        Diagnostic::new(Code::InvalidCron, file, when.span, "a schedule's cron expression is written out, without `{...}`")
                            .with_help("write it as text, such as `every \"0 8 * * *\" in tz`; the zone may come from the event"),
                    );
                    None
                }
            },
            _ => None,
        };
        if cx.event.is_none() && !cx.lenient {
            self.report(
                Diagnostic::new(Code::ScheduleWithoutEvent, file, span, "a schedule statement needs the event that started it")
                    .with_help("put it in a rule that starts with `when`: its schedule is kept per event key; a rule that runs on a schedule is written `every \"...\" then ...`"),
            );
        }
        if skip_late {
            self.report(
                Diagnostic::new(Code::InvalidTiming, file, span, "a schedule has no late ticks to skip")
                    .with_help("a tick missed while the engine was down fires once when it comes back; remove `skip if late`"),
            );
        }
        let zone = match zone {
            None => Some(hir::Zone::Fixed(chrono_tz::Tz::UTC)),
            Some(z) => match &z.kind {
                ExprKind::Str(t) if t.as_plain().is_some() => {
                    let name = t.as_plain().unwrap_or_default();
                    self.known_zone(file, z.span, &name);
                    name.parse::<chrono_tz::Tz>().ok().map(hir::Zone::Fixed)
                }
                _ => Some(hir::Zone::Of(
                    self.expect(cx, z, &Type::String, "the time zone")
                        .finished(),
                )),
            },
        };
        let (cancels, body) = self.suspended_block(cx, unless, body, steps);
        Some(hir::Stmt::Every {
            step,
            schedule: Box::new(schedule?),
            zone: zone?,
            unless: cancels,
            body,
        })
    }

    fn schedule(&mut self, file: FileId, s: &Schedule) -> hir::Trigger {
        match s {
            Schedule::Cron { expr, zone } => {
                let parsed = self.cron(file, expr.span, &expr.value);
                let tz = match zone {
                    Some(zone) => {
                        self.known_zone(file, zone.span, &zone.value);
                        zone.value.parse::<chrono_tz::Tz>().ok()
                    }
                    None => Some(chrono_tz::Tz::UTC),
                };
                match (parsed, tz) {
                    (Ok(schedule), Some(zone)) => hir::Trigger::Cron {
                        schedule: Box::new(schedule),
                        zone,
                    },
                    _ => hir::Trigger::Error,
                }
            }
            Schedule::Interval(e) => {
                let ExprKind::Duration(ms) = e.kind else {
                    return hir::Trigger::Error;
                };
                {
                    if ms <= 0 {
                        self.report(
                            Diagnostic::new(
                                Code::InvalidTiming,
                                file,
                                e.span,
                                "a schedule's interval must be longer than zero",
                            )
                            .with_help("write a positive duration such as `every 15m`"),
                        );
                        return hir::Trigger::Error;
                    }
                }
                hir::Trigger::Interval(ms)
            }
        }
    }

    fn rule_rest(&mut self, cx: &mut Ctx, r: &RuleDecl) -> RuleRest {
        let file = cx.file;
        let mut rest = RuleRest::default();
        let mut seen_throttle: Option<Span> = None;
        let mut seen_count: Option<Span> = None;
        let mut seen_priority: Option<Span> = None;
        let mut seen_unless: Option<Span> = None;
        let mut seen_condition: Option<Span> = None;
        for clause in &r.clauses {
            match clause {
                Clause::Unless { span, cond } => {
                    if let Some(first) = seen_unless.replace(*span) {
                        self.duplicate_clause(file, *span, first, "unless");
                    }
                    let ty = self.condition(cx, cond);
                    self.constant_condition(file, cond, &ty, cx.event);
                    facts(cond, false, &mut cx.facts);
                    // Explained as written: `unless guest.vip`.
                    let at = Loc { file, span: *span };
                    rest.conditions.push(hir::Expr::new(
                        Type::Bool,
                        at,
                        hir::ExprKind::Not(Box::new(ty.node)),
                    ));
                }
                Clause::Priority { span, value } => {
                    if let Some(first) = seen_priority.replace(*span) {
                        self.duplicate_clause(file, *span, first, "priority");
                    }
                    let ty = self.expect(cx, value, &Type::Int, "a priority");
                    match ty.konst {
                        Some(Const::Int(n)) => rest.priority = Some(n),
                        _ if ty.ty == Type::Error => {}
                        _ => self.report(
                            Diagnostic::new(
                                Code::InvalidTiming,
                                file,
                                value.span,
                                "a priority is a whole number written out",
                            )
                            .with_help("write a number such as `priority 1`: rules with a priority run first, lowest first"),
                        ),
                    }
                }
                Clause::Throttle {
                    span,
                    count,
                    per,
                    by,
                } => {
                    if let Some(first) = seen_throttle.replace(*span) {
                        self.duplicate_clause(file, *span, first, "throttle");
                    }
                    let window = self.window_clause(cx, count, per, by.as_ref(), "throttle");
                    rest.throttle = Some(window);
                }
                Clause::Count {
                    span,
                    count,
                    within,
                    by,
                } => {
                    if let Some(first) = seen_count.replace(*span) {
                        self.duplicate_clause(file, *span, first, "count");
                    }
                    let window = self.window_clause(cx, count, within, by.as_ref(), "count");
                    rest.count = Some((window, rest.conditions.len()));
                }
                Clause::Condition { span, cond } => {
                    if let Some(first) = seen_condition.replace(*span) {
                        self.duplicate_clause(file, *span, first, "if");
                    }
                    let ty = self.condition(cx, cond);
                    self.constant_condition(file, cond, &ty, cx.event);
                    facts(cond, true, &mut cx.facts);
                    conjuncts(ty.node, &mut rest.conditions);
                }
            }
        }
        let mut steps = hir::Steps::new(self.sources.text(file));
        rest.body = self.block(cx, &r.body, &mut steps);
        rest
    }

    /// The count, window and key of a `throttle N per D by K` or a `count N
    /// within D by K` clause (`what` is its keyword).
    fn window_clause(
        &mut self,
        cx: &mut Ctx,
        count: &Expr,
        per: &Expr,
        by: Option<&Expr>,
        what: &str,
    ) -> hir::Window {
        let file = cx.file;
        let (number, period, example, key_example) = if what == "throttle" {
            (
                "a throttle's count",
                "the throttle's period",
                "throttle 1 per 24h",
                "throttle by a field such as `guest.email`",
            )
        } else {
            (
                "the number of events to count",
                "the count's window",
                "count 5 within 10m",
                "count by a field such as `email`",
            )
        };
        let c = self.expect(cx, count, &Type::Int, number);
        if matches!(c.konst, Some(Const::Int(n)) if n < 1)
            || (c.konst.is_none() && c.ty != Type::Error)
        {
            self.report(
                Diagnostic::new(
                    Code::InvalidTiming,
                    file,
                    count.span,
                    format!("{number} must be a whole number of at least 1"),
                )
                .with_help(format!("write a number such as `{example}`")),
            );
        }
        let per = self.positive_duration(cx, per, period);
        let mut key = None;
        if let Some(by) = by {
            let ty = self.expr(cx, by);
            let mut ty = self.present(cx, by, ty);
            let mut node = ty.take();
            node.finish();
            key = Some(node);
            if !ty.ty.is_displayable() {
                let shown = self.program.show(&ty.ty);
                self.report(
                    Diagnostic::new(Code::TypeMismatch, file, by.span, format!("a {what} key must be text, a number or a date, but this is a `{shown}`"))
                        .with_help(key_example),
                );
            }
        }
        hir::Window {
            count: c.node,
            per,
            by: key,
        }
    }

    /// An `if` and an `unless` clause that cannot both hold (`if nights > 5
    /// unless nights > 3`): the rule never fires. (One clause alone is
    /// judged where it is checked.)
    fn clauses_contradict(&mut self, file: FileId, r: &RuleDecl, event: Option<RecordId>) {
        let negated: Vec<Expr> = r
            .clauses
            .iter()
            .filter_map(|c| match c {
                Clause::Unless { cond, .. } => Some(Expr {
                    span: cond.span,
                    kind: ExprKind::Unary(UnaryOp::Not, Box::new(cond.clone())),
                }),
                _ => None,
            })
            .collect();
        let conds: Vec<&Expr> = r
            .clauses
            .iter()
            .filter_map(|c| match c {
                Clause::Condition { cond, .. } => Some(cond),
                _ => None,
            })
            .chain(&negated)
            .collect();
        if conds.len() < 2 {
            return;
        }
        let domain = |p: &str| self.union_members(event, p);
        if let Some(why) = contradiction_all(&conds, &domain) {
            let span = conds
                .iter()
                .map(|c| c.span)
                .reduce(|a, b| a.to(b))
                .unwrap_or(r.span);
            self.report(
                Diagnostic::new(Code::AlwaysFalse, file, span, "this rule can never fire: its clauses contradict each other")
                    .with_label(why)
                    .with_help("the `if` and the `unless` cannot both let an event through; fix one of them, or remove the rule"),
            );
        }
    }

    /// The `unless` clauses and the block of a timer or a schedule
    /// statement, which runs later.
    fn suspended_block(
        &mut self,
        cx: &mut Ctx,
        unless: &[Unless],
        body: &Block,
        steps: &mut hir::Steps,
    ) -> (Vec<hir::Unless>, Vec<hir::Stmt>) {
        let cancels = unless.iter().filter_map(|u| self.unless(cx, u)).collect();
        cx.suspended += 1;
        let body = self.block(cx, body, steps);
        cx.suspended -= 1;
        (cancels, body)
    }

    /// `stop`, where an event is being handled.
    fn stop(&mut self, cx: &Ctx, span: Span) -> Option<hir::Stmt> {
        if cx.suspended > 0 || cx.quiet {
            self.report(
                Diagnostic::new(
                    Code::StopOutsideEvent,
                    cx.file,
                    span,
                    "`stop` ends the handling of an event, and this runs later, on its own",
                )
                .with_help("put `stop` in the rule's body, outside timers, approvals and rules on what did not happen: it keeps later rules from handling the event"),
            );
            return None;
        }
        Some(hir::Stmt::Stop)
    }

    /// A rule on what did not happen fires once per quiet period: a
    /// `throttle` or a `count` would have no event to count.
    fn no_windows_on_quiet(&mut self, file: FileId, r: &RuleDecl) {
        for clause in &r.clauses {
            let (span, what) = match clause {
                Clause::Throttle { span, .. } => (*span, "throttle"),
                Clause::Count { span, .. } => (*span, "count"),
                Clause::Condition { .. } | Clause::Priority { .. } | Clause::Unless { .. } => {
                    continue
                }
            };
            self.report(
                Diagnostic::new(
                    Code::InvalidTiming,
                    file,
                    span,
                    format!("a rule on what did not happen cannot `{what}`"),
                )
                .with_help("it fires once per quiet period already; remove the clause, or put it on a rule that the quiet rule `emit`s an event to"),
            );
        }
    }

    fn duplicate_clause(&mut self, file: FileId, span: Span, first: Span, what: &str) {
        let keep_one = format!("keep one `{what}`");
        let help = if what == "if" {
            "join the conditions with `and`"
        } else {
            &keep_one
        };
        self.report(
            Diagnostic::new(
                Code::DuplicateClause,
                file,
                span,
                format!("a rule has at most one `{what}` clause"),
            )
            .with_secondary(file, first, "the first one")
            .with_help(help),
        );
    }

    /// Warns about conditions whose value is known when checking.
    fn constant_condition(&mut self, file: FileId, cond: &Expr, ty: &Ty, event: Option<RecordId>) {
        match ty.konst {
            Some(Const::Bool(false)) => {
                self.report(
                    Diagnostic::new(
                        Code::AlwaysFalse,
                        file,
                        cond.span,
                        "this condition is never true",
                    )
                    .with_label("always false")
                    .with_help(
                        "the actions after it never run; fix the condition or remove the rule",
                    ),
                );
            }
            Some(Const::Bool(true)) => {
                self.report(
                    Diagnostic::new(
                        Code::AlwaysTrue,
                        file,
                        cond.span,
                        "this condition is always true",
                    )
                    .with_label("always true")
                    .with_help("remove the condition, or fix it"),
                );
            }
            _ => {
                let domain = |p: &str| self.union_members(event, p);
                if let Some(why) = contradiction(cond, &domain) {
                    // Two comparisons that exclude each other were likely
                    // meant as alternatives; one that excludes what the
                    // type allows compares with the wrong values.
                    let help = match strip_parens(cond).kind {
                        ExprKind::Binary(BinaryOp::And, ..) => {
                            "the actions after it never run; did you mean `or`?"
                        }
                        _ => "the actions after it never run; compare with a value the field can hold, or remove the condition",
                    };
                    self.report(
                        Diagnostic::new(
                            Code::AlwaysFalse,
                            file,
                            cond.span,
                            "this condition is never true",
                        )
                        .with_label(why)
                        .with_help(help),
                    );
                }
            }
        }
    }

    pub(super) fn positive_duration(&mut self, cx: &mut Ctx, e: &Expr, what: &str) -> hir::Expr {
        let node = self.expect(cx, e, &Type::Duration, what).node;
        if let ExprKind::Duration(ms) = e.kind {
            if ms <= 0 {
                self.report(
                    Diagnostic::new(
                        Code::InvalidTiming,
                        cx.file,
                        e.span,
                        format!("{what} must be longer than zero"),
                    )
                    .with_help("write a positive duration such as `30m`, `24h` or `2d`"),
                );
            }
        }
        node
    }

    pub(super) fn block(
        &mut self,
        cx: &mut Ctx,
        block: &Block,
        steps: &mut hir::Steps,
    ) -> Vec<hir::Stmt> {
        let mark = cx.locals.len();
        let facts_mark = cx.facts.len();
        let mut out = Vec::new();
        for stmt in &block.stmts {
            out.extend(self.stmt(cx, stmt, steps));
        }
        for local in cx.locals.drain(mark..) {
            if !local.used && !local.is_param && !local.name.starts_with('_') {
                self.report(
                    Diagnostic::new(
                        Code::UnusedLet,
                        local.loc.file,
                        local.loc.span,
                        format!("`{}` is never used", local.name),
                    )
                    .with_label("bound here")
                    .with_help(format!(
                        "remove the `let`, or name it `_{}` to keep it",
                        local.name
                    )),
                );
            }
        }
        cx.facts.truncate(facts_mark);
        out
    }

    fn stmt(&mut self, cx: &mut Ctx, stmt: &Stmt, steps: &mut hir::Steps) -> Option<hir::Stmt> {
        let step = steps.id(stmt);
        let here = Loc {
            file: cx.file,
            span: stmt.span,
        };
        match &stmt.kind {
            StmtKind::Stop => self.stop(cx, stmt.span),
            StmtKind::Let { name, ty, value } => self.let_stmt(cx, name, ty.as_ref(), value),
            StmtKind::If {
                branches,
                otherwise,
            } => self.if_stmt(cx, branches, otherwise.as_ref(), steps),
            StmtKind::Send { message } => self.send_stmt(cx, step, message, stmt.span),
            StmtKind::Notify { to, text } => self.notify_stmt(cx, step, here, to, text),
            StmtKind::CreateTask { title, to, due } => {
                self.create_task_stmt(cx, step, here, title, to, due.as_ref())
            }
            StmtKind::Emit {
                event,
                fields,
                record_span,
            } => self
                .emit(cx, event, fields, *record_span)
                .map(|act| hir::Stmt::Act(hir::Act { step, ..act })),
            StmtKind::Log { text } => self.log_stmt(cx, step, here, text),
            StmtKind::Timer {
                kind: TimerKind::Every,
                when,
                zone,
                unless,
                skip_late,
                body,
            } => self.every(
                cx,
                step,
                stmt.span,
                when,
                zone.as_ref(),
                unless,
                *skip_late,
                body,
                steps,
            ),
            StmtKind::Timer {
                kind,
                when,
                unless,
                skip_late,
                body,
                ..
            } => self.timer_stmt(cx, step, *kind, when, unless, *skip_late, body, steps),
            StmtKind::Approval {
                role,
                within,
                body,
                otherwise,
            } => self.approval_stmt(cx, step, role, within, body, otherwise.as_ref(), steps),
            StmtKind::Call { name, args } => self.call_stmt(cx, step, here, name, args),
        }
    }

    /// `let name: type = value`: the value checked against the declared
    /// type, or its own type given to the name.
    fn let_stmt(
        &mut self,
        cx: &mut Ctx,
        name: &Name,
        ty: Option<&TypeExpr>,
        value: &Expr,
    ) -> Option<hir::Stmt> {
        let file = cx.file;
        let declared = ty.map(|t| self.resolve_type(file, t, &[]));
        let mut node;
        let value_ty = match &declared {
            Some(d) => {
                node = self.expect(cx, value, d, &format!("`{}`", name.text)).node;
                d.clone()
            }
            None => {
                node = self.expr(cx, value).node;
                node.finish();
                match node.ty.clone() {
                    Type::None => {
                        self.report(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                file,
                                value.span,
                                format!("the type of `{}` cannot be known from `none`", name.text),
                            )
                            .with_help(format!(
                                "write its type: `let {}: string? = none`",
                                name.text
                            )),
                        );
                        Type::Error
                    }
                    other => other,
                }
            }
        };
        if value_ty != Type::Error {
            self.lets.push(super::TypeAt {
                at: Loc {
                    file,
                    span: name.span,
                },
                ty: value_ty.clone(),
            });
        }
        self.bind_let(cx, name, value_ty);
        Some(hir::Stmt::Let {
            name: name.text.clone(),
            value: node,
        })
    }

    /// `if ... else if ... else ... end`: each branch checked knowing its
    /// condition holds and the earlier ones did not.
    fn if_stmt(
        &mut self,
        cx: &mut Ctx,
        branches: &[(Expr, Block)],
        otherwise: Option<&Block>,
        steps: &mut hir::Steps,
    ) -> Option<hir::Stmt> {
        let file = cx.file;
        let mut negated: Vec<String> = Vec::new();
        let mut arms = Vec::new();
        for (cond, body) in branches {
            let mut bcx = cx.clone();
            bcx.facts.extend(negated.iter().cloned());
            let ty = self.condition(&mut bcx, cond);
            self.constant_condition(file, cond, &ty, cx.event);
            facts(cond, true, &mut bcx.facts);
            let body = self.block(&mut bcx, body, steps);
            arms.push((ty.node, body));
            cx.locals = bcx.locals;
            facts(cond, false, &mut negated);
        }
        let mut rest = Vec::new();
        if let Some(body) = otherwise {
            let mut bcx = cx.clone();
            bcx.facts.extend(negated);
            rest = self.block(&mut bcx, body, steps);
            cx.locals = bcx.locals;
        }
        Some(hir::Stmt::If {
            branches: arms,
            otherwise: rest,
        })
    }

    /// `send message`: the message's name and its fields, checked in the
    /// sending rule's scope.
    fn send_stmt(
        &mut self,
        cx: &mut Ctx,
        step: u32,
        message: &Name,
        span: Span,
    ) -> Option<hir::Stmt> {
        let fields = self.send(cx, message, span)?;
        let name = hir::Expr::new(
            Type::String,
            Loc {
                file: cx.file,
                span: message.span,
            },
            hir::ExprKind::Lit(hir::Lit::Str(Arc::from(message.text.as_str()))),
        );
        let mut args = vec![(Arc::from("message"), name)];
        args.extend(fields);
        Some(hir::Stmt::Act(hir::Act {
            step,
            action: Arc::from("send"),
            args,
            emit: None,
        }))
    }

    /// `notify TO "text"`: whom the notification is for and its text.
    fn notify_stmt(
        &mut self,
        cx: &mut Ctx,
        step: u32,
        here: Loc,
        to: &Assignee,
        text: &Expr,
    ) -> Option<hir::Stmt> {
        let to = self.assignee(cx, to, "whom the notification is for");
        let ty = self.builtin_param("notify", "text");
        let text = self
            .expect(cx, text, &ty, "the notification's text")
            .finished();
        Some(hir::Stmt::Act(builtin_act(
            step,
            "notify",
            vec![to, ("text", text)],
            here,
        )))
    }

    /// `create task "title" for TO due WHEN`: the task's title, whom it is
    /// for and its due time (`none` when left out).
    fn create_task_stmt(
        &mut self,
        cx: &mut Ctx,
        step: u32,
        here: Loc,
        title: &Expr,
        to: &Assignee,
        due: Option<&Expr>,
    ) -> Option<hir::Stmt> {
        let to = self.assignee(cx, to, "whom the task is for");
        let ty = self.builtin_param("create_task", "title");
        let title = self.expect(cx, title, &ty, "the task's title").finished();
        let due = match due {
            Some(due) => {
                let ty = self.builtin_param("create_task", "due");
                self.expect(cx, due, ty.present(), "the task's due time")
                    .node
            }
            None => hir::Expr::none(here),
        };
        Some(hir::Stmt::Act(builtin_act(
            step,
            "create_task",
            vec![to, ("title", title), ("due", due)],
            here,
        )))
    }

    /// `log "text"`: the log line.
    fn log_stmt(&mut self, cx: &mut Ctx, step: u32, here: Loc, text: &Expr) -> Option<hir::Stmt> {
        let ty = self.builtin_param("log", "text");
        let line = self.expect(cx, text, &ty, "the log line").finished();
        Some(hir::Stmt::Act(builtin_act(
            step,
            "log",
            vec![("text", line)],
            here,
        )))
    }

    /// `after DELAY` or `at TIME` with its `unless` clauses and its block,
    /// which runs later.
    #[allow(clippy::too_many_arguments)]
    fn timer_stmt(
        &mut self,
        cx: &mut Ctx,
        step: u32,
        kind: TimerKind,
        when: &Expr,
        unless: &[Unless],
        skip_late: bool,
        body: &Block,
        steps: &mut hir::Steps,
    ) -> Option<hir::Stmt> {
        let when = match kind {
            TimerKind::At => self.expect(cx, when, &Type::DateTime, "the time").node,
            _ => self.positive_duration(cx, when, "the delay"),
        };
        let (cancels, body) = self.suspended_block(cx, unless, body, steps);
        Some(hir::Stmt::Timer {
            step,
            kind,
            when,
            unless: cancels,
            skip_late,
            body,
        })
    }

    /// `require approval from R within D do ... else ... end`: the deadline
    /// and both blocks, which run later.
    #[allow(clippy::too_many_arguments)]
    fn approval_stmt(
        &mut self,
        cx: &mut Ctx,
        step: u32,
        role: &Name,
        within: &Expr,
        body: &Block,
        otherwise: Option<&Block>,
        steps: &mut hir::Steps,
    ) -> Option<hir::Stmt> {
        let within = self.positive_duration(cx, within, "the approval's deadline");
        cx.suspended += 1;
        let body = self.block(cx, body, steps);
        let otherwise = otherwise.map(|o| self.block(cx, o, steps));
        cx.suspended -= 1;
        Some(hir::Stmt::Approval {
            step,
            role: Arc::from(role.text.as_str()),
            within,
            body,
            otherwise,
        })
    }

    /// A call of a user action as a statement: a webhook call, or the block
    /// of a block action expanded in place.
    fn call_stmt(
        &mut self,
        cx: &mut Ctx,
        step: u32,
        here: Loc,
        name: &Name,
        args: &[Arg],
    ) -> Option<hir::Stmt> {
        let mut tys: Vec<Ty> = args.iter().map(|a| self.expr(cx, &a.value)).collect();
        let Some(action) = self.program.actions.get(&name.text).cloned() else {
            self.not_an_action(cx.file, name);
            self.detach(tys);
            return None;
        };
        self.refer(cx.file, name.span, action.loc, DefKind::Action);
        self.check_args(
            cx,
            Callee {
                name: &name.text,
                kind: "action",
                params: &action.params,
            },
            args,
            &tys,
            here.span,
        );
        let given = action_args(&action.params, args, &mut tys, here);
        if action.webhook.is_none() {
            return self.inline_call(cx, &action, given, step);
        }
        Some(hir::Stmt::Act(hir::Act {
            step,
            action: Arc::from(name.text.as_str()),
            args: given,
            emit: None,
        }))
    }

    /// A statement calling what is not a user action: a built-in action, a
    /// function, or an unknown name.
    fn not_an_action(&mut self, file: FileId, name: &Name) {
        if super::actions::builtin(&name.text).is_some() {
            self.report(
                Diagnostic::new(Code::WrongKindOfCall, file, name.span, format!("`{}` is written as its own statement, not called", name.text))
                    .with_help("write `send message_name`, `notify role r \"text\"`, `create task \"title\" for role r`, `emit event.type { ... }` or `log \"text\"`"),
            );
        } else if self.program.functions.contains_key(&name.text) {
            self.report(
                Diagnostic::new(
                    Code::WrongKindOfCall,
                    file,
                    name.span,
                    format!(
                        "`{}` is a function; calling it alone does nothing",
                        name.text
                    ),
                )
                .with_help(format!(
                    "use its value: `let x = {}(...)`, or in a condition",
                    name.text
                )),
            );
        } else {
            let names: Vec<String> = self
                .program
                .actions
                .values()
                .map(|a| a.name.clone())
                .collect();
            let help =
                did_you_mean(&name.text, names.iter().map(String::as_str)).unwrap_or_else(|| {
                    format!(
                        "declare it: `action {}(...) via webhook \"https://...\"`",
                        name.text
                    )
                });
            self.report(
                Diagnostic::new(
                    Code::UnknownFunction,
                    file,
                    name.span,
                    format!("no action `{}`", name.text),
                )
                .with_label("unknown action")
                .with_help(help),
            );
        }
    }

    /// The type of a parameter of a built-in action (see `check::actions`).
    fn builtin_param(&self, action: &str, param: &str) -> Type {
        super::actions::builtin(action)
            .and_then(|a| a.param(param))
            .map_or(Type::Error, |p| p.ty.ty())
    }

    fn bind_let(&mut self, cx: &mut Ctx, name: &Name, ty: Type) {
        let file = cx.file;
        let reserved = [super::stdlib::EVENT, super::stdlib::ENVELOPE];
        if reserved.contains(&name.text.as_str()) {
            self.report(
                Diagnostic::new(Code::ReservedName, file, name.span, format!("`{}` is reserved", name.text))
                    .with_help("`event` is the whole payload and `envelope` the event's id, tenant, type and time; choose another name"),
            );
            return;
        }
        let field_loc = cx
            .event
            .and_then(|id| self.program.record(id).field(&name.text).map(|f| f.loc));
        let earlier = cx
            .locals
            .iter()
            .rev()
            .find(|l| l.name == name.text)
            .map(|l| l.loc)
            .or(field_loc);
        if let Some(earlier) = earlier {
            let what = if field_loc.is_some() {
                "a field of the event"
            } else {
                "already bound"
            };
            self.report(
                Diagnostic::new(
                    Code::Shadowed,
                    file,
                    name.span,
                    format!("`{}` is {what}", name.text),
                )
                .with_secondary(earlier.file, earlier.span, "defined here")
                .with_help("choose another name, so each name means one thing in a rule"),
            );
        }
        cx.locals.push(Local {
            name: name.text.clone(),
            ty,
            loc: Loc {
                file,
                span: name.span,
            },
            used: false,
            is_param: false,
        });
    }

    /// Checks `send message` and gives the message's fields, checked in the
    /// sending rule's scope.
    fn send(
        &mut self,
        cx: &mut Ctx,
        message: &Name,
        span: Span,
    ) -> Option<Vec<(Arc<str>, hir::Expr)>> {
        let Some(&(mfile, index)) = self.program.messages.get(&message.text) else {
            let names: Vec<String> = self.program.messages.keys().cloned().collect();
            let help = did_you_mean(&message.text, names.iter().map(String::as_str))
                .unwrap_or_else(|| {
                    format!(
                        "declare it: `message {} {{ to: ..., subject: \"...\", body: \"...\" }}`",
                        message.text
                    )
                });
            self.report(
                Diagnostic::new(
                    Code::UnknownMessage,
                    cx.file,
                    message.span,
                    format!("no message `{}`", message.text),
                )
                .with_label("unknown message")
                .with_help(help),
            );
            return None;
        };
        let files = self.files;
        let Some(Item::Message(decl)) = files
            .iter()
            .find(|f| f.id == mfile)
            .and_then(|f| f.tree.items.get(index))
        else {
            return None;
        };
        let mut out = Vec::new();
        self.refer(
            cx.file,
            message.span,
            Loc {
                file: mfile,
                span: decl.name.span,
            },
            DefKind::Message,
        );
        // The message's fields, in the scope of this rule at this `send`.
        let saved_file = std::mem::replace(&mut cx.file, mfile);
        let saved_send = cx.send.replace(SendSite {
            file: saved_file,
            span,
            message: message.text.clone(),
        });
        for field in &decl.fields {
            let Some(param) = super::actions::message_fields().find(|p| p.name == field.name.text)
            else {
                continue;
            };
            let expected = param.ty.ty().present().clone();
            let mut ty = self.expr(cx, &field.value);
            if ty.ty == Type::Error {
                continue;
            }
            let mut node = ty.take();
            node.finish();
            out.push((Arc::from(field.name.text.as_str()), node));
            let ok_list = param.ty.takes_list()
                && matches!(&ty.ty, Type::List(e) if e.is_stringy() || **e == Type::Error);
            if !ok_list {
                // `cc`, `bcc` and `reply_to` may be absent: the mail goes
                // without them. `to`, `subject` and `body` may not.
                let ty = if param.ty.ty().is_optional() {
                    Ty::of(ty.ty.present().clone())
                } else {
                    self.present(cx, &field.value, ty)
                };
                if !self.program.assignable(&ty.ty, ty.str_konst(), &expected) {
                    let what = format!("the message's `{}`", field.name.text);
                    let shown = self.program.show(&ty.ty);
                    self.report(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            mfile,
                            field.value.span,
                            format!("{what} must be a `string`, but this is a `{shown}`"),
                        )
                        .with_label(format!("this is a `{shown}`"))
                        .with_secondary(saved_file, span, "sent here")
                        .with_help(
                            "show values inside text with `{...}`, such as `\"{nights} nights\"`",
                        ),
                    );
                }
            }
        }
        cx.file = saved_file;
        cx.send = saved_send;
        Some(out)
    }

    /// Checks `emit` and gives its action: the payload's fields in the
    /// record's order (one not given is `none`), and the event type and its
    /// record (its step is the caller's).
    fn emit(
        &mut self,
        cx: &mut Ctx,
        event: &Name,
        fields: &[RecordField],
        record_span: Span,
    ) -> Option<hir::Act> {
        let file = cx.file;
        let Some(&id) = self.program.events.get(&event.text) else {
            self.unknown_event(file, event);
            let tys = fields.iter().map(|f| self.expr(cx, &f.value)).collect();
            self.detach(tys);
            return None;
        };
        let mut nodes: Vec<Option<hir::Expr>> = vec![None; self.program.record(id).fields.len()];
        let loc = self.program.record(id).loc;
        self.refer(file, event.span, loc, DefKind::Event);
        let record = self.program.record(id).clone();
        let mut given: Vec<&Name> = Vec::new();
        for f in fields {
            match record.field(&f.name.text) {
                Some(def) => {
                    self.given_once(file, &given, &f.name);
                    given.push(&f.name);
                    self.refer(file, f.name.span, def.loc, DefKind::Field);
                    let node = self
                        .expect(
                            cx,
                            &f.value,
                            &def.ty,
                            &format!("the field `{}`", f.name.text),
                        )
                        .finished();
                    let slot = record.fields.iter().position(|x| x.name == def.name);
                    if let Some(slot) = slot.and_then(|s| nodes.get_mut(s)) {
                        *slot = Some(node);
                    }
                }
                None => {
                    let ty = self.expr(cx, &f.value);
                    self.detach(vec![ty]);
                    let help =
                        did_you_mean(&f.name.text, record.fields.iter().map(|f| f.name.as_str()))
                            .unwrap_or_else(|| {
                                format!(
                                    "the fields of `{}` are {}",
                                    record.name,
                                    super::expr::field_list(&record)
                                )
                            });
                    self.report(
                        Diagnostic::new(
                            Code::EmitPayload,
                            file,
                            f.name.span,
                            format!("the event `{}` has no field `{}`", record.name, f.name.text),
                        )
                        .with_help(help),
                    );
                }
            }
        }
        let missing: Vec<String> = record
            .fields
            .iter()
            .filter(|f| !f.ty.is_optional() && !given.iter().any(|g| g.text == f.name))
            .map(|f| format!("`{}: {}`", f.name, self.program.show(&f.ty)))
            .collect();
        if !missing.is_empty() {
            self.report(
                Diagnostic::new(
                    Code::EmitPayload,
                    file,
                    record_span,
                    format!(
                        "the payload of `{}` is missing {}",
                        record.name,
                        missing.join(", ")
                    ),
                )
                .with_secondary(loc.file, loc.span, "the event is declared here")
                .with_help("give every field that is not optional (`T?`)"),
            );
        }
        let at = Loc {
            file,
            span: record_span,
        };
        let args = record
            .fields
            .iter()
            .zip(nodes)
            .map(|(def, node)| {
                let node = node.unwrap_or_else(|| hir::Expr::none(at));
                (Arc::from(def.name.as_str()), node)
            })
            .collect();
        Some(hir::Act {
            step: 0,
            action: Arc::from("emit"),
            args,
            emit: Some((Arc::from(event.text.as_str()), id)),
        })
    }

    /// Checks `unless EVENT on FIELD`, and gives the field's read on the
    /// triggering event.
    fn unless(&mut self, cx: &mut Ctx, u: &Unless) -> Option<hir::Unless> {
        let file = cx.file;
        let Some(&cancel_id) = self.program.events.get(&u.event.text) else {
            self.unknown_event(file, &u.event);
            return None;
        };
        let loc = self.program.record(cancel_id).loc;
        self.refer(file, u.event.span, loc, DefKind::Event);
        let Some(trigger_id) = cx.event else {
            if cx.in_rule {
                return None; // unknown trigger event, already reported
            }
            self.report(
                Diagnostic::new(Code::UnlessField, file, u.span, "`unless ... on` needs a triggering event")
                    .with_help("a scheduled rule (`every`) has no event whose field could be matched; cancel timers only in rules that start with `when`"),
            );
            return None;
        };
        let trigger = self.program.record(trigger_id).clone();
        let cancel = self.program.record(cancel_id).clone();
        let on_trigger = trigger.field(&u.field.text);
        let on_cancel = cancel.field(&u.field.text);
        for (record, field) in [(&trigger, on_trigger), (&cancel, on_cancel)] {
            if field.is_none() {
                let help =
                    did_you_mean(&u.field.text, record.fields.iter().map(|f| f.name.as_str()))
                        .unwrap_or_else(|| {
                            format!(
                                "match on a field that both `{}` and `{}` have",
                                trigger.name, cancel.name
                            )
                        });
                self.report(
                    Diagnostic::new(
                        Code::UnlessField,
                        file,
                        u.field.span,
                        format!(
                            "the event `{}` has no field `{}`",
                            record.name, u.field.text
                        ),
                    )
                    .with_secondary(record.loc.file, record.loc.span, "declared here")
                    .with_help(help),
                );
            }
        }
        if let (Some(a), Some(b)) = (on_trigger, on_cancel) {
            self.refer(file, u.field.span, a.loc, DefKind::Field);
            let (ta, tb) = (a.ty.present(), b.ty.present());
            if !(self.program.assignable(ta, None, tb) || self.program.assignable(tb, None, ta)) {
                self.report(
                    Diagnostic::new(
                        Code::UnlessField,
                        file,
                        u.field.span,
                        format!(
                            "`{}` is a `{}` on `{}` but a `{}` on `{}`",
                            u.field.text,
                            self.program.show(&a.ty),
                            trigger.name,
                            self.program.show(&b.ty),
                            cancel.name
                        ),
                    )
                    .with_help("match on a field with the same type on both events"),
                );
            }
        }
        let (slot, field) = trigger
            .fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.name == u.field.text)?;
        Some(hir::Unless {
            event: Arc::from(u.event.text.as_str()),
            field: Arc::from(u.field.text.as_str()),
            value: hir::Expr::new(
                field.ty.clone(),
                Loc {
                    file,
                    span: u.field.span,
                },
                hir::ExprKind::Read(hir::Place {
                    root: hir::Root::Event,
                    path: vec![slot],
                }),
            ),
        })
    }
}

/// A built-in action's statement: its arguments named and ordered as
/// `check::actions` declares them (one not given is `none`).
fn builtin_act(
    step: u32,
    action: &'static str,
    mut given: Vec<(&str, hir::Expr)>,
    at: Loc,
) -> hir::Act {
    let params = super::actions::builtin(action).map_or(&[][..], |b| b.params);
    let args = params
        .iter()
        .map(|p| {
            let value = match given.iter().position(|(n, _)| *n == p.name) {
                Some(i) => given.swap_remove(i).1,
                None => hir::Expr::none(at),
            };
            (Arc::from(p.name), value)
        })
        .collect();
    hir::Act {
        step,
        action: Arc::from(action),
        args,
        emit: None,
    }
}

/// The arguments of a call of a user action, in the order of its
/// parameters, each settled to its parameter's type (one not given is
/// `none`).
fn action_args(
    params: &[ParamDef],
    args: &[Arg],
    tys: &mut [Ty],
    here: Loc,
) -> Vec<(Arc<str>, hir::Expr)> {
    let order = order_args(params, args);
    let mut given = Vec::new();
    for (param, i) in params.iter().zip(order) {
        let node = match i.and_then(|i| tys.get_mut(i)) {
            Some(ty) => {
                let mut node = ty.take();
                node.settle(&param.ty);
                node.finish();
                node
            }
            None => hir::Expr::none(here),
        };
        given.push((Arc::from(param.name.as_str()), node));
    }
    given
}

/// Splits a condition's node at its top-level `and`s.
fn conjuncts(node: hir::Expr, out: &mut Vec<hir::Expr>) {
    match node.kind {
        // An `and` written by the user; one that stands for a form as a
        // whole (`stage changed to "won"`) has its parts where the form is,
        // and is explained whole.
        hir::ExprKind::Binary(op, l, r) if op.op == BinaryOp::And && l.at != node.at => {
            conjuncts(*l, out);
            conjuncts(*r, out);
        }
        kind => out.push(hir::Expr { kind, ..node }),
    }
}

/// The functions a Steward expression calls.
/// The actions the statements call (`escalate(id)`), in `if`s too.
fn actions_called<'s>(stmts: &'s [Stmt], out: &mut Vec<&'s str>) {
    for stmt in stmts {
        match &stmt.kind {
            StmtKind::Call { name, .. } => out.push(&name.text),
            StmtKind::If {
                branches,
                otherwise,
            } => {
                for (_, body) in branches {
                    actions_called(&body.stmts, out);
                }
                if let Some(body) = otherwise {
                    actions_called(&body.stmts, out);
                }
            }
            StmtKind::Timer { body, .. } => actions_called(&body.stmts, out),
            StmtKind::Approval {
                body, otherwise, ..
            } => {
                actions_called(&body.stmts, out);
                if let Some(body) = otherwise {
                    actions_called(&body.stmts, out);
                }
            }
            _ => {}
        }
    }
}

fn calls_in<'e>(e: &'e Expr, out: &mut Vec<&'e str>) {
    match &e.kind {
        ExprKind::Call(name, args) => {
            out.push(&name.text);
            for a in args {
                calls_in(&a.value, out);
            }
        }
        ExprKind::Field(base, _) | ExprKind::Paren(base) | ExprKind::Unary(_, base) => {
            calls_in(base, out)
        }
        ExprKind::Binary(_, l, r) => {
            calls_in(l, out);
            calls_in(r, out);
        }
        ExprKind::If(c, t, f) => {
            calls_in(c, out);
            calls_in(t, out);
            calls_in(f, out);
        }
        ExprKind::List(items) => items.iter().for_each(|i| calls_in(i, out)),
        ExprKind::Str(t) => {
            for p in &t.parts {
                if let TemplatePart::Expr(inner) = p {
                    calls_in(inner, out);
                }
            }
        }
        _ => {}
    }
}

/// Why a conjunction of comparisons with constants can never hold
/// (`nights < 2 and nights > 5`, `channel == "a" and channel == "b"`).
fn contradiction(cond: &Expr, domain: Domain) -> Option<String> {
    contradiction_all(&[cond], domain)
}

/// The values a field's declared type allows, when they are few: the
/// members of a string union (`channel: "airbnb" | "vrbo"`), by the path
/// that reads the field (`channel`, `guest.channel`). None for any other
/// type, an optional (it may also be absent) or a path that is not a field.
pub(super) type Domain<'d> = &'d dyn Fn(&str) -> Option<Vec<String>>;

impl Checker<'_> {
    /// The [`Domain`] of the fields of an event's payload.
    pub(super) fn union_members(&self, event: Option<RecordId>, path: &str) -> Option<Vec<String>> {
        let mut record = event?;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let field = self.program.record(record).field(part)?;
            match (&field.ty, parts.peek()) {
                (Type::Union(members), None) => return Some(members.to_vec()),
                (Type::Record(id), Some(_)) => record = *id,
                _ => return None,
            }
        }
        None
    }
}

/// What the comparisons of one field with constants say about its value.
#[derive(Default)]
struct Bounds {
    low: Option<(f64, bool)>,
    high: Option<(f64, bool)>,
    eq_num: Option<f64>,
    /// The texts it may be (`==`, `in`), when some comparison says.
    allowed: Option<Vec<String>>,
    /// The texts it may not be (`!=`, `not in`).
    excluded: Vec<String>,
    eq_bool: Option<bool>,
}

impl Bounds {
    /// Notes that the flag `p` is `value`; why it cannot be, when another
    /// condition says it is the other.
    fn flag(&mut self, p: &str, value: bool) -> Option<String> {
        if self.eq_bool.is_some_and(|v| v != value) {
            return Some(format!("`{p}` cannot be both true and false"));
        }
        self.eq_bool = Some(value);
        None
    }

    /// Notes `p in list` or `p not in list`; why no text is left for `p`,
    /// when none is.
    fn in_list(
        &mut self,
        p: &str,
        op: BinaryOp,
        list: Vec<String>,
        domain: Domain,
    ) -> Option<String> {
        if op == BinaryOp::In {
            self.allowed = Some(match self.allowed.take() {
                Some(was) => was.into_iter().filter(|v| list.contains(v)).collect(),
                None => list,
            });
        } else {
            self.excluded.extend(list);
        }
        no_text_left(p, self.allowed.as_deref(), &self.excluded, domain)
    }

    /// Notes `p op value`; why no value of `p` satisfies all the
    /// comparisons noted, when none does.
    fn compare(
        &mut self,
        p: &str,
        op: BinaryOp,
        value: Result<f64, String>,
        domain: Domain,
    ) -> Option<String> {
        match (op, value) {
            (BinaryOp::Eq, Ok(n)) => {
                if self.eq_num.is_some_and(|m| m != n) {
                    return Some(format!("`{p}` cannot equal two different numbers"));
                }
                self.eq_num = Some(n);
            }
            (BinaryOp::Eq, Err(s)) => {
                self.allowed = Some(match self.allowed.take() {
                    Some(was) => was.into_iter().filter(|v| *v == s).collect(),
                    None => vec![s],
                });
                if let Some(why) = no_text_left(p, self.allowed.as_deref(), &self.excluded, domain)
                {
                    return Some(why);
                }
            }
            (BinaryOp::Ne, Err(s)) => {
                self.excluded.push(s);
                if let Some(why) = no_text_left(p, self.allowed.as_deref(), &self.excluded, domain)
                {
                    return Some(why);
                }
            }
            (BinaryOp::Gt, Ok(n)) => self.low = Some(tighter_low(self.low, (n, false))),
            (BinaryOp::Ge, Ok(n)) => self.low = Some(tighter_low(self.low, (n, true))),
            (BinaryOp::Lt, Ok(n)) => self.high = Some(tighter_high(self.high, (n, false))),
            (BinaryOp::Le, Ok(n)) => self.high = Some(tighter_high(self.high, (n, true))),
            _ => return None,
        }
        self.no_number_left(p)
    }

    /// Why no number is left for `p`: its bounds leave an empty range, or
    /// the number it must equal is outside them.
    fn no_number_left(&self, p: &str) -> Option<String> {
        let empty_range = match (self.low, self.high) {
            (Some((lo, lo_incl)), Some((hi, hi_incl))) => {
                lo > hi || (lo == hi && !(lo_incl && hi_incl))
            }
            _ => false,
        };
        let eq_outside = self.eq_num.is_some_and(|n| {
            self.low
                .is_some_and(|(lo, incl)| n < lo || (n == lo && !incl))
                || self
                    .high
                    .is_some_and(|(hi, incl)| n > hi || (n == hi && !incl))
        });
        if empty_range || eq_outside {
            return Some(format!("no value of `{p}` satisfies all of these"));
        }
        None
    }
}

/// The plain texts of a list literal, when they all are.
fn list_texts(e: &Expr) -> Option<Vec<String>> {
    match &strip_parens(e).kind {
        ExprKind::List(items) => items
            .iter()
            .map(|i| match &strip_parens(i).kind {
                ExprKind::Str(t) => t.as_plain(),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// The parts of a condition that must all hold: it split at its `and`s.
fn and_atoms<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &e.kind {
        ExprKind::Paren(inner) => and_atoms(inner, out),
        ExprKind::Binary(BinaryOp::And, l, r) => {
            and_atoms(l, out);
            and_atoms(r, out);
        }
        _ => out.push(e),
    }
}

/// A literal number (`Ok`) or plain text (`Err`).
fn literal_constant(e: &Expr) -> Option<Result<f64, String>> {
    match &e.kind {
        ExprKind::Int(i) => Some(Ok(*i as f64)),
        ExprKind::Number(n) => n.parse().ok().map(Ok),
        ExprKind::Str(t) => t.as_plain().map(Err),
        ExprKind::Paren(inner) => literal_constant(inner),
        _ => None,
    }
}

/// A flag (`guest.vip`) or its negation (`not guest.vip`): the field's
/// path and the value the condition says it has.
fn flag_atom(atom: &Expr) -> Option<(String, bool)> {
    match &atom.kind {
        ExprKind::Unary(UnaryOp::Not, inner) => path(inner).map(|p| (p, false)),
        _ => path(atom).map(|p| (p, true)),
    }
}

/// A comparison of a field with a constant, either way round: the field's
/// path, the constant, and the operator as if the field were on the left.
fn field_against_constant(
    op: BinaryOp,
    l: &Expr,
    r: &Expr,
) -> Option<(String, Result<f64, String>, BinaryOp)> {
    match (path(l), literal_constant(r), path(r), literal_constant(l)) {
        (Some(p), Some(v), _, _) => Some((p, v, op)),
        (_, _, Some(p), Some(v)) => {
            let flipped = match op {
                BinaryOp::Lt => BinaryOp::Gt,
                BinaryOp::Le => BinaryOp::Ge,
                BinaryOp::Gt => BinaryOp::Lt,
                BinaryOp::Ge => BinaryOp::Le,
                other => other,
            };
            Some((p, v, flipped))
        }
        _ => None,
    }
}

/// Why conditions that must all hold cannot (`nights < 2` and `nights >
/// 5`; `channel != "airbnb" and channel != "vrbo"` when those are the
/// only values `domain` allows), when the comparisons of fields with
/// constants show it; `None` when they may all hold, or it cannot tell.
pub(super) fn contradiction_all(conds: &[&Expr], domain: Domain) -> Option<String> {
    let mut list = Vec::new();
    for cond in conds {
        and_atoms(cond, &mut list);
    }
    let mut bounds: HashMap<String, Bounds> = HashMap::new();
    for atom in list {
        if let Some((p, value)) = flag_atom(atom) {
            let b = bounds.entry(p.clone()).or_default();
            if let Some(why) = b.flag(&p, value) {
                return Some(why);
            }
            continue;
        }
        let Some((op, l, r)) = comparison(atom) else {
            continue;
        };
        // `channel in ["a", "b"]`, `channel not in [...]`.
        if let (BinaryOp::In | BinaryOp::NotIn, Some(p), Some(list)) = (op, path(l), list_texts(r))
        {
            let b = bounds.entry(p.clone()).or_default();
            if let Some(why) = b.in_list(&p, op, list, domain) {
                return Some(why);
            }
            continue;
        }
        let Some((p, value, op)) = field_against_constant(op, l, r) else {
            continue;
        };
        let b = bounds.entry(p.clone()).or_default();
        if let Some(why) = b.compare(&p, op, value, domain) {
            return Some(why);
        }
    }
    None
}

/// Why no text is left for `p`: what it may be (said by the conditions,
/// else by its declared type) is all excluded.
fn no_text_left(
    p: &str,
    allowed: Option<&[String]>,
    excluded: &[String],
    domain: Domain,
) -> Option<String> {
    let declared;
    let (candidates, from_type) = match allowed {
        Some(a) => (a, false),
        None => {
            declared = domain(p)?;
            (declared.as_slice(), true)
        }
    };
    if !candidates.iter().all(|v| excluded.contains(v)) {
        return None;
    }
    if from_type {
        let shown: Vec<String> = candidates.iter().map(|v| format!("\"{v}\"")).collect();
        return Some(format!(
            "`{p}` is declared as {}, and each is ruled out",
            shown.join(" | ")
        ));
    }
    Some(format!("`{p}` cannot be both of these"))
}

/// A comparison as an operator and its sides; `not (nights > 3)` (an
/// `unless` clause) is `nights <= 3`.
fn comparison(atom: &Expr) -> Option<(BinaryOp, &Expr, &Expr)> {
    match &atom.kind {
        ExprKind::Binary(op, l, r) => Some((*op, l, r)),
        ExprKind::Unary(UnaryOp::Not, inner) => match &strip_parens(inner).kind {
            ExprKind::Binary(op, l, r) => {
                let negated = match op {
                    BinaryOp::Lt => BinaryOp::Ge,
                    BinaryOp::Le => BinaryOp::Gt,
                    BinaryOp::Gt => BinaryOp::Le,
                    BinaryOp::Ge => BinaryOp::Lt,
                    BinaryOp::Eq => BinaryOp::Ne,
                    BinaryOp::Ne => BinaryOp::Eq,
                    BinaryOp::In => BinaryOp::NotIn,
                    BinaryOp::NotIn => BinaryOp::In,
                    _ => return None,
                };
                Some((negated, l, r))
            }
            _ => None,
        },
        _ => None,
    }
}

fn tighter_low(old: Option<(f64, bool)>, new: (f64, bool)) -> (f64, bool) {
    match old {
        Some(o) if o.0 > new.0 || (o.0 == new.0 && !o.1) => o,
        _ => new,
    }
}

fn tighter_high(old: Option<(f64, bool)>, new: (f64, bool)) -> (f64, bool) {
    match old {
        Some(o) if o.0 < new.0 || (o.0 == new.0 && !o.1) => o,
        _ => new,
    }
}

/// Whether statements suspend: a timer or an approval, at any depth.
fn holds_state(stmts: &[Stmt]) -> bool {
    stmts.iter().any(|s| match &s.kind {
        StmtKind::Timer { .. } | StmtKind::Approval { .. } => true,
        StmtKind::If {
            branches,
            otherwise,
        } => {
            branches.iter().any(|(_, b)| holds_state(&b.stmts))
                || otherwise.as_ref().is_some_and(|b| holds_state(&b.stmts))
        }
        _ => false,
    })
}
