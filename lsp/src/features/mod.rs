//! What the editor asks, answered from one [`Analysis`]: each function takes
//! the analysis, the file and a byte offset, and returns protocol types. None
//! of them does IO or fails: on a half-typed file they answer with what the
//! checker could still make of it.

pub mod actions;
pub mod completion;
pub mod diagnostics;
pub mod hover;
pub mod navigation;
pub mod symbols;
pub mod tokens;

use steward::check::types::RecordId;
use steward::check::{Analysis, DefKind, Loc, Type};
use steward::diag::{FileId, Span};
use steward::syntax::ast::Item;

/// A declared thing: where its name is written, and what kind it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub loc: Loc,
    pub kind: DefKind,
}

/// Every declaration of the program that references can point at: records,
/// their fields, messages, actions, functions, and `let`s and parameters
/// (which are known by their uses).
pub fn declarations(analysis: &Analysis) -> Vec<Symbol> {
    let mut out = Vec::new();
    let program = &analysis.program;
    for record in &program.records {
        out.push(Symbol {
            loc: record.loc,
            kind: if record.is_event {
                DefKind::Event
            } else {
                DefKind::Type
            },
        });
        for field in &record.fields {
            out.push(Symbol {
                loc: field.loc,
                kind: DefKind::Field,
            });
        }
    }
    for action in program.actions.values() {
        out.push(Symbol {
            loc: action.loc,
            kind: DefKind::Action,
        });
    }
    for sig in program.functions.values().flatten() {
        out.push(Symbol {
            loc: sig.loc,
            kind: DefKind::Function,
        });
        for p in &sig.params {
            out.push(Symbol {
                loc: p.loc,
                kind: DefKind::Param,
            });
        }
    }
    for file in &analysis.files {
        for item in &file.tree.items {
            if let Item::Message(m) = item {
                out.push(Symbol {
                    loc: Loc {
                        file: file.id,
                        span: m.name.span,
                    },
                    kind: DefKind::Message,
                });
            }
        }
    }
    for l in &analysis.lets {
        out.push(Symbol {
            loc: l.at,
            kind: DefKind::Let,
        });
    }
    for r in &analysis.references {
        if matches!(r.kind, DefKind::Let | DefKind::Param) {
            out.push(Symbol {
                loc: r.target,
                kind: r.kind,
            });
        }
    }
    out.sort_by_key(|s| (s.loc, s.kind as u8));
    out.dedup();
    out
}

/// The symbol at `offset` of `file`: the declaration a name there refers to,
/// or the declaration whose name is there.
pub fn symbol_at(analysis: &Analysis, file: FileId, offset: u32) -> Option<Symbol> {
    let used = analysis
        .references
        .iter()
        .filter(|r| r.at.file == file && r.at.span.contains(offset))
        .min_by_key(|r| r.at.span.len())
        .map(|r| Symbol {
            loc: r.target,
            kind: r.kind,
        });
    used.or_else(|| {
        declarations(analysis)
            .into_iter()
            .filter(|s| s.loc.file == file && s.loc.span.contains(offset))
            .min_by_key(|s| s.loc.span.len())
    })
}

/// Every place that names `symbol`, its declaration first.
pub fn occurrences(analysis: &Analysis, symbol: Symbol) -> Vec<Loc> {
    let mut out = vec![symbol.loc];
    let mut uses: Vec<Loc> = analysis
        .references
        .iter()
        .filter(|r| r.target == symbol.loc)
        .map(|r| r.at)
        .filter(|at| *at != symbol.loc)
        .collect();
    uses.sort();
    uses.dedup();
    out.extend(uses);
    out
}

/// Whether a file is part of the embedded standard library.
pub fn is_stdlib(analysis: &Analysis, file: FileId) -> bool {
    analysis.files.iter().any(|f| f.id == file && f.stdlib)
}

/// The text of a span.
pub fn text_of(analysis: &Analysis, loc: Loc) -> &str {
    analysis
        .sources
        .text(loc.file)
        .get(loc.span.range())
        .unwrap_or("")
}

/// The `##` documentation above a declaration.
pub fn doc_of(analysis: &Analysis, loc: Loc) -> Option<String> {
    steward::syntax::docs::doc_before(analysis.sources.text(loc.file), loc.span.start)
}

/// The record whose field is declared at `loc`.
pub fn record_of_field(analysis: &Analysis, loc: Loc) -> Option<RecordId> {
    analysis
        .program
        .records
        .iter()
        .position(|r| r.fields.iter().any(|f| f.loc == loc))
        .map(|i| i as RecordId)
}

/// The type the checker gave the innermost expression around `offset`.
pub fn type_at(analysis: &Analysis, file: FileId, offset: u32) -> Option<(Span, &Type)> {
    analysis.hir.type_at(file, offset)
}

/// The item of `file` that holds `offset`.
pub fn item_at(analysis: &Analysis, file: FileId, offset: u32) -> Option<&Item> {
    analysis
        .files
        .iter()
        .find(|f| f.id == file)?
        .tree
        .items
        .iter()
        .find(|i| i.span().contains(offset))
}
