//! Completion. The text being typed rarely parses, so the context comes from
//! the text before the cursor (what word precedes it, whether it is inside a
//! string, which `when` the enclosing rule starts with), and the names and
//! types come from the checker's program and its record of `let` types.

use std::sync::LazyLock;

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionTextEdit, Documentation, MarkupContent,
    MarkupKind, TextEdit,
};
use regex::Regex;
use steward::check::actions::BUILTINS;
use steward::check::types::{FnKind, RecordId};
use steward::check::{Analysis, Loc, Type};
use steward::diag::{FileId, Span};

use super::{doc_of, text_of};
use crate::convert::file_range;

/// The words that start an item, at the start of a line.
const ITEM_KEYWORDS: &[&str] = &[
    "rule", "when", "every", "event", "type", "message", "action", "fn", "test",
];

/// Words that make sense inside a rule.
const RULE_KEYWORDS: &[&str] = &[
    "if",
    "then",
    "else",
    "end",
    "and",
    "or",
    "not",
    "in",
    "let",
    "send",
    "notify role",
    "notify user",
    "create task",
    "emit",
    "log",
    "after",
    "at",
    "do",
    "unless",
    "skip if late",
    "require approval from role",
    "within",
    "throttle",
    "per",
    "count",
    "priority",
    "stop",
    "by",
    "previous",
    "since",
    "until",
    "changed",
    "changed to",
    "changed from",
    "none",
    "true",
    "false",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
];

/// Words of `test` blocks.
const TEST_KEYWORDS: &[&str] = &[
    "given", "partial", "key", "wait", "until", "approve", "reject", "expect", "no", "nothing",
    "end",
];

/// One of the constant patterns below (each compiled by the tests of this
/// module): no text from a document reaches it.
#[allow(
    clippy::expect_used,
    reason = "constant patterns, compiled by the tests"
)]
fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("completion patterns are valid")
}

static EVENT_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?:^|[\s(])(?:(?:when|unless|emit|given(?:\s+partial)?)\s+|count\(\s*)([A-Za-z0-9_.]*)$",
    )
});
static UNLESS_ON: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\bunless\s+([A-Za-z_][\w.]*)\s+on\s+\w*$"));
static SEND: LazyLock<Regex> = LazyLock::new(|| regex(r"\bsend\s+\w*$"));
static EXPECT: LazyLock<Regex> = LazyLock::new(|| regex(r"^\s*expect\s+(?:no\s+)?\w*$"));
static PATH_DOT: LazyLock<Regex> =
    LazyLock::new(|| regex(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\.$"));
static COMPARED: LazyLock<Regex> = LazyLock::new(|| {
    regex(r#"([A-Za-z_][\w.]*)\s*(?:==|!=|(?:\s(?:not\s+)?in\s*\[(?:\s*"[^"]*"\s*,)*))\s*$"#)
});
static TRIGGER: LazyLock<Regex> = LazyLock::new(|| regex(r"\bwhen\s+([A-Za-z_][\w.]*)"));
static LET: LazyLock<Regex> = LazyLock::new(|| regex(r"\blet\s+([A-Za-z_]\w*)"));
static FN_PARAMS: LazyLock<Regex> = LazyLock::new(|| regex(r"^fn\s+(\w+)\s*\("));

/// Where the cursor is in the line's lexical structure.
enum Lexical {
    Code,
    /// Inside a string; its text starts at this offset of the line.
    Str(usize),
    Comment,
}

fn lexical(line: &str) -> Lexical {
    let mut state = Lexical::Code;
    let mut depth = 0;
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        match state {
            Lexical::Code => match c {
                '#' if depth == 0 => return Lexical::Comment,
                '"' if depth == 0 => state = Lexical::Str(i + 1),
                '}' if depth > 0 => {
                    depth -= 1;
                    state = Lexical::Str(i + 1);
                }
                _ => {}
            },
            Lexical::Str(_) => match c {
                '\\' => {
                    chars.next();
                }
                '"' => state = Lexical::Code,
                '{' => {
                    depth += 1;
                    state = Lexical::Code;
                }
                _ => {}
            },
            // Returned as soon as it is reached.
            Lexical::Comment => return Lexical::Comment,
        }
    }
    state
}

/// The item around the cursor, from the text: where it starts and what it is.
struct ItemContext<'a> {
    /// From the item's first line to the cursor.
    text: &'a str,
    first_word: &'a str,
    trigger: Option<RecordId>,
}

fn item_context<'a>(analysis: &Analysis, text: &'a str, offset: usize) -> ItemContext<'a> {
    let mut start = text
        .get(..offset)
        .unwrap_or("")
        .rfind('\n')
        .map_or(0, |i| i + 1);
    loop {
        let line = text.get(start..).unwrap_or("");
        let word = line
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .next()
            .unwrap_or("");
        if ITEM_KEYWORDS.contains(&word) || start == 0 {
            break;
        }
        start = text
            .get(..start - 1)
            .unwrap_or("")
            .rfind('\n')
            .map_or(0, |i| i + 1);
    }
    let item = text.get(start..offset).unwrap_or("");
    let first_word = item
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("");
    let trigger = matches!(first_word, "rule" | "when")
        .then(|| TRIGGER.captures(item))
        .flatten()
        .and_then(|c| analysis.program.events.get(&c[1]).copied());
    ItemContext {
        text: item,
        first_word,
        trigger,
    }
}

