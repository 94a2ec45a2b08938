//! Steward: an automation language and engine.
//!
//! The language core (this crate without the `cli` feature) is IO-free:
//! [`syntax`] parses and formats, [`check`] resolves names and types against
//! the standard library, and [`diag`] is the one diagnostic type that the CLI,
//! the API and the language server print. See ARCHITECTURE.md.

pub mod check;
#[cfg(feature = "cli")]
pub mod cli;
pub mod diag;
pub mod engine;
pub mod syntax;
