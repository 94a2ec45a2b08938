//! Diagnostics: the one type that the CLI, the HTTP API and the language server
//! all print.
//!
//! A [`Diagnostic`] holds byte spans into files of a [`SourceMap`]; it becomes
//! lines and columns only at the edges, through [`LineIndex`]: character
//! columns for the CLI's JSON, UTF-16 columns for the language server, and
//! miette's rendering for people.

mod code;
mod line_index;
mod render;
mod source;

pub use code::Code;
pub use line_index::{LineCol, LineIndex};
pub use render::{render_human, JsonDiagnostic};
pub use source::{without_spans, FileId, SourceMap, Span};

use serde::Serialize;

/// How bad a diagnostic is. Errors stop a ruleset from being deployed or run;
/// warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A place in a file, with a short text shown next to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub file: FileId,
    pub span: Span,
    pub text: String,
}

/// An edit that fixes a problem mechanically: replace the text at `span` (in
/// the primary label's file) by `replacement`. Editors offer it as a quick fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    /// What the edit does, shown to the user: "replace with `risk`".
    pub title: String,
    pub span: Span,
    pub replacement: String,
}

/// A problem found in rule text: a stable code, a one-line message, the
/// primary place, secondary places, help saying how to fix it, and the fix
/// itself when it is mechanical.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub help: Option<String>,
    pub fix: Option<Fix>,
}

impl Diagnostic {
    /// A diagnostic at `span` of `file`, its severity that of its code.
    pub fn new(code: Code, file: FileId, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            primary: Label {
                file,
                span,
                text: String::new(),
            },
            secondary: Vec::new(),
            help: None,
            fix: None,
        }
    }

    /// The text shown under the primary span.
    pub fn with_label(mut self, text: impl Into<String>) -> Self {
        self.primary.text = text.into();
        self
    }

    /// Another place that explains the problem, possibly in another file.
    pub fn with_secondary(mut self, file: FileId, span: Span, text: impl Into<String>) -> Self {
        self.secondary.push(Label {
            file,
            span,
            text: text.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// A mechanical fix: replace `span` of the primary file by `replacement`.
    pub fn with_fix(
        mut self,
        title: impl Into<String>,
        span: Span,
        replacement: impl Into<String>,
    ) -> Self {
        self.fix = Some(Fix {
            title: title.into(),
            span,
            replacement: replacement.into(),
        });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts diagnostics by file and position, the order people read them in.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (
            a.primary.file,
            a.primary.span.start,
            a.primary.span.end,
            a.code,
        )
            .cmp(&(
                b.primary.file,
                b.primary.span.start,
                b.primary.span.end,
                b.code,
            ))
    });
}