struct Completer<'a> {
    analysis: &'a Analysis,
    /// An earlier analysis in which the file parsed, for the types of `let`s
    /// in the item being typed (which does not parse now).
    earlier: Option<&'a Analysis>,
    file: FileId,
    item: ItemContext<'a>,
    /// What the completion replaces: the word being typed.
    replace: Span,
    items: Vec<CompletionItem>,
}

impl Completer<'_> {
    fn push(&mut self, label: &str, kind: CompletionItemKind, detail: Option<String>) {
        self.push_doc(label, kind, detail, None);
    }

    fn push_doc(
        &mut self,
        label: &str,
        kind: CompletionItemKind,
        detail: Option<String>,
        doc: Option<String>,
    ) {
        let range = file_range(self.analysis, self.file, self.replace);
        self.items.push(CompletionItem {
            label: label.to_string(),
            kind: Some(kind),
            detail,
            documentation: doc.map(|value| {
                Documentation::MarkupContent(MarkupContent {
                    kind: MarkupKind::Markdown,
                    value,
                })
            }),
            text_edit: Some(CompletionTextEdit::Edit(TextEdit {
                range,
                new_text: label.to_string(),
            })),
            ..Default::default()
        });
    }

    fn doc(&self, loc: Loc) -> Option<String> {
        doc_of(self.analysis, loc)
    }

    fn events(&mut self) {
        let mut events: Vec<(&String, &RecordId)> = self.analysis.program.events.iter().collect();
        events.sort();
        for (name, &id) in events {
            let loc = self.analysis.program.record(id).loc;
            let doc = self.doc(loc);
            self.push_doc(name, CompletionItemKind::EVENT, Some("event".into()), doc);
        }
    }

    fn fields(&mut self, id: RecordId) {
        let record = self.analysis.program.record(id).clone();
        for f in &record.fields {
            let doc = self.doc(f.loc);
            let detail = Some(self.analysis.program.show(&f.ty));
            self.push_doc(&f.name, CompletionItemKind::FIELD, detail, doc);
        }
    }

    fn messages(&mut self) {
        let mut names: Vec<String> = self.analysis.program.messages.keys().cloned().collect();
        names.sort();
        for name in names {
            self.push(&name, CompletionItemKind::STRUCT, Some("message".into()));
        }
    }

    /// The type of the `let` or parameter called `name` in this item.
    fn local_type(&self, name: &str) -> Option<Type> {
        let found = |a: &Analysis| {
            a.lets
                .iter()
                .rfind(|l| l.at.file == self.file && text_of(a, l.at) == name)
                .map(|l| l.ty.clone())
        };
        if LET.captures_iter(self.item.text).any(|c| &c[1] == name) {
            return found(self.analysis).or_else(|| self.earlier.and_then(found));
        }
        let function = FN_PARAMS.captures(self.item.text)?;
        let sig = self.analysis.program.functions.get(&function[1])?.first()?;
        sig.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.ty.clone())
    }

    /// The type of a dotted path such as `guest.address.city`.
    fn path_type(&self, path: &str) -> Option<Type> {
        let program = &self.analysis.program;
        let mut segments = path.split('.');
        let head = segments.next()?;
        let mut ty = match (head, self.item.trigger) {
            _ if self.local_type(head).is_some() => self.local_type(head)?,
            ("event", Some(id)) => Type::Record(id),
            ("envelope", _) => {
                Type::Record(*program.types.get(steward::check::stdlib::ENVELOPE_TYPE)?)
            }
            (name, Some(id)) => program.record(id).field(name)?.ty.clone(),
            _ => return None,
        };
        for segment in segments {
            let Type::Record(id) = ty.present() else {
                return None;
            };
            ty = program.record(*id).field(segment)?.ty.clone();
        }
        Some(ty)
    }

    /// Names usable in an expression here, and the keywords.
    fn general(&mut self, at_line_start: bool) {
        if at_line_start && !matches!(self.item.first_word, "rule" | "when" | "every" | "fn") {
            for kw in ITEM_KEYWORDS {
                self.push(kw, CompletionItemKind::KEYWORD, None);
            }
        }
        if self.item.first_word == "test" {
            for kw in TEST_KEYWORDS {
                self.push(kw, CompletionItemKind::KEYWORD, None);
            }
            return;
        }
        if !matches!(self.item.first_word, "rule" | "when" | "every" | "fn") {
            return;
        }
        if let Some(id) = self.item.trigger {
            self.fields(id);
            self.push(
                "event",
                CompletionItemKind::VARIABLE,
                Some("the payload".into()),
            );
            self.push(
                "envelope",
                CompletionItemKind::VARIABLE,
                Some("Envelope".into()),
            );
        }
        let mut locals: Vec<String> = LET
            .captures_iter(self.item.text)
            .map(|c| c[1].to_string())
            .collect();
        if let Some(f) = FN_PARAMS.captures(self.item.text) {
            if let Some(sig) = self
                .analysis
                .program
                .functions
                .get(&f[1])
                .and_then(|s| s.first())
            {
                locals.extend(sig.params.iter().map(|p| p.name.clone()));
            }
        }
        locals.sort();
        locals.dedup();
        for name in locals {
            let detail = self
                .local_type(&name)
                .map(|t| self.analysis.program.show(&t));
            self.push(&name, CompletionItemKind::VARIABLE, detail);
        }
        let mut functions: Vec<_> = self.analysis.program.functions.iter().collect();
        functions.sort_by_key(|(name, _)| name.as_str());
        for (name, sigs) in functions {
            let Some(sig) = sigs.first() else {
                continue;
            };
            let shown: Vec<String> = sig
                .params
                .iter()
                .map(|p| format!("{}: {}", p.name, self.analysis.program.show(&p.ty)))
                .collect();
            let mut detail = format!(
                "fn({}) -> {}",
                shown.join(", "),
                self.analysis.program.show(&sig.ret)
            );
            if sigs.len() > 1 {
                detail.push_str(&format!(" (+{} overloads)", sigs.len() - 1));
            }
            if sig.kind == FnKind::Rhai {
                detail.push_str(" from rhai");
            }
            let doc = self.doc(sig.loc);
            self.push_doc(name, CompletionItemKind::FUNCTION, Some(detail), doc);
        }
        let mut actions: Vec<_> = self
            .analysis
            .program
            .actions
            .values()
            .map(|a| (a.name.clone(), a.loc))
            .collect();
        actions.sort();
        for (name, loc) in actions {
            let doc = self.doc(loc);
            self.push_doc(
                &name,
                CompletionItemKind::METHOD,
                Some("action (webhook)".into()),
                doc,
            );
        }
        for kw in RULE_KEYWORDS {
            self.push(kw, CompletionItemKind::KEYWORD, None);
        }
    }
}

