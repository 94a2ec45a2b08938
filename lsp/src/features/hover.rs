//! Hover: what a name is (its declaration, type and `##` docs), the type of
//! any expression, and a cron schedule's next fire times in its zone.

use chrono::{DateTime, Utc};
use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind};
use steward::check::types::{FnKind, FnSig, ParamDef};
use steward::check::{Analysis, DefKind, Loc};
use steward::diag::{FileId, Span};
use steward::syntax::ast::{Item, Schedule, Trigger};

use super::{doc_of, record_of_field, symbol_at, text_of, type_at, Symbol};
use crate::convert::file_range;

/// The hover at `offset` of `file`; `now` is when cron fire times start.
pub fn hover(analysis: &Analysis, file: FileId, offset: u32, now: DateTime<Utc>) -> Option<Hover> {
    let (span, markdown) = cron_hover(analysis, file, offset, now)
        .or_else(|| symbol_hover(analysis, file, offset))
        .or_else(|| history_hover(analysis, file, offset))
        .or_else(|| {
            let (span, ty) = type_at(analysis, file, offset)?;
            let text = text_of(analysis, Loc { file, span });
            let text = if text.len() > 60 || text.contains('\n') {
                "this expression".to_string()
            } else {
                format!("`{text}`")
            };
            Some((span, format!("{text} is a `{}`", analysis.program.show(ty))))
        })?;
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: markdown,
        }),
        range: Some(file_range(analysis, file, span)),
    })
}

fn code(text: &str) -> String {
    format!("```steward\n{text}\n```")
}

fn with_doc(mut text: String, doc: Option<String>) -> String {
    if let Some(doc) = doc {
        text.push_str("\n\n");
        text.push_str(&doc);
    }
    text
}

