//! The checker's diagnostics as the protocol publishes them: the same codes,
//! messages and help as `steward check`, ranges in UTF-16 code units, and the
//! secondary labels as related information.

use lsp_types::{
    Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString,
};
use steward::check::Analysis;
use steward::diag::{FileId, Severity};

use crate::convert::file_range;

/// The diagnostics of `file`. `uri_of` names the files secondary labels
/// point into; labels in files without a URI (the standard library) are left
/// out.
pub fn of_file(
    analysis: &Analysis,
    file: FileId,
    uri_of: &dyn Fn(FileId) -> Option<lsp_types::Url>,
) -> Vec<Diagnostic> {
    analysis
        .diagnostics
        .iter()
        .filter(|d| d.primary.file == file)
        .map(|d| {
            let mut message = d.message.clone();
            if !d.primary.text.is_empty() && d.primary.text != d.message {
                message.push_str(&format!(" ({})", d.primary.text));
            }
            if let Some(help) = &d.help {
                message.push_str("\nhelp: ");
                message.push_str(help);
            }
            let related: Vec<DiagnosticRelatedInformation> = d
                .secondary
                .iter()
                .filter_map(|l| {
                    Some(DiagnosticRelatedInformation {
                        location: Location {
                            uri: uri_of(l.file)?,
                            range: file_range(analysis, l.file, l.span),
                        },
                        message: l.text.clone(),
                    })
                })
                .collect();
            Diagnostic {
                range: file_range(analysis, file, d.primary.span),
                severity: Some(match d.severity {
                    Severity::Error => DiagnosticSeverity::ERROR,
                    Severity::Warning => DiagnosticSeverity::WARNING,
                }),
                code: Some(NumberOrString::String(d.code.as_str().to_string())),
                source: Some("steward".to_string()),
                message,
                related_information: (!related.is_empty()).then_some(related),
                ..Default::default()
            }
        })
        .collect()
}
