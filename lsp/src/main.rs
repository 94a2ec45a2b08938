//! `steward-lsp`: the language server on stdio (the same as `steward lsp`).

fn main() -> std::process::ExitCode {
    match steward_lsp::run_stdio() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("steward-lsp: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
