//! Semantic tokens: keywords and comments from the parser, and every name
//! coloured by what the checker found it refers to (an event, a field, a
//! function from the standard library, a `let`, ...).

use lsp_types::{SemanticToken, SemanticTokenModifier, SemanticTokenType, SemanticTokensLegend};
use steward::check::{Analysis, DefKind};
use steward::diag::{FileId, Span};

use super::{declarations, is_stdlib};
use crate::convert::position;

const TYPES: &[SemanticTokenType] = &[
    SemanticTokenType::KEYWORD,
    SemanticTokenType::COMMENT,
    SemanticTokenType::TYPE,
    SemanticTokenType::EVENT,
    SemanticTokenType::PROPERTY,
    SemanticTokenType::STRUCT,
    SemanticTokenType::METHOD,
    SemanticTokenType::FUNCTION,
    SemanticTokenType::PARAMETER,
    SemanticTokenType::VARIABLE,
];

const MODIFIERS: &[SemanticTokenModifier] = &[
    SemanticTokenModifier::DECLARATION,
    SemanticTokenModifier::DEFAULT_LIBRARY,
    SemanticTokenModifier::DOCUMENTATION,
];

const KEYWORD: u32 = 0;
const COMMENT: u32 = 1;
const DECLARATION: u32 = 1 << 0;
const DEFAULT_LIBRARY: u32 = 1 << 1;
const DOCUMENTATION: u32 = 1 << 2;

pub fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend {
        token_types: TYPES.to_vec(),
        token_modifiers: MODIFIERS.to_vec(),
    }
}

fn kind_type(kind: DefKind) -> u32 {
    match kind {
        DefKind::Type => 2,
        DefKind::Event => 3,
        DefKind::Field => 4,
        DefKind::Message => 5,
        DefKind::Action => 6,
        DefKind::Function => 7,
        DefKind::Param => 8,
        DefKind::Let => 9,
    }
}

/// The tokens of `file`, encoded as the protocol wants (each relative to the
/// one before).
pub fn semantic_tokens(analysis: &Analysis, file: FileId) -> Vec<SemanticToken> {
    let Some(parsed) = analysis.files.iter().find(|f| f.id == file) else {
        return Vec::new();
    };
    let text = analysis.sources.text(file);
    let mut raw: Vec<(Span, u32, u32)> = Vec::new();
    raw.extend(parsed.tree.keywords.iter().map(|&s| (s, KEYWORD, 0)));
    for &c in &parsed.tree.comments {
        let doc = text.get(c.range()).is_some_and(|t| t.starts_with("##"));
        raw.push((c, COMMENT, if doc { DOCUMENTATION } else { 0 }));
    }
    for r in analysis.references.iter().filter(|r| r.at.file == file) {
        let library = if is_stdlib(analysis, r.target.file) {
            DEFAULT_LIBRARY
        } else {
            0
        };
        raw.push((r.at.span, kind_type(r.kind), library));
    }
    for d in declarations(analysis)
        .into_iter()
        .filter(|d| d.loc.file == file)
    {
        raw.push((d.loc.span, kind_type(d.kind), DECLARATION));
    }
    raw.sort_by_key(|(span, ty, _)| (span.start, std::cmp::Reverse(span.end), *ty));
    let lines = &analysis.sources.get(file).lines;
    let mut out = Vec::with_capacity(raw.len());
    let (mut prev_line, mut prev_start, mut covered) = (0, 0, 0);
    for (span, ty, modifiers) in raw {
        if span.is_empty() || span.start < covered {
            continue;
        }
        let start = position(lines, span.start);
        let end = position(lines, span.end);
        if start.line != end.line {
            continue;
        }
        covered = span.end;
        let delta_line = start.line - prev_line;
        let delta_start = if delta_line == 0 {
            start.character - prev_start
        } else {
            start.character
        };
        out.push(SemanticToken {
            delta_line,
            delta_start,
            length: end.character - start.character,
            token_type: ty,
            token_modifiers_bitset: modifiers,
        });
        prev_line = start.line;
        prev_start = start.character;
    }
    out
}