fn params(analysis: &Analysis, params: &[ParamDef]) -> String {
    params
        .iter()
        .map(|p| format!("{}: {}", p.name, analysis.program.show(&p.ty)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn signature(analysis: &Analysis, sig: &FnSig) -> String {
    let generics = match sig.type_params {
        0 => String::new(),
        n => format!(
            "<{}>",
            (0..n)
                .map(|i| ((b'T' + i as u8) as char).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let prefix = match sig.kind {
        FnKind::Builtin => "extern fn",
        FnKind::Steward | FnKind::Rhai => "fn",
    };
    let suffix = if sig.kind == FnKind::Rhai {
        " from rhai"
    } else {
        ""
    };
    format!(
        "{prefix} {}{generics}({}) -> {}{suffix}",
        sig.name,
        params(analysis, &sig.params),
        analysis.program.show(&sig.ret)
    )
}

/// What the declaration of `symbol` says, in Markdown.
pub fn describe(analysis: &Analysis, symbol: Symbol, use_span: Option<(FileId, Span)>) -> String {
    let program = &analysis.program;
    let loc = symbol.loc;
    match symbol.kind {
        DefKind::Event | DefKind::Type => {
            let Some(record) = program.records.iter().find(|r| r.loc == loc) else {
                return String::new();
            };
            let keyword = if record.is_event { "event" } else { "type" };
            let fields: Vec<String> = record
                .fields
                .iter()
                .map(|f| format!("  {}: {}", f.name, program.show(&f.ty)))
                .collect();
            let body = if fields.is_empty() {
                "{}".to_string()
            } else {
                format!("{{\n{}\n}}", fields.join("\n"))
            };
            with_doc(
                code(&format!("{keyword} {} {body}", record.name)),
                doc_of(analysis, loc),
            )
        }
        DefKind::Field => {
            let Some(id) = record_of_field(analysis, loc) else {
                return String::new();
            };
            let record = program.record(id);
            let Some(field) = record.fields.iter().find(|f| f.loc == loc) else {
                return String::new();
            };
            let owner = if record.is_event { "event" } else { "type" };
            let mut text = code(&format!(
                "(field) {}: {}",
                field.name,
                program.show(&field.ty)
            ));
            text.push_str(&format!("\n\nin {owner} `{}`", record.name));
            with_doc(text, doc_of(analysis, loc))
        }
        DefKind::Message => with_doc(
            code(&format!("message {}", text_of(analysis, loc))),
            doc_of(analysis, loc),
        ),
        DefKind::Action => {
            let Some(action) = program.actions.values().find(|a| a.loc == loc) else {
                return String::new();
            };
            let how = match action.webhook {
                Some(_) => "via webhook",
                None => "do ... end",
            };
            with_doc(
                code(&format!(
                    "action {}({}) {how}",
                    action.name,
                    params(analysis, &action.params)
                )),
                doc_of(analysis, loc),
            )
        }
        DefKind::Function => {
            let name = text_of(analysis, loc);
            let sigs = program.functions.get(name).map_or(&[][..], Vec::as_slice);
            let mut parts = Vec::new();
            for sig in sigs.iter().take(8) {
                parts.push(with_doc(
                    code(&signature(analysis, sig)),
                    doc_of(analysis, sig.loc),
                ));
            }
            if sigs.len() > 8 {
                parts.push(format!("and {} more overloads", sigs.len() - 8));
            }
            parts.join("\n\n---\n\n")
        }
        DefKind::Let | DefKind::Param => {
            let keyword = if symbol.kind == DefKind::Let {
                "let"
            } else {
                "(parameter)"
            };
            let name = text_of(analysis, loc);
            let ty = use_span
                .and_then(|(file, span)| analysis.hir.type_of(Loc { file, span }))
                .or_else(|| analysis.lets.iter().find(|l| l.at == loc).map(|l| &l.ty))
                .or_else(|| {
                    program
                        .functions
                        .values()
                        .flatten()
                        .flat_map(|s| &s.params)
                        .find(|p| p.loc == loc)
                        .map(|p| &p.ty)
                });
            match ty {
                Some(ty) => code(&format!("{keyword} {name}: {}", program.show(ty))),
                None => code(&format!("{keyword} {name}")),
            }
        }
    }
}

fn symbol_hover(analysis: &Analysis, file: FileId, offset: u32) -> Option<(Span, String)> {
    let symbol = symbol_at(analysis, file, offset)?;
    let span = analysis
        .references
        .iter()
        .filter(|r| r.at.file == file && r.at.span.contains(offset))
        .min_by_key(|r| r.at.span.len())
        .map_or(symbol.loc.span, |r| r.at.span);
    let text = describe(analysis, symbol, Some((file, span)));
    (!text.is_empty()).then_some((span, text))
}

/// What the words that read the history of events mean (`previous`,
/// `changed`, `count`), on the word itself.
fn history_hover(analysis: &Analysis, file: FileId, offset: u32) -> Option<(Span, String)> {
    let Some(Item::Rule(_)) = super::item_at(analysis, file, offset) else {
        return None;
    };
    let text = analysis.sources.text(file);
    let at = usize::try_from(offset).ok()?.min(text.len());
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let start = text
        .get(..at)?
        .rfind(|c: char| !is_word(c))
        .map_or(0, |i| i + 1);
    let end = text
        .get(at..)?
        .find(|c: char| !is_word(c))
        .map_or(text.len(), |i| at + i);
    let doc = match text.get(start..end)? {
        "previous" => "`previous FIELD`: the value the field had in the last event of the same tenant and key that carried it, or `none` the first time (an optional). Not inside timers and approvals: keep it with `let` first.",
        "changed" => "`FIELD changed [from A] [to B]`: whether the field differs from its previous value (the last event of the same key that carried it). The first event of a key has no previous value, so it counts as a change.",
        "count" => "`count N within D by K` (a clause): the rule goes on at the event that makes N matching events within D for that key, then counting starts again. `count(EVENT by f, g within D)` (an expression): how many such events with this event's values of `f` and `g` happened within D, this one included when it is one of them.",
        "priority" => "`priority N`: the rules of one event with a priority run first, lowest first (ties by name), then the others in source order.",
        "user" => "`notify user PERSON \"...\"`, `create task \"...\" for user PERSON`: for one person, a user id or an e-mail address (the word `user` may be left out: `notify owner_email \"...\"`). A notification to an address is also mailed. An optional person needs a default: `owner_id ?? \"ops@example.com\"`.",
        "stop" => "`stop`: ends the handling of this event here: the rest of the rule and every later rule are skipped (timers and approvals set earlier are not).",
        "since" => "`when no EVENT on FIELD for PERIOD since START on FIELD`: the start event arms the watch for its field's value; each EVENT with that value starts the quiet period again; when PERIOD passes without one, the rule runs once (`until END on FIELD` ends the watch).",
        "quiet_since" => "`quiet_since` (a `datetime`): in a rule on what did not happen, when the quiet period began (the start event's time, or the last watched event's).",
        "every" => "`every \"CRON\" [in ZONE]`: as a rule's trigger, a schedule; as a statement in a rule on an event, a schedule of the event's key (one timer for its next tick, moved when the rule fires again for the key, cancelled by `unless`).",
        _ => return None,
    };
    Some((Span::new(start, end), doc.to_string()))
}

/// On a cron expression or its zone: the next three fire times.
fn cron_hover(
    analysis: &Analysis,
    file: FileId,
    offset: u32,
    now: DateTime<Utc>,
) -> Option<(Span, String)> {
    let Some(Item::Rule(rule)) = super::item_at(analysis, file, offset) else {
        return None;
    };
    let Trigger::Every {
        schedule: Schedule::Cron { expr, zone },
        ..
    } = &rule.trigger
    else {
        return None;
    };
    let span = if expr.span.contains(offset) {
        expr.span
    } else {
        zone.as_ref().filter(|z| z.span.contains(offset))?.span
    };
    // The schedule as the checker parsed it, once.
    let (schedule, tz) = analysis
        .hir
        .rules
        .iter()
        .filter(|r| r.file == file && r.span == rule.span)
        .find_map(|r| match &r.trigger {
            steward::hir::Trigger::Cron { schedule, zone } => Some((schedule, *zone)),
            _ => None,
        })?;
    let zone_name = zone.as_ref().map_or("UTC", |z| z.value.as_str());
    let local = now.with_timezone(&tz);
    let times: Vec<String> = schedule
        .after(&local)
        .take(3)
        .map(|t| format!("- {}", t.format("%a %Y-%m-%d %H:%M %Z (UTC%:z)")))
        .collect();
    if times.is_empty() {
        return Some((span, format!("`{}` never fires", expr.value)));
    }
    Some((
        span,
        format!(
            "{}\n\nNext fires in {zone_name}:\n{}",
            code(&format!("every \"{}\"", expr.value)),
            times.join("\n")
        ),
    ))
}
