//! The standard library: Steward source in `stdlib/`, embedded in the binary
//! so `steward` works from any directory, and loaded before every program.

/// The standard library's files, by name.
pub const FILES: &[(&str, &str)] = &[
    ("envelope.stw", include_str!("../../stdlib/envelope.stw")),
    ("functions.stw", include_str!("../../stdlib/functions.stw")),
];

/// The name under which every event-triggered rule sees the event's envelope.
pub const ENVELOPE: &str = "envelope";
/// The name under which every event-triggered rule sees the whole payload.
pub const EVENT: &str = "event";
/// The stdlib type of [`ENVELOPE`].
pub const ENVELOPE_TYPE: &str = "Envelope";

/// The reference of the built-in functions and actions, as Markdown: each
/// function's signature (overloads together) with its `##` documentation, in
/// the order of `stdlib/`, then the actions from [`super::actions`]. `docs/stdlib.md` is this text; a test keeps it so.
pub fn reference() -> String {
    use crate::syntax::ast::Item;
    use crate::syntax::docs::doc_before;
    let mut out = String::from(
        "# The standard library\n\n\
         Generated from `stdlib/` (`STEWARD_BLESS=1 cargo test --test docs` writes it again).\n\
         A name declared several times is overloaded: the first declaration whose parameters fit\n\
         the arguments is used. `T` is a type parameter: every `T` in one call is the same type.\n",
    );
    for (file, title, intro) in [(
        "functions.stw",
        "Functions",
        "Called in expressions: `round(total * 0.15, 2)`.",
    )] {
        let Some((_, text)) = FILES.iter().find(|(name, _)| *name == file) else {
            continue;
        };
        out.push_str(&format!("\n## {title}\n\n{intro}\n"));
        let (tree, _) = crate::syntax::parse(0, text);
        let mut last_name = String::new();
        for item in &tree.items {
            let (name, span) = match item {
                Item::ExternFn(d) => (&d.name.text, d.span),
                _ => continue,
            };
            if *name != last_name {
                if !out.ends_with("\n\n") {
                    out.push('\n');
                }
                out.push_str(&format!("### `{name}`\n\n"));
                last_name = name.clone();
            }
            let signature = text.get(span.range()).unwrap_or("").trim();
            let signature = signature
                .strip_prefix("extern ")
                .unwrap_or(signature)
                .to_string();
            out.push_str(&format!("`{signature}`"));
            match doc_before(text, span.start) {
                Some(doc) => out.push_str(&format!(": {}\n\n", doc.replace('\n', " "))),
                None => out.push_str("\n\n"),
            }
        }
    }
    out.push_str(
        "\n## Actions\n\n\
         Run as statements, each with its own form, or performed by the engine. An action's\n\
         arguments appear in its output (replay lines, the outbox, `expect` in tests) under these\n\
         names. `expect ACTION TARGET` names the first argument (`expect send welcome`), and the\n\
         fields of `expect emit EVENT { ... }` are the payload's.\n\n",
    );
    out.push_str(&super::actions::reference());
    while out.ends_with("\n\n") || out.ends_with("\n\n\n") {
        out.pop();
    }
    out
}
