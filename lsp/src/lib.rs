//! The Steward language server's analysis layer (the protocol itself comes
//! with the language-server issue). It uses the language core only: this
//! crate builds `steward` without its `cli` feature, so no CLI, database or
//! web crates.
//!
//! What lives here converts the checker's byte spans into the positions the
//! Language Server Protocol requires: lines, and columns in UTF-16 code units.

use steward::check::{analyze, Host};
use steward::diag::{Diagnostic, LineCol, Severity};

/// A position as the protocol counts it: 0-based line, UTF-16 column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub character: u32,
}

/// A diagnostic ready to publish for one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentDiagnostic {
    pub start: Position,
    pub end: Position,
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
}

fn position(lc: LineCol) -> Position {
    Position {
        line: lc.line,
        character: lc.col,
    }
}

/// Checks `documents` (name and text) together as one program and returns
/// the diagnostics of the document named `name`, in UTF-16 ranges.
pub fn document_diagnostics(
    documents: &[(String, String)],
    name: &str,
    host: &dyn Host,
) -> Vec<DocumentDiagnostic> {
    let analysis = analyze(documents, host);
    let Some(file) = analysis
        .sources
        .ids()
        .find(|&id| analysis.sources.name(id) == name)
    else {
        return Vec::new();
    };
    let lines = &analysis.sources.get(file).lines;
    analysis
        .diagnostics
        .iter()
        .filter(|d| d.primary.file == file)
        .map(|d: &Diagnostic| DocumentDiagnostic {
            start: position(lines.line_col_utf16(d.primary.span.start)),
            end: position(lines.line_col_utf16(d.primary.span.end)),
            severity: d.severity,
            code: d.code.as_str(),
            message: d.message.clone(),
            help: d.help.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward::check::NoFiles;

    #[test]
    fn ranges_count_utf16_units_after_emoji() {
        let docs = vec![
            (
                "decl.stw".to_string(),
                "event a.b { risk: float }\n".to_string(),
            ),
            (
                "doc.stw".to_string(),
                "when a.b if \"🎉\" == \"x\" or riks < 0.5 then log \"x\"\n".to_string(),
            ),
        ];
        let diags = document_diagnostics(&docs, "doc.stw", &NoFiles);
        let d = diags
            .iter()
            .find(|d| d.code == "E0202")
            .expect("unknown field");
        // `riks` is at character 26, but the emoji takes two UTF-16 units.
        assert_eq!(
            d.start,
            Position {
                line: 0,
                character: 27
            }
        );
        assert_eq!(
            d.end,
            Position {
                line: 0,
                character: 31
            }
        );
        assert_eq!(d.help.as_deref(), Some("did you mean `risk`?"));
    }
}
