//! `test` blocks: the events they give exist and their payloads fit the
//! schema, clock steps are durations or times, and expectations name real
//! actions, messages, events and arguments.

use super::expr::Ctx;
use super::suggest::did_you_mean;
use super::types::{RecordId, Type};
use super::{Checker, DefKind};
use crate::diag::{Code, Diagnostic, FileId};
use crate::syntax::ast::{Name, TestDecl, TestRecord, TestStepKind, TestValue};

impl Checker<'_> {
    pub(super) fn test_decl(&mut self, file: FileId, t: &TestDecl) {
        for step in &t.steps {
            match &step.kind {
                TestStepKind::Given {
                    partial,
                    event,
                    key,
                    payload,
                } => {
                    let Some(&id) = self.program.events.get(&event.text) else {
                        self.unknown_event(file, event);
                        continue;
                    };
                    let loc = self.program.record(id).loc;
                    self.refer(file, event.span, loc, DefKind::Event);
                    if let Some(k) = key {
                        let mut cx = Ctx::new(file);
                        self.expect(&mut cx, k, &Type::String, "an event key");
                    }
                    self.test_payload(file, id, payload, *partial, &event.text);
                }
                TestStepKind::Wait { until, value } => {
                    let mut cx = Ctx::new(file);
                    let (ty, what) = if *until {
                        (Type::DateTime, "`wait until`")
                    } else {
                        (Type::Duration, "`wait`")
                    };
                    self.expect(&mut cx, value, &ty, what);
                }
                TestStepKind::Decide { .. } | TestStepKind::ExpectNothing => {}
                TestStepKind::Expect {
                    action,
                    target,
                    args,
                    ..
                } => self.test_expect(file, action, target.as_ref(), args.as_ref()),
            }
        }
    }

    fn test_payload(
        &mut self,
        file: FileId,
        id: RecordId,
        record: &TestRecord,
        partial: bool,
        what: &str,
    ) {
        let def = self.program.record(id).clone();
        let mut given: Vec<&Name> = Vec::new();
        for field in &record.fields {
            self.given_once(file, &given, &field.name);
            given.push(&field.name);
            let Some(decl) = def.field(&field.name.text) else {
                let help =
                    did_you_mean(&field.name.text, def.fields.iter().map(|f| f.name.as_str()))
                        .unwrap_or_else(|| {
                            format!(
                                "the fields of `{}` are {}",
                                def.name,
                                super::expr::field_list(&def)
                            )
                        });
                self.report(
                    Diagnostic::new(
                        Code::UnknownField,
                        file,
                        field.name.span,
                        format!("no field `{}` on `{}`", field.name.text, def.name),
                    )
                    .with_label("unknown field")
                    .with_help(help),
                );
                continue;
            };
            self.refer(file, field.name.span, decl.loc, DefKind::Field);
            match (&field.value, decl.ty.present()) {
                (TestValue::Record(inner), Type::Record(rid)) => {
                    self.test_payload(file, *rid, inner, partial, what);
                }
                (TestValue::Record(inner), other) => {
                    let shown = self.program.show(other);
                    self.report(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            file,
                            inner.span,
                            format!("`{}` is a `{shown}`, not a record", field.name.text),
                        )
                        .with_help(format!("give a `{shown}` here")),
                    );
                }
                (TestValue::Expr(e), _) => {
                    let mut cx = Ctx::new(file);
                    let ty = decl.ty.clone();
                    self.expect(&mut cx, e, &ty, &format!("`{}`", field.name.text));
                }
            }
        }
        if partial {
            return;
        }
        let missing: Vec<String> = def
            .fields
            .iter()
            .filter(|f| !f.ty.is_optional())
            .filter(|f| !record.fields.iter().any(|g| g.name.text == f.name))
            .map(|f| format!("`{}`", f.name))
            .collect();
        if !missing.is_empty() {
            self.report(
                Diagnostic::new(
                    Code::TestPayload,
                    file,
                    record.span,
                    format!("the payload of `{what}` is missing {}", missing.join(", ")),
                )
                .with_label("incomplete payload")
                .with_help("give every required field, or write `given partial ...` to fill the rest with empty values"),
            );
        }
    }

    /// `expect ACTION TARGET { name: value }` in a test: the action exists
    /// and is performed as such, with its target and arguments.
    fn test_expect(
        &mut self,
        file: FileId,
        action: &Name,
        target: Option<&Name>,
        args: Option<&TestRecord>,
    ) {
        let builtin = super::actions::builtin(&action.text);
        let custom = self.program.actions.get(&action.text).cloned();
        let mut allowed: Vec<String> = match (builtin, &custom) {
            (Some(b), _) => b.params.iter().map(|p| p.name.to_string()).collect(),
            (None, Some(sig)) => sig.params.iter().map(|p| p.name.clone()).collect(),
            (None, None) => {
                self.expected_unknown_action(file, action);
                return;
            }
        };
        if let Some(sig) = &custom {
            self.refer(file, action.span, sig.loc, DefKind::Action);
            if builtin.is_none() && sig.webhook.is_none() {
                self.report(
                    Diagnostic::new(
                        Code::WrongKindOfCall,
                        file,
                        action.span,
                        format!("`{}` is a block of other actions, which are what is performed", action.text),
                    )
                    .with_label("never performed as such")
                    .with_help("expect the actions its block performs, such as `expect notify ROLE { text: \"...\" }` or `expect create_task ROLE { title: \"...\" }`"),
                );
                return;
            }
        }
        if let Some(fields) = self.expect_target(file, action, target, builtin.is_some()) {
            allowed = fields;
        }
        let Some(args) = args else { return };
        if action.text == "emit" && target.is_none() {
            return;
        }
        self.expect_args(file, action, &allowed, args);
    }

    /// Reports an expectation of an action that does not exist.
    fn expected_unknown_action(&mut self, file: FileId, action: &Name) {
        let mut names: Vec<String> = super::actions::BUILTINS
            .iter()
            .map(|b| b.name.to_string())
            .collect();
        names.extend(self.program.actions.keys().cloned());
        let help = did_you_mean(&action.text, names.iter().map(String::as_str))
            .unwrap_or_else(|| format!("the actions are {}", names.join(", ")));
        self.report(
            Diagnostic::new(
                Code::UnknownFunction,
                file,
                action.span,
                format!("no action `{}`", action.text),
            )
            .with_label("unknown action")
            .with_help(help),
        );
    }

    /// The target of an expectation (`expect send welcome`, `expect emit
    /// booking.created`) names a message or an event that exists, and only
    /// built-in actions take one; the fields of the event emitted, which are
    /// the arguments it may match.
    fn expect_target(
        &mut self,
        file: FileId,
        action: &Name,
        target: Option<&Name>,
        builtin: bool,
    ) -> Option<Vec<String>> {
        if let (Some(t), "send") = (target, action.text.as_str()) {
            if let Some(loc) = self.message_loc(&t.text) {
                self.refer(file, t.span, loc, DefKind::Message);
            }
        }
        match (action.text.as_str(), target) {
            ("send", Some(t)) => {
                if !self.program.messages.contains_key(&t.text) {
                    let names: Vec<String> = self.program.messages.keys().cloned().collect();
                    let help = did_you_mean(&t.text, names.iter().map(String::as_str))
                        .unwrap_or_else(|| "name a declared message".to_string());
                    self.report(
                        Diagnostic::new(
                            Code::UnknownMessage,
                            file,
                            t.span,
                            format!("no message `{}`", t.text),
                        )
                        .with_label("unknown message")
                        .with_help(help),
                    );
                }
            }
            ("emit", Some(t)) => match self.program.events.get(&t.text) {
                Some(&id) => {
                    return Some(
                        self.program
                            .record(id)
                            .fields
                            .iter()
                            .map(|f| f.name.clone())
                            .collect(),
                    );
                }
                None => self.unknown_event(file, t),
            },
            (_, None) => {}
            (_, Some(_)) if builtin => {}
            (name, Some(t)) => {
                self.report(
                    Diagnostic::new(Code::BadArgument, file, t.span, format!("`expect {name}` takes no target"))
                        .with_help("a target names a built-in action's first argument (`expect send welcome`, `expect notify owner`); match the arguments of a webhook action with `{ name: value }`"),
                );
            }
        }
        None
    }

    /// The arguments an expectation matches are the action's (or `at`), and
    /// their values check.
    fn expect_args(&mut self, file: FileId, action: &Name, allowed: &[String], args: &TestRecord) {
        for field in &args.fields {
            if field.name.text != "at" && !allowed.contains(&field.name.text) {
                let help = did_you_mean(&field.name.text, allowed.iter().map(String::as_str))
                    .unwrap_or_else(|| {
                        format!(
                            "`{}` has {}",
                            action.text,
                            allowed
                                .iter()
                                .map(|a| format!("`{a}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                self.report(
                    Diagnostic::new(
                        Code::BadArgument,
                        file,
                        field.name.span,
                        format!("`{}` has no argument `{}`", action.text, field.name.text),
                    )
                    .with_label("unknown argument")
                    .with_help(help),
                );
            } else if let TestValue::Expr(e) = &field.value {
                let mut cx = Ctx::new(file);
                self.expr(&mut cx, e);
            }
        }
    }
}
