//! The Rhai sandbox: the one engine configuration every script is compiled
//! and run with. A leaf module: the checker compiles scripts here (once, so
//! their syntax errors and arity are reported), and the engine runs the
//! compiled scripts it is handed. See `engine/rhai.rs` for the values that
//! cross into and out of a script.

use rhai::{Engine, AST};

/// How many Rhai operations one call may take.
pub const MAX_OPERATIONS: u64 = 200_000;

/// The sandboxed Rhai engine every script runs in.
pub fn sandbox() -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(32)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(100_000)
        .set_max_array_size(10_000)
        .set_max_map_size(10_000)
        .set_max_variables(1_000)
        .set_max_functions(100)
        .on_print(|_| {})
        .on_debug(|_, _, _| {});
    engine.disable_symbol("eval");
    engine
}

/// Compiles a script for the sandbox.
/// The error says what is wrong and where, never the script's text (a
/// script named by mistake could be any file).
pub fn compile(engine: &Engine, text: &str) -> Result<AST, String> {
    engine.compile(text).map_err(|e| {
        let kind = format!("{:?}", e.0);
        let variant = kind.split(['(', ' ', '{']).next().unwrap_or("");
        let mut words = String::new();
        for c in variant.chars() {
            if c.is_uppercase() && !words.is_empty() {
                words.push(' ');
            }
            words.extend(c.to_lowercase());
        }
        if words.is_empty() {
            words.push_str("syntax error");
        }
        match (e.1.line(), e.1.position()) {
            (Some(line), Some(col)) => format!("{words} at line {line}, column {col}"),
            (Some(line), None) => format!("{words} at line {line}"),
            _ => words,
        }
    })
}

/// How many parameters the script's own `fn name(...)` takes, when it
/// defines one (then that function is what is called).
pub fn defines(ast: &AST, name: &str) -> Option<usize> {
    ast.iter_functions()
        .find(|f| f.name == name)
        .map(|f| f.params.len())
}
