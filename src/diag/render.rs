use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use serde::Serialize;

use super::{Diagnostic, Label, Severity, SourceMap, Span};

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
    /// The primary label's text, if any.
    pub label: Option<String>,
    /// Other places the diagnostic points at ("first declared here").
    pub labels: Vec<JsonLabel>,
    pub help: Option<String>,
    /// The mechanical fix, when there is one.
    pub fix: Option<JsonFix>,
}

/// A place in a file with what is said about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JsonLabel {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub end_line: u32,
    pub end_column: u32,
    pub message: String,
}

/// Replace the text from (line, column) to (end_line, end_column) of the
/// diagnostic's file with `replacement`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JsonFix {
    pub title: String,
    pub line: u32,
    pub column: u32,
    pub end_line: u32,
    pub end_column: u32,
    pub replacement: String,
}

/// 1-based (line, column) of the start and end of `span` in `file`.
fn place(sources: &SourceMap, file: super::FileId, span: Span) -> (String, [u32; 4]) {
    let f = sources.get(file);
    let start = f.lines.line_col(span.start);
    let end = f.lines.line_col(span.end);
    (
        f.name.to_string(),
        [start.line + 1, start.col + 1, end.line + 1, end.col + 1],
    )
}

impl JsonDiagnostic {
    pub fn new(diag: &Diagnostic, sources: &SourceMap) -> Self {
        let (file, [line, column, end_line, end_column]) =
            place(sources, diag.primary.file, diag.primary.span);
        JsonDiagnostic {
            file,
            line,
            column,
            end_line,
            end_column,
            severity: diag.severity,
            code: diag.code.as_str().to_string(),
            message: diag.message.clone(),
            label: (!diag.primary.text.is_empty()).then(|| diag.primary.text.clone()),
            labels: diag
                .secondary
                .iter()
                .map(|l| {
                    let (file, [line, column, end_line, end_column]) =
                        place(sources, l.file, l.span);
                    JsonLabel {
                        file,
                        line,
                        column,
                        end_line,
                        end_column,
                        message: l.text.clone(),
                    }
                })
                .collect(),
            help: diag.help.clone(),
            fix: diag.fix.as_ref().map(|f| {
                let (_, [line, column, end_line, end_column]) =
                    place(sources, diag.primary.file, f.span);
                JsonFix {
                    title: f.title.clone(),
                    line,
                    column,
                    end_line,
                    end_column,
                    replacement: f.replacement.clone(),
                }
            }),
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
    source: Excerpt,
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

/// The most of a label's span that is underlined: a span over a 10 MB line
/// shows its start.
const MAX_LABEL: u32 = 160;

/// How much text around the labels a report may carry; past this, lines
/// are cut (a 10 MB line is not echoed whole).
const MAX_EXCERPT: usize = 1024;

/// `span` cut to [`MAX_LABEL`] bytes, at a character boundary of `text`.
fn clip(text: &str, span: Span) -> Span {
    let mut end = (span.end.min(span.start.saturating_add(MAX_LABEL)) as usize).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    Span {
        start: span.start,
        end: end as u32,
    }
}

/// The part of a file a report shows: the lines around its labels, cut
/// short when they are long, with line numbers as in the whole file.
#[derive(Debug)]
struct Excerpt {
    name: String,
    text: String,
    /// Where `text` starts in the file.
    offset: usize,
    /// The line and column (0-based) where `text` starts.
    line: usize,
    column: usize,
}

impl Excerpt {
    fn around(sources: &SourceMap, file: super::FileId, spans: &[Span]) -> Excerpt {
        let source = sources.get(file);
        let text: &str = &source.text;
        let bytes = text.as_bytes();
        let start = spans.iter().map(|s| s.start as usize).min().unwrap_or(0);
        let end = spans
            .iter()
            .map(|s| clip(text, *s).end as usize)
            .max()
            .unwrap_or(0);
        let start = start.min(text.len());
        let end = end.min(text.len()).max(start);
        // Context lines either side, as miette shows, but never more than a
        // bounded number of bytes.
        let mut from = start;
        for _ in 0..3 {
            from = bytes
                .get(..from.saturating_sub(1))
                .unwrap_or(&[])
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            if from == 0 {
                break;
            }
        }
        let mut to = end;
        for _ in 0..3 {
            to = bytes
                .get(to..)
                .unwrap_or(&[])
                .iter()
                .position(|&b| b == b'\n')
                .map_or(text.len(), |i| to + i + 1);
            if to >= text.len() {
                break;
            }
        }
        if end - start > MAX_EXCERPT || start - from > MAX_EXCERPT / 2 {
            from = start.saturating_sub(MAX_EXCERPT / 4);
        }
        if to.saturating_sub(end) > MAX_EXCERPT / 2 {
            to = end.saturating_add(MAX_EXCERPT / 4).min(text.len());
        }
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        while !text.is_char_boundary(to) {
            to += 1;
        }
        let at = source.lines.line_col(from as u32);
        let line_start = source.lines.line_start(at.line as usize) as usize;
        Excerpt {
            name: source.name.to_string(),
            // miette breaks lines at `\n` only; a lone `\r` is a break too.
            text: crate::syntax::scan::lone_cr_as_lf(text.get(from..to).unwrap_or("")).into_owned(),
            offset: from,
            line: at.line as usize,
            column: text.get(line_start..from).unwrap_or("").chars().count(),
        }
    }
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let local = SourceSpan::new(span.offset().saturating_sub(self.offset).into(), span.len());
        let inner = self.text.read_span(&local, before, after)?;
        let column = if inner.line() == 0 {
            inner.column() + self.column
        } else {
            inner.column()
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            SourceSpan::new(
                (inner.span().offset() + self.offset).into(),
                inner.span().len(),
            ),
            inner.line() + self.line,
            column,
            inner.line_count(),
        )))
    }
}

fn report(diag: &Diagnostic, sources: &SourceMap) -> Report {
    let file = diag.primary.file;
    let primary = Label {
        span: clip(sources.text(file), diag.primary.span),
        ..diag.primary.clone()
    };
    let mut labels = vec![labeled(&primary, true)];
    let mut spans = vec![diag.primary.span];
    let mut related = Vec::new();
    for label in &diag.secondary {
        if label.file == file {
            labels.push(labeled(
                &Label {
                    span: clip(sources.text(label.file), label.span),
                    ..label.clone()
                },
                false,
            ));
            spans.push(label.span);
        } else {
            related.push(Report {
                message: label.text.clone(),
                code: None,
                severity: miette::Severity::Advice,
                help: None,
                source: Excerpt::around(sources, label.file, &[label.span]),
                labels: vec![labeled(
                    &Label {
                        text: String::new(),
                        span: clip(sources.text(label.file), label.span),
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
        source: Excerpt::around(sources, file, &spans),
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
