//! Go to definition, find references and rename, all from the checker's
//! record of which declaration each name refers to.

use std::collections::HashMap;

use lsp_types::{Location, Range, TextEdit, Url, WorkspaceEdit};
use steward::check::{Analysis, DefKind, Loc};
use steward::diag::FileId;

use super::{is_stdlib, occurrences, record_of_field, symbol_at, text_of, Symbol};
use crate::convert::file_range;

/// How the features name files: `None` for files without a URI.
pub type UriOf<'a> = &'a dyn Fn(FileId) -> Option<Url>;

fn location(analysis: &Analysis, uri_of: UriOf, loc: Loc) -> Option<Location> {
    Some(Location {
        uri: uri_of(loc.file)?,
        range: file_range(analysis, loc.file, loc.span),
    })
}

/// Where the name at `offset` is declared.
pub fn definition(
    analysis: &Analysis,
    file: FileId,
    offset: u32,
    uri_of: UriOf,
) -> Option<Location> {
    let symbol = symbol_at(analysis, file, offset)?;
    location(analysis, uri_of, symbol.loc)
}

/// Every place naming what the name at `offset` names.
pub fn references(
    analysis: &Analysis,
    file: FileId,
    offset: u32,
    include_declaration: bool,
    uri_of: UriOf,
) -> Vec<Location> {
    let Some(symbol) = symbol_at(analysis, file, offset) else {
        return Vec::new();
    };
    occurrences(analysis, symbol)
        .into_iter()
        .skip(usize::from(!include_declaration))
        .filter_map(|loc| location(analysis, uri_of, loc))
        .collect()
}

/// The name that would be renamed at `offset`, or why it cannot be.
pub fn prepare_rename(analysis: &Analysis, file: FileId, offset: u32) -> Result<Range, String> {
    let symbol = renamable(analysis, file, offset)?;
    let at = occurrences(analysis, symbol)
        .into_iter()
        .find(|l| l.file == file && l.span.contains(offset))
        .unwrap_or(symbol.loc);
    Ok(file_range(analysis, at.file, at.span))
}

fn renamable(analysis: &Analysis, file: FileId, offset: u32) -> Result<Symbol, String> {
    let symbol =
        symbol_at(analysis, file, offset).ok_or_else(|| "there is no name here".to_string())?;
    if is_stdlib(analysis, symbol.loc.file) {
        return Err(format!(
            "`{}` belongs to the standard library and cannot be renamed",
            text_of(analysis, symbol.loc)
        ));
    }
    Ok(symbol)
}

/// The edits renaming what the name at `offset` names to `new_name`, in
/// every file; or why it cannot be done.
pub fn rename(
    analysis: &Analysis,
    file: FileId,
    offset: u32,
    new_name: &str,
    uri_of: UriOf,
) -> Result<WorkspaceEdit, String> {
    let symbol = renamable(analysis, file, offset)?;
    let old = text_of(analysis, symbol.loc).to_string();
    let valid = match symbol.kind {
        DefKind::Event => steward::syntax::is_event_name(new_name),
        _ => steward::syntax::is_name(new_name),
    };
    if !valid {
        return Err(format!("`{new_name}` is not a valid name here"));
    }
    if new_name == old {
        return Ok(WorkspaceEdit::default());
    }
    if let Some(clash) = clash(analysis, symbol, new_name) {
        return Err(clash);
    }
    let mut changes: HashMap<Url, Vec<TextEdit>> = HashMap::new();
    for loc in occurrences(analysis, symbol) {
        if text_of(analysis, loc) != old {
            continue;
        }
        let Some(uri) = uri_of(loc.file) else {
            continue;
        };
        changes.entry(uri).or_default().push(TextEdit {
            range: file_range(analysis, loc.file, loc.span),
            new_text: new_name.to_string(),
        });
    }
    Ok(WorkspaceEdit {
        changes: Some(changes),
        ..Default::default()
    })
}

/// Why `new_name` would collide with another declaration, if it would.
fn clash(analysis: &Analysis, symbol: Symbol, new_name: &str) -> Option<String> {
    let program = &analysis.program;
    let taken = match symbol.kind {
        DefKind::Event => program.events.contains_key(new_name),
        DefKind::Type => program.types.contains_key(new_name),
        DefKind::Message => program.messages.contains_key(new_name),
        DefKind::Action => program.actions.contains_key(new_name),
        DefKind::Function => program.functions.contains_key(new_name),
        DefKind::Field => record_of_field(analysis, symbol.loc)
            .is_some_and(|id| program.record(id).field(new_name).is_some()),
        DefKind::Let | DefKind::Param => false,
    };
    taken.then(|| format!("`{new_name}` is already declared"))
}
