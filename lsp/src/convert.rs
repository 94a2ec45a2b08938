//! Between the checker's byte spans and the protocol's positions (0-based
//! lines, columns in UTF-16 code units). The conversions themselves are
//! `steward::diag::LineIndex`'s; this only adapts the types.

use lsp_types::{Position, Range};
use steward::check::Analysis;
use steward::diag::{FileId, LineCol, LineIndex, Span};

pub fn position(lines: &LineIndex, offset: u32) -> Position {
    let lc = lines.line_col_utf16(offset);
    Position {
        line: lc.line,
        character: lc.col,
    }
}

pub fn range(lines: &LineIndex, span: Span) -> Range {
    Range {
        start: position(lines, span.start),
        end: position(lines, span.end),
    }
}

/// The byte offset of a protocol position; past the end clamps to the end.
pub fn offset(lines: &LineIndex, pos: Position) -> u32 {
    lines.offset_utf16(LineCol {
        line: pos.line,
        col: pos.character,
    })
}

/// The byte span of a protocol range.
pub fn span(lines: &LineIndex, range: Range) -> Span {
    Span {
        start: offset(lines, range.start),
        end: offset(lines, range.end),
    }
}

/// The range of `span` in `file` of an analysis.
pub fn file_range(analysis: &Analysis, file: FileId, span: Span) -> Range {
    range(&analysis.sources.get(file).lines, span)
}
