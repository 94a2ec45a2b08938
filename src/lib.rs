//! Steward: an automation language and engine.
//!
//! The language core is IO-free: [`syntax`] parses and formats, [`check`]
//! resolves names and types against the standard library, [`diag`] is the one
//! diagnostic type that the CLI, the API and the language server print, and
//! [`engine`] runs checked rules against a store and a clock it is given.
//! [`files`] is the only module that reads the file system, for the command
//! line (`cli/`) and the language server (`lsp/`). [`boundary`] is the
//! surface the programs use: sources to a compiled ruleset, and the JSON
//! shapes of diagnostics, actions and traces. See ARCHITECTURE.md.

pub mod boundary;
pub mod check;
pub mod diag;
pub mod engine;
pub mod files;
pub mod hir;
pub(crate) mod script;
pub mod syntax;
