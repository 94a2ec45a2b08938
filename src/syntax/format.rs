//! The formatter (in progress).
use crate::diag::Diagnostic;
pub fn format_source(text: &str) -> Result<String, Vec<Diagnostic>> { Ok(text.to_string()) }
