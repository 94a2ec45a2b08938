use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};
use serde::Serialize;

use super::{Diagnostic, Label, Severity, SourceMap};

/// One diagnostic as the CLI's `--format json` and the HTTP API print it.
/// Lines and columns are 1-based; columns count characters, and the end is
/// exclusive (the column just after the last character of the span).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JsonDiagnostic {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub end_line: u32,
    pub end_column: u32,
    pub severity: Severity,
    pub code: String,
    pub message: String,
    pub help: Option<String>,
}

impl JsonDiagnostic {
    pub fn new(diag: &Diagnostic, sources: &SourceMap) -> Self {
        let file = sources.get(diag.primary.file);
        let start = file.lines.line_col(diag.primary.span.start);
        let end = file.lines.line_col(diag.primary.span.end);
        JsonDiagnostic {
            file: file.name.to_string(),
            line: start.line + 1,
            column: start.col + 1,
            end_line: end.line + 1,
            end_column: end.col + 1,
            severity: diag.severity,
            code: diag.code.as_str().to_string(),
            message: diag.message.clone(),
            help: diag.help.clone(),
        }
    }
}

/// A diagnostic joined to its source text, in the shape miette renders.
/// Labels in other files than the primary one become related notes.
#[derive(Debug)]
struct Report {
    message: String,
    code: Option<String>,
    severity: miette::Severity,
    help: Option<String>,
    source: NamedSource<String>,
    labels: Vec<LabeledSpan>,
    related: Vec<Report>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.code
            .as_ref()
            .map(|c| Box::new(c) as Box<dyn std::fmt::Display>)
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(
            self.related.iter().map(|r| r as &dyn miette::Diagnostic),
        ))
    }
}

fn labeled(label: &Label, primary: bool) -> LabeledSpan {
    let text = (!label.text.is_empty()).then(|| label.text.clone());
    let span = (label.span.start as usize, label.span.len() as usize);
    if primary {
        LabeledSpan::new_primary_with_span(text, span)
    } else {
        LabeledSpan::new_with_span(text, span)
    }
}

fn report(diag: &Diagnostic, sources: &SourceMap) -> Report {
    let file = diag.primary.file;
    let mut labels = vec![labeled(&diag.primary, true)];
    let mut related = Vec::new();
    for label in &diag.secondary {
        if label.file == file {
            labels.push(labeled(label, false));
        } else {
            related.push(Report {
                message: label.text.clone(),
                code: None,
                severity: miette::Severity::Advice,
                help: None,
                source: NamedSource::new(
                    sources.name(label.file),
                    sources.text(label.file).to_string(),
                ),
                labels: vec![labeled(
                    &Label {
                        text: String::new(),
                        ..label.clone()
                    },
                    true,
                )],
                related: Vec::new(),
            });
        }
    }
    Report {
        message: diag.message.clone(),
        code: Some(diag.code.as_str().to_string()),
        severity: match diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        },
        help: diag.help.clone(),
        source: NamedSource::new(sources.name(file), sources.text(file).to_string()),
        labels,
        related,
    }
}

/// Renders a diagnostic the miette way: the message, the code, the source
/// lines with the spans underlined, and the help. `color` adds ANSI colours.
pub fn render_human(diag: &Diagnostic, sources: &SourceMap, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = handler.render_report(&mut out, &report(diag, sources));
    out
}
