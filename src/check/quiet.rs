//! `when no E on f for D since S on g until C on h`: a rule on what did not
//! happen. The start event `S` is the rule's event (its fields are in
//! scope); the body runs when the quiet period passes, so it sees the local
//! `quiet_since` and may not read the history (`previous`, `count`).

use std::sync::Arc;

use super::expr::{Ctx, Local};
use super::suggest::did_you_mean;
use super::types::*;
use super::{Checker, DefKind};
use crate::diag::{Code, Diagnostic, FileId, Span};
use crate::hir;
use crate::syntax::ast::{Name, Quiet};

impl Checker<'_> {
    pub(super) fn quiet(&mut self, cx: &mut Ctx, q: &Quiet) -> hir::Trigger {
        let file = cx.file;
        // Until it is known, names in the rule are not reported again.
        cx.in_rule = true;
        cx.lenient = true;
        let watched = self.event_with_field(file, &q.event, &q.field);
        let Some((start, start_field)) = &q.since else {
            self.quiet_without_start(file, q);
            return hir::Trigger::Error;
        };
        let started = self.event_with_field(file, start, start_field);
        let until = q
            .until
            .as_ref()
            .map(|(event, field)| (event, field, self.event_with_field(file, event, field)));
        let (Some((_, watched_ty)), Some((start_id, start_ty))) = (&watched, &started) else {
            return hir::Trigger::Error;
        };
        self.same_key(file, &q.field, watched_ty, start_field, start_ty);
        if let Some((_, field, Some((_, ty)))) = &until {
            self.same_key(file, field, ty, start_field, start_ty);
        }
        cx.event = Some(*start_id);
        cx.lenient = false;
        // The body runs later, when the quiet period has passed.
        cx.quiet = true;
        let period = self.positive_duration(cx, &q.period, "the quiet period");
        cx.locals.push(Local {
            name: hir::QUIET_SINCE.to_string(),
            ty: Type::DateTime,
            loc: Loc { file, span: q.span },
            used: true,
            is_param: true,
        });
        hir::Trigger::Quiet(Box::new(hir::Quiet {
            event: Arc::from(q.event.text.as_str()),
            field: Arc::from(q.field.text.as_str()),
            period,
            start: Arc::from(start.text.as_str()),
            start_record: *start_id,
            start_field: Arc::from(start_field.text.as_str()),
            until: q.until.as_ref().map(|(event, field)| {
                (
                    Arc::from(event.text.as_str()),
                    Arc::from(field.text.as_str()),
                )
            }),
        }))
    }

    /// The event and the type of its field, or a report.
    fn event_with_field(
        &mut self,
        file: FileId,
        event: &Name,
        field: &Name,
    ) -> Option<(RecordId, Type)> {
        let Some(&id) = self.program.events.get(&event.text) else {
            self.unknown_event(file, event);
            return None;
        };
        let record = self.program.record(id).clone();
        self.refer(file, event.span, record.loc, DefKind::Event);
        match record.field(&field.text) {
            Some(f) => {
                self.refer(file, field.span, f.loc, DefKind::Field);
                Some((id, f.ty.clone()))
            }
            None => {
                let help = did_you_mean(&field.text, record.fields.iter().map(|f| f.name.as_str()))
                    .unwrap_or_else(|| {
                        format!(
                            "the fields of `{}` are {}",
                            record.name,
                            super::expr::field_list(&record)
                        )
                    });
                self.report(
                    Diagnostic::new(
                        Code::UnknownField,
                        file,
                        field.span,
                        format!("no field `{}` on the event `{}`", field.text, record.name),
                    )
                    .with_label("unknown field")
                    .with_help(help),
                );
                None
            }
        }
    }

    /// The watched value is compared across events: their fields must hold
    /// the same kind of value.
    fn same_key(&mut self, file: FileId, field: &Name, ty: &Type, start: &Name, start_ty: &Type) {
        let (a, b) = (ty.present(), start_ty.present());
        if self.program.assignable(a, None, b) || self.program.assignable(b, None, a) {
            return;
        }
        let (a, b) = (self.program.show(a), self.program.show(b));
        self.report(
            Diagnostic::new(
                Code::TypeMismatch,
                file,
                field.span,
                format!(
                    "`{}` is a `{a}`, but the `{}` it is matched with is a `{b}`",
                    field.text, start.text
                ),
            )
            .with_secondary(file, start.span, format!("this is a `{b}`"))
            .with_help(
                "watch a field that holds the same value as the start event's, such as an id",
            ),
        );
    }

    /// `when no E on f for D` with nothing that starts the clock: the help
    /// is the rewrite, with the start event guessed from the field's name
    /// (`deal_id`: `deal.created on id`) when the program has one.
    fn quiet_without_start(&mut self, file: FileId, q: &Quiet) {
        let written = self.text(file, q.span).to_string();
        let guess = self.guess_start(&q.event.text, &q.field.text);
        let at = Span::new(q.period.span.end as usize, q.period.span.end as usize);
        let mut diag = Diagnostic::new(
            Code::QuietWithoutStart,
            file,
            q.span,
            format!("`{written}` does not say when the clock starts"),
        )
        .with_label("nothing starts the quiet period");
        diag = match &guess {
            Some((event, field)) => {
                let since = format!(" since {event} on {field}");
                diag.with_help(format!(
                    "say which event starts the clock, such as `{written}{since}`; each `{}` starts it again, and `until EVENT on FIELD` ends the watch",
                    q.event.text
                ))
                .with_fix(format!("start the clock at `{event}`"), at, since)
            }
            None => diag.with_help(format!(
                "say which event starts the clock: `{written} since EVENT on FIELD`, where FIELD of EVENT holds the value of `{}`; each `{}` starts it again, and `until EVENT on FIELD` ends the watch",
                q.field.text, q.event.text
            )),
        };
        self.report(diag);
    }

    /// The likely start of a watch on `field`: `deal_id` suggests an event
    /// `deal.created` (or any `deal.*`) with a field `id`.
    fn guess_start(&self, watched: &str, field: &str) -> Option<(String, String)> {
        let entity = field.strip_suffix("_id")?;
        let mut candidates: Vec<&String> = self
            .program
            .events
            .keys()
            .filter(|e| *e != watched && e.split('.').next() == Some(entity))
            .filter(|e| {
                self.program
                    .events
                    .get(*e)
                    .is_some_and(|&id| self.program.record(id).field("id").is_some())
            })
            .collect();
        candidates.sort_by_key(|e| (!e.ends_with(".created"), e.len(), (*e).clone()));
        candidates
            .first()
            .map(|e| (e.to_string(), "id".to_string()))
    }
}
