//! The Steward language server: `steward lsp` (or `steward-lsp`) speaks the
//! Language Server Protocol over stdio, on the same parser and checker as
//! the command line.
//!
//! - [`server`]: the protocol loop (ordered edits, debounced diagnostics,
//!   panics caught per handler).
//! - [`workspace`]: the documents (every `.stw` under the root, open ones
//!   with the editor's text) and their analysis as one program.
//! - [`features`]: each request answered from one analysis, in protocol
//!   types; no IO.
//! - [`convert`]: byte spans to protocol positions (UTF-16 columns).
//! - [`transport`]: stdio framing that answers malformed frames and reads on.
//!
//! It uses the language core only: no CLI, database or web crates.

pub mod convert;
pub mod features;
pub mod server;
pub mod transport;
pub mod workspace;

pub use server::{run, run_stdio};
