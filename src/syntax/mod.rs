//! The syntax stage: the grammar (`grammar/steward.pest`), the tree, the
//! parser that never fails, the formatter, and doc-comment lookup.
//!
//! Invariants: parsing never fails (a broken item becomes [`ast::Item::Error`]
//! plus a diagnostic); spans are byte offsets; nothing here knows about types.

pub mod ast;
pub mod docs;
pub mod format;
mod parse;
pub(crate) mod scan;
mod shift;

pub use parse::{is_event_name, is_name, parse, parse_reusing, Reuse, MAX_DEPTH};