/// The completions at `offset` of `file`.
pub fn complete(
    analysis: &Analysis,
    earlier: Option<&Analysis>,
    file: FileId,
    offset: u32,
) -> Vec<CompletionItem> {
    let text = analysis.sources.text(file);
    let mut offset = (offset as usize).min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text
        .get(..offset)
        .unwrap_or("")
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text.get(line_start..offset).unwrap_or("");
    let word_len = line
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .count();
    let word_start = offset - word_len;
    let item = item_context(analysis, text, offset);
    let mut c = Completer {
        analysis,
        earlier,
        file,
        item,
        replace: Span::new(word_start, offset),
        items: Vec::new(),
    };
    match lexical(line) {
        Lexical::Comment => {}
        Lexical::Str(content) => {
            // A string compared with a union field: the union's members.
            let Some(found) =
                COMPARED.captures(line.get(..content.saturating_sub(1)).unwrap_or(""))
            else {
                return Vec::new();
            };
            if let Some(Type::Union(members)) = c.path_type(&found[1]).map(|t| t.present().clone())
            {
                c.replace = Span::new(line_start + content, offset);
                for m in members.iter() {
                    c.push(
                        m,
                        CompletionItemKind::ENUM_MEMBER,
                        Some("union member".into()),
                    );
                }
            }
        }
        Lexical::Code => {
            let before = line.get(..line.len() - word_len).unwrap_or("");
            if let Some(found) = EVENT_CONTEXT.captures(line) {
                let token = found.get(1).map_or(0, |m| m.len());
                c.replace = Span::new(offset - token, offset);
                c.events();
            } else if let Some(found) = UNLESS_ON.captures(line) {
                if let Some(&id) = analysis.program.events.get(&found[1]) {
                    c.fields(id);
                }
            } else if SEND.is_match(line) {
                c.messages();
            } else if c.item.first_word == "test" && EXPECT.is_match(line) {
                for action in BUILTINS {
                    c.push(
                        action.name,
                        CompletionItemKind::METHOD,
                        Some("action".into()),
                    );
                }
            } else if let Some(found) = PATH_DOT.captures(before) {
                if let Some(Type::Record(id)) = c.path_type(&found[1]).map(|t| t.present().clone())
                {
                    c.fields(id);
                }
            } else if !before.ends_with('.') {
                c.general(before.trim().is_empty() && !before.starts_with([' ', '\t']));
            }
        }
    }
    c.items
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every constant pattern compiles (what `regex` relies on).
    #[test]
    fn the_patterns_compile() {
        for pattern in [
            &EVENT_CONTEXT,
            &UNLESS_ON,
            &SEND,
            &EXPECT,
            &PATH_DOT,
            &COMPARED,
            &TRIGGER,
            &LET,
            &FN_PARAMS,
        ] {
            LazyLock::force(pattern);
        }
    }
}
