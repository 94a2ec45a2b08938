//! Document symbols: the outline of a file (rules, events and their fields,
//! types, messages, actions, functions, tests).

use lsp_types::{DocumentSymbol, SymbolKind};
use steward::check::Analysis;
use steward::diag::{FileId, Span};
use steward::syntax::ast::{ActionBody, FieldDecl, Item, Schedule, Trigger};

use crate::convert::file_range;

#[allow(deprecated)] // `DocumentSymbol::deprecated` must still be given.
#[allow(clippy::too_many_arguments)]
fn symbol(
    analysis: &Analysis,
    file: FileId,
    name: String,
    detail: Option<String>,
    kind: SymbolKind,
    span: Span,
    name_span: Span,
    children: Vec<DocumentSymbol>,
) -> DocumentSymbol {
    DocumentSymbol {
        name,
        detail,
        kind,
        tags: None,
        deprecated: None,
        range: file_range(analysis, file, span),
        selection_range: file_range(analysis, file, name_span),
        children: (!children.is_empty()).then_some(children),
    }
}

fn fields(analysis: &Analysis, file: FileId, fields: &[FieldDecl]) -> Vec<DocumentSymbol> {
    let text = analysis.sources.text(file);
    fields
        .iter()
        .map(|f| {
            symbol(
                analysis,
                file,
                f.name.text.clone(),
                text.get(f.ty.span.range()).map(str::to_string),
                SymbolKind::FIELD,
                f.span,
                f.name.span,
                Vec::new(),
            )
        })
        .collect()
}

/// The outline of `file`.
pub fn document_symbols(analysis: &Analysis, file: FileId) -> Vec<DocumentSymbol> {
    let Some(parsed) = analysis.files.iter().find(|f| f.id == file) else {
        return Vec::new();
    };
    let text = analysis.sources.text(file);
    let mut out = Vec::new();
    for item in &parsed.tree.items {
        let s = |name: String, detail: Option<String>, kind, span, name_span, children| {
            symbol(
                analysis, file, name, detail, kind, span, name_span, children,
            )
        };
        out.push(match item {
            Item::Event(d) => s(
                d.name.text.clone(),
                Some("event".into()),
                SymbolKind::EVENT,
                d.span,
                d.name.span,
                fields(analysis, file, &d.fields),
            ),
            Item::Type(d) => s(
                d.name.text.clone(),
                Some("type".into()),
                SymbolKind::STRUCT,
                d.span,
                d.name.span,
                fields(analysis, file, &d.fields),
            ),
            Item::Message(d) => s(
                d.name.text.clone(),
                Some("message".into()),
                SymbolKind::OBJECT,
                d.span,
                d.name.span,
                Vec::new(),
            ),
            Item::Action(d) => s(
                d.name.text.clone(),
                Some(match &d.body {
                    ActionBody::Webhook(hook) => format!("via webhook {}", hook.url.value),
                    ActionBody::Block(_) => "do ... end".to_string(),
                }),
                SymbolKind::METHOD,
                d.span,
                d.name.span,
                Vec::new(),
            ),
            Item::Fn(d) => s(
                d.name.text.clone(),
                text.get(d.ret.span.range()).map(|r| format!("-> {r}")),
                SymbolKind::FUNCTION,
                d.span,
                d.name.span,
                Vec::new(),
            ),
            Item::ExternFn(d) => s(
                d.name.text.clone(),
                Some("extern fn".into()),
                SymbolKind::FUNCTION,
                d.span,
                d.name.span,
                Vec::new(),
            ),
            Item::Rule(r) => {
                let (trigger, trigger_span) = match &r.trigger {
                    Trigger::When { span, event } => (format!("when {}", event.text), *span),
                    Trigger::Quiet(q) => (
                        format!("when no {} on {}", q.event.text, q.field.text),
                        q.span,
                    ),
                    Trigger::Every { span, schedule } => (
                        match schedule {
                            Schedule::Cron { expr, .. } => format!("every \"{}\"", expr.value),
                            Schedule::Interval(e) => {
                                format!("every {}", text.get(e.span.range()).unwrap_or(""))
                            }
                        },
                        *span,
                    ),
                };
                match &r.name {
                    Some(name) => s(
                        name.text.clone(),
                        Some(trigger),
                        SymbolKind::CLASS,
                        r.span,
                        name.span,
                        Vec::new(),
                    ),
                    None => s(
                        trigger,
                        Some("rule".into()),
                        SymbolKind::CLASS,
                        r.span,
                        trigger_span,
                        Vec::new(),
                    ),
                }
            }
            Item::Test(t) => s(
                format!("test \"{}\"", t.name.value),
                None,
                SymbolKind::METHOD,
                t.span,
                t.name.span,
                Vec::new(),
            ),
            Item::Error(_) => continue,
        });
    }
    out
}
