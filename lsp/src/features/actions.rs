//! Edits the editor offers: quick fixes from the checker's mechanical fixes
//! ("did you mean", `?? default`), whole-file formatting, and the inlay hints
//! showing the types of `let`s.

use std::collections::HashMap;

use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, InlayHint, InlayHintKind, InlayHintLabel,
    Range, TextEdit, Url, WorkspaceEdit,
};
use steward::check::Analysis;
use steward::diag::{FileId, Span};

use super::diagnostics;
use crate::convert::{file_range, position};

/// The quick fixes for the problems of `file` that touch `span`.
pub fn code_actions(
    analysis: &Analysis,
    file: FileId,
    span: Span,
    uri: &Url,
) -> Vec<CodeActionOrCommand> {
    let published = diagnostics::of_file(analysis, file, &|_| None);
    analysis
        .diagnostics
        .iter()
        .filter(|d| d.primary.file == file)
        .zip(published)
        .filter(|(d, _)| d.primary.span.start <= span.end && span.start <= d.primary.span.end)
        .filter_map(|(d, published)| {
            let fix = d.fix.as_ref()?;
            let edit = TextEdit {
                range: file_range(analysis, file, fix.span),
                new_text: fix.replacement.clone(),
            };
            Some(CodeActionOrCommand::CodeAction(CodeAction {
                title: fix.title.clone(),
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![published]),
                edit: Some(WorkspaceEdit {
                    changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
                    ..Default::default()
                }),
                is_preferred: Some(true),
                ..Default::default()
            }))
        })
        .collect()
}

/// The whole file in the canonical layout, as one edit; nothing when it is
/// already formatted or does not parse (formatting never guesses).
pub fn format(text: &str) -> Vec<TextEdit> {
    let Ok(formatted) = steward::syntax::format::format_source(text) else {
        return Vec::new();
    };
    if formatted == text {
        return Vec::new();
    }
    let lines = steward::diag::LineIndex::new(text);
    vec![TextEdit {
        range: Range {
            start: position(&lines, 0),
            end: position(&lines, text.len() as u32),
        },
        new_text: formatted,
    }]
}

/// `: type` after each `let` name written without a type, within `span`.
pub fn inlay_hints(analysis: &Analysis, file: FileId, span: Span) -> Vec<InlayHint> {
    let text = analysis.sources.text(file);
    let lines = &analysis.sources.get(file).lines;
    analysis
        .lets
        .iter()
        .filter(|l| l.at.file == file && span.contains(l.at.span.start))
        .filter(|l| {
            !text
                .get(l.at.span.end as usize..)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|l| {
            let at = position(lines, l.at.span.end);
            let label = format!(": {}", analysis.program.show(&l.ty));
            (at, label)
        })
        .map(|(at, label)| InlayHint {
            position: at,
            label: InlayHintLabel::String(label.clone()),
            kind: Some(InlayHintKind::TYPE),
            // Accepting the hint writes the type into the source.
            text_edits: Some(vec![TextEdit {
                range: Range { start: at, end: at },
                new_text: label,
            }]),
            tooltip: None,
            padding_left: None,
            padding_right: None,
            data: None,
        })
        .collect()
}
