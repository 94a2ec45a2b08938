//! Parsing: rule text to a syntax tree, never failing.
//!
//! pest stops at the first error, so recovery is built around it: a file is
//! split into top-level items (a line starting with an item keyword starts an
//! item), each item is parsed alone, and an item that fails becomes
//! [`Item::Error`] with one diagnostic while the rest of the file still parses.

use std::cell::{Cell, RefCell};
use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::{LazyLock, Once};

use foldhash::HashMap;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser;

use super::ast::*;
use super::scan;
use super::shift::{Delta, Shift};
use crate::diag::{Code, Diagnostic, FileId, Span};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/steward.pest"]
struct StewardParser;

/// Whether `text` is a name the grammar accepts for a type, field, message,
/// action, function or `let` (a reserved word is not).
pub fn is_name(text: &str) -> bool {
    matches_whole(Rule::ident, text)
}

/// Whether `text` is a valid event type name, such as `reservation.created`.
pub fn is_event_name(text: &str) -> bool {
    matches_whole(Rule::event_name, text)
}

fn matches_whole(rule: Rule, text: &str) -> bool {
    StewardParser::parse(rule, text)
        .is_ok_and(|mut pairs| pairs.next().is_some_and(|p| p.as_str().len() == text.len()))
}

/// How deeply expressions may nest (parentheses, operators, calls) before the
/// parser refuses, so no later recursive pass can exhaust the stack.
pub const MAX_DEPTH: u32 = 200;

/// How deeply blocks (`if ... then`, `after ... do`, ...) may nest in one item.
pub const MAX_BLOCK_DEPTH: u32 = 64;

/// The budget of grammar rule calls for one item, against runaway input.
const CALL_LIMIT: usize = 5_000_000;

/// Held while pest's error detail is switched on (see `parse`).
static DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn configure_pest() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        pest::set_call_limit(NonZeroUsize::new(CALL_LIMIT));
    });
}

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    use Assoc::*;
    PrattParser::new()
        .op(Op::infix(Rule::or_op, Left))
        .op(Op::infix(Rule::and_op, Left))
        .op(Op::prefix(Rule::not_op))
        .op(Op::infix(Rule::eq_op, Left)
            | Op::infix(Rule::ne_op, Left)
            | Op::infix(Rule::lt_op, Left)
            | Op::infix(Rule::le_op, Left)
            | Op::infix(Rule::gt_op, Left)
            | Op::infix(Rule::ge_op, Left)
            | Op::infix(Rule::in_op, Left)
            | Op::infix(Rule::not_in_op, Left)
            | Op::infix(Rule::contains_op, Left)
            | Op::infix(Rule::starts_with_op, Left)
            | Op::infix(Rule::ends_with_op, Left)
            | Op::infix(Rule::matches_op, Left))
        .op(Op::infix(Rule::coalesce_op, Right))
        .op(Op::infix(Rule::add_op, Left) | Op::infix(Rule::sub_op, Left))
        .op(Op::infix(Rule::mul_op, Left)
            | Op::infix(Rule::div_op, Left)
            | Op::infix(Rule::rem_op, Left))
        .op(Op::prefix(Rule::neg_op))
        .op(Op::postfix(Rule::field_access) | Op::postfix(Rule::changed_op))
});

/// Parses one file. Always returns a tree; problems come back as diagnostics.
pub fn parse(file: FileId, src: &str) -> (SourceFile, Vec<Diagnostic>) {
    parse_reusing(file, src, &mut Reuse::default())
}

/// The items of one file's last parse, by their text, so that parsing the
/// file again after an edit parses only the items whose text changed; the
/// others are moved to their new places ([`super::shift`]). An item parses
/// the same wherever it is in its file, so its text decides its tree. Items
/// that failed to parse are not kept: their message may name what follows
/// them ("`rule` starts the next item").
#[derive(Debug, Default)]
pub struct Reuse {
    items: HashMap<Box<str>, Parsed>,
}

/// What one item's text parsed to, at `base`.
#[derive(Clone, Debug)]
struct Parsed {
    base: u32,
    item: Item,
    keywords: Vec<Span>,
    diags: Vec<Diagnostic>,
}

impl Parsed {
    fn moved_to(mut self, base: u32) -> Parsed {
        let by = Delta::between(self.base, base);
        if !by.is_zero() {
            self.item.shift(by);
            self.keywords.shift(by);
            self.diags.shift(by);
            self.base = base;
        }
        self
    }
}

/// [`parse`], reusing the items of the file's previous parse that `reuse`
/// holds, which afterwards holds this parse's. `reuse` must only ever see
/// one file (one `file` id).
pub fn parse_reusing(file: FileId, src: &str, reuse: &mut Reuse) -> (SourceFile, Vec<Diagnostic>) {
    configure_pest();
    // A lone `\r` is a line break, as for `diag::LineIndex` and editors.
    // Replacing it by `\n` keeps every byte offset.
    let normalized = scan::lone_cr_as_lf(src);
    // A byte-order mark (some editors write one) is white space: three
    // spaces keep every byte offset.
    let normalized = match normalized.strip_prefix('\u{feff}') {
        Some(rest) => std::borrow::Cow::Owned(format!("   {rest}")),
        None => normalized,
    };
    let src: &str = &normalized;
    let mut out = SourceFile {
        comments: scan::comments(src),
        ..SourceFile::default()
    };
    let mut diags = Vec::new();
    let mut previous = std::mem::take(&mut reuse.items);
    for range in scan::split_items(src) {
        let chunk = src.get(range.clone()).unwrap_or("");
        let base = range.start as u32;
        let (key, parsed) = match previous.remove_entry(chunk) {
            Some((key, before)) => (key, before.moved_to(base)),
            None => (chunk.into(), parse_item(file, src, range)),
        };
        out.keywords.extend_from_slice(&parsed.keywords);
        if matches!(parsed.item, Item::Error(_)) {
            out.items.push(parsed.item);
            diags.extend(parsed.diags);
        } else {
            out.items.push(parsed.item.clone());
            diags.extend(parsed.diags.iter().cloned());
            reuse.items.insert(key, parsed);
        }
    }
    (out, diags)
}

/// Parses the item at `range` of `src`.
fn parse_item(file: FileId, src: &str, range: Range<usize>) -> Parsed {
    let chunk = src.get(range.clone()).unwrap_or("");
    let base = range.start as u32;
    let mut parsed = Parsed {
        base,
        item: Item::Error(scan::trimmed_span(src, range.clone())),
        keywords: Vec::new(),
        diags: Vec::new(),
    };
    let (blocks, brackets) = scan::nesting(chunk);
    if blocks > MAX_BLOCK_DEPTH || brackets > MAX_DEPTH {
        let span = scan::trimmed_span(src, range);
        let (what, limit) = if blocks > MAX_BLOCK_DEPTH {
            ("blocks", MAX_BLOCK_DEPTH)
        } else {
            ("brackets (types, lists, calls, parentheses)", MAX_DEPTH)
        };
        parsed.diags.push(
            Diagnostic::new(
                Code::Syntax,
                file,
                Span::new(span.start as usize, span.start as usize),
                format!("this item nests {what} more than {limit} levels deep"),
            )
            .with_label("in this item")
            .with_help("split it into smaller rules or functions, or long expressions into `let`s"),
        );
        return parsed;
    }
    match StewardParser::parse(Rule::item_only, chunk) {
        Ok(mut pairs) => {
            // `item_only` always yields its pair holding one item; were it
            // not so, the item is broken rather than the process.
            let Some(root) = pairs.next() else {
                return parsed;
            };
            for p in root.clone().into_inner().flatten() {
                if is_keyword(p.as_rule()) {
                    parsed.keywords.push(span_of(base, &p));
                }
            }
            let builder = Builder {
                file,
                base,
                diags: RefCell::new(Vec::new()),
                depth: Cell::new(0),
                unnegated: RefCell::new(Vec::new()),
            };
            let Some(item) = root.into_inner().find(|p| p.as_rule() != Rule::EOI) else {
                return parsed;
            };
            match builder.item(item) {
                Ok(item) => parsed.item = item,
                Err(diag) => parsed.diags.push(*diag),
            }
            for span in builder.unnegated.take() {
                builder.invalid_literal(span, format!("`{I64_MIN_DIGITS}` is too large for an `int`"), "an `int` holds values up to 9223372036854775807 (and down to -9223372036854775808); use a `decimal` literal such as `1.0` for larger amounts");
            }
            parsed.diags.extend(builder.diags.into_inner());
        }
        Err(first) => {
            // Tracking what was expected slows parsing several times over, so
            // only an item that failed is parsed again with it. pest's switch
            // is process-wide and read when a parse starts: the lock keeps
            // another thread's reparse from turning it off under this one,
            // so the message never depends on what other threads do.
            let err = {
                let _detail = DETAIL
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                pest::set_error_detail(true);
                let again = StewardParser::parse(Rule::item_only, chunk);
                pest::set_error_detail(false);
                again.err().unwrap_or(first)
            };
            parsed
                .diags
                .push(syntax_error(file, src, base, chunk, &err));
        }
    }
    parsed
}

/// The pair's span in the file. pest leaves the whitespace and comments it
/// skipped before a failed trailing optional inside a pair; they are cut off.
fn span_of(base: u32, pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    let text = s.as_str();
    let len = match text.as_bytes().last() {
        Some(b) if b.is_ascii_whitespace() || text.contains('#') => {
            scan::trim_trailing_trivia(text)
        }
        _ => text.len(),
    };
    Span {
        start: base + s.start() as u32,
        end: base + (s.start() + len) as u32,
    }
}

fn is_keyword(rule: Rule) -> bool {
    use Rule::*;
    matches!(
        rule,
        kw_action
            | kw_expect
            | kw_given
            | kw_key
            | kw_test
            | kw_wait
            | kw_partial
            | kw_until
            | kw_approve
            | kw_reject
            | kw_nothing
            | kw_no
            | kw_after
            | kw_and
            | kw_approval
            | kw_at
            | kw_by
            | kw_changed
            | kw_contains
            | kw_count
            | kw_create
            | kw_do
            | kw_due
            | kw_else
            | kw_emit
            | kw_end
            | kw_ends_with
            | kw_event
            | kw_every
            | kw_extern
            | kw_false
            | kw_fn
            | kw_for
            | kw_from
            | kw_if
            | kw_in
            | kw_late
            | kw_let
            | kw_log
            | kw_matches
            | kw_message
            | kw_none
            | kw_not
            | kw_notify
            | kw_on
            | kw_or
            | kw_per
            | kw_previous
            | kw_priority
            | kw_require
            | kw_rhai
            | kw_role
            | kw_rule
            | kw_send
            | kw_since
            | kw_skip
            | kw_starts_with
            | kw_stop
            | kw_task
            | kw_then
            | kw_throttle
            | kw_to
            | kw_true
            | kw_type
            | kw_unless
            | kw_via
            | kw_webhook
            | kw_with
            | kw_header
            | kw_secret
            | kw_when
            | kw_within
    )
}

/// What a grammar rule is called in a message, or `None` to leave it out.
fn describe_rule(rule: Rule) -> Option<&'static str> {
    use Rule::*;
    Some(match rule {
        expr | primary | if_expr | paren_expr | list_lit | call | name | true_lit | false_lit
        | none_lit | prefix_op | not_op | neg_op => "an expression",
        int_lit | decimal_lit => "a number",
        duration_lit => "a duration such as `30m`",
        date_lit | datetime_lit => "a date",
        ident | named_type => "a name",
        field_name => "a field name",
        event_name => "an event name such as `reservation.created`",
        type_expr | union_type | list_type | paren_type => "a type",
        string | plain_string | interp_string | raw_string => "a string",
        block | statement | let_stmt | if_stmt | send_stmt | notify_stmt | task_stmt
        | emit_stmt | log_stmt | after_stmt | at_stmt | every_stmt | approval_stmt | stop_stmt
        | call_stmt => "a statement",
        item | type_decl | event_decl | message_decl | action_decl | fn_decl | extern_fn_decl
        | rule_decl | short_rule => "a declaration or a rule",
        when_trigger | quiet_trigger => "`when`",
        quiet_since => "`since`",
        quiet_until => "`until`",
        every_trigger => "`every`",
        throttle_clause => "`throttle`",
        count_clause => "`count`",
        priority_clause => "`priority`",
        unless_rule_clause => "`unless`",
        changed_op => "an operator",
        previous_expr | count_expr | field_path | operand => "an expression",
        condition_clause => "`if`",
        record_lit => "`{`",
        params => "`(`",
        webhook_headers => "`with`",
        webhook_header => "`header`",
        secret_ref => "`secret`",
        field_decl => "a field",
        message_field => "a message field such as `subject:`",
        role => "`role`",
        unless_clause => "`unless`",
        skip_late => "`skip if late`",
        EOI => "the end of the item",
        _ => return None,
    })
}

/// The rewrite of a calendar amount written as a duration, with the span it
/// replaces: `install_date + 1y * life` is `add_years(install_date, life)`,
/// `check_out - 6mo` is `add_months(check_out, -6)`, `after 1mo` is `at
/// add_months(now(), 1)`. `None` when the text around it is not one of
/// these shapes.
fn calendar_rewrite(
    src: &str,
    item_start: usize,
    at: usize,
    token: &str,
    count: &str,
    years: bool,
) -> Option<(Span, String)> {
    static OPERAND: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
        regex::Regex::new(r"(\d{4}-\d{2}-\d{2}|[A-Za-z_][\w.]*(?:\(\))?)\s*([+-])\s*$").ok()
    });
    static FACTOR: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(r"^\s*\*\s*([A-Za-z_][\w.]*|\d+)").ok());
    let line_start = src
        .get(item_start..at)?
        .rfind('\n')
        .map_or(item_start, |i| item_start + i + 1);
    let before = src.get(line_start..at)?;
    let after = at + token.len();
    let line_end = src
        .get(after..)?
        .find('\n')
        .map_or(src.len(), |i| after + i);
    let factor = FACTOR.as_ref()?.captures(src.get(after..line_end)?);
    let end = after
        + factor
            .as_ref()
            .and_then(|f| f.get(0))
            .map_or(0, |m| m.end());
    let function = if years { "add_years" } else { "add_months" };
    let amount = |negative: bool| {
        let n = match factor.as_ref().and_then(|f| f.get(1)) {
            Some(f) if count == "1" => f.as_str().to_string(),
            Some(f) if negative => format!("({count} * {})", f.as_str()),
            Some(f) => format!("{count} * {}", f.as_str()),
            None => count.to_string(),
        };
        if negative {
            format!("-{n}")
        } else {
            n
        }
    };
    if let Some(c) = OPERAND.as_ref()?.captures(before) {
        let (operand, sign) = (c.get(1)?, c.get(2)?);
        let rewrite = format!(
            "{function}({}, {})",
            operand.as_str(),
            amount(sign.as_str() == "-")
        );
        return Some((Span::new(line_start + operand.start(), end), rewrite));
    }
    // `after 1mo do`: a timer at that date.
    let trimmed = before.trim_end();
    if trimmed.ends_with("after") {
        let start = line_start + trimmed.len() - "after".len();
        let rewrite = format!("at {function}(now(), {})", amount(false));
        return Some((Span::new(start, end), rewrite));
    }
    None
}

/// Where a parse error is: the item's text (`chunk`, at `base` in `src`)
/// and the error's position in it (`pos`; `abs` in `src`).
struct ErrorAt<'s> {
    file: FileId,
    src: &'s str,
    base: usize,
    chunk: &'s str,
    pos: usize,
    abs: usize,
}

/// The diagnostic for a parse error in an item: a known mistake explained,
/// else what was expected and what was found instead.
fn syntax_error(
    file: FileId,
    src: &str,
    base: u32,
    chunk: &str,
    err: &pest::error::Error<Rule>,
) -> Diagnostic {
    let pos = match err.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let at = ErrorAt {
        file,
        src,
        base: base as usize,
        chunk,
        pos,
        abs: base as usize + pos,
    };
    if let Some(diag) = at.too_complex(err) {
        return diag;
    }
    if let Some(diag) = at.open_string() {
        return diag;
    }
    if let Some(diag) = at.whom_missing() {
        return diag;
    }
    if let Some(diag) = at.notify_text_only() {
        return diag;
    }
    let token = at.token();
    if let Some(diag) = at.not_a_duration(token) {
        return diag;
    }
    let expected = expected_list(err);
    if let Some(diag) = at.reserved_word(token, &expected) {
        return diag;
    }
    at.unexpected(err, &expected)
}

impl<'s> ErrorAt<'s> {
    /// The text of the item before the error, without trailing space.
    fn before(&self) -> &'s str {
        self.src.get(self.base..self.abs).unwrap_or("").trim_end()
    }

    /// The token the error is at.
    fn token(&self) -> &'s str {
        let (src, abs) = (self.src, self.abs);
        src.get(
            abs..abs + scan::token_len(src.get(abs..self.base + self.chunk.len()).unwrap_or("")),
        )
        .unwrap_or("")
    }

    /// An item past pest's limits: too deeply nested to parse.
    fn too_complex(&self, err: &pest::error::Error<Rule>) -> Option<Diagnostic> {
        let pest::error::ErrorVariant::CustomError { message } = &err.variant else {
            return None;
        };
        if !message.contains("limit reached") {
            return None;
        }
        let span = Span::new(self.base, self.base + self.chunk.trim_end().len());
        Some(
            Diagnostic::new(
                Code::Syntax,
                self.file,
                span,
                "this item is too complex to parse",
            )
            .with_help("split it into smaller rules, or long expressions into `let`s"),
        )
    }

    /// An open string at the end of a line.
    fn open_string(&self) -> Option<Diagnostic> {
        let src = self.src;
        let start = scan::open_string_at(src, self.abs)?;
        let line_end = src
            .get(start..)
            .unwrap_or("")
            .find('\n')
            .map_or(src.len(), |i| start + i);
        Some(Diagnostic::new(Code::UnterminatedString, self.file, Span::new(start, line_end), "unterminated string")
            .with_label("this string is never closed")
            .with_help("close it with `\"` on the same line; strings cannot span lines (write `\\n` for a line break)"))
    }

    /// `notify` or a task's `for` with nothing that says whom.
    fn whom_missing(&self) -> Option<Diagnostic> {
        let (src, abs) = (self.src, self.abs);
        let before = self.before();
        let after_word = |kw: &str| {
            before.ends_with(kw)
                && !before
                    .get(..before.len() - kw.len())
                    .unwrap_or("")
                    .ends_with(|c: char| c.is_alphanumeric() || c == '_')
        };
        if !after_word("notify") && !after_word("for") {
            return None;
        }
        // The word found instead (at the end of the file: nothing, so an
        // empty span there).
        let len = scan::token_len(src.get(abs..self.base + self.chunk.len()).unwrap_or(""));
        let what = if after_word("notify") {
            "`notify` is followed by whom and the text, as in `notify role owner \"...\"` or `notify owner_email \"...\"`"
        } else {
            "a task is for a role or a person, as in `create task \"...\" for role cleaner` or `for owner_id`"
        };
        Some(Diagnostic::new(Code::Syntax, self.file, Span::new(abs, abs + len), what)
            .with_label("expected whom here")
            .with_help("write `role NAME` for everyone with a role, or an expression holding a user id or an e-mail address (`user owner_id`, `guest.email`)"))
    }

    /// `notify "text"`: the text, and nobody to tell.
    fn notify_text_only(&self) -> Option<Diagnostic> {
        let before = self.before();
        let at = before.rfind("notify")?;
        let rest = before.get(at + "notify".len()..).unwrap_or("").trim();
        let quotes = rest
            .matches('"')
            .count()
            .saturating_sub(rest.matches("\\\"").count());
        let word_start = at == 0
            || !before
                .get(..at)
                .unwrap_or("")
                .ends_with(|c: char| c.is_alphanumeric() || c == '_');
        if !(word_start
            && rest.len() >= 2
            && rest.starts_with('"')
            && rest.ends_with('"')
            && quotes == 2)
        {
            return None;
        }
        let start = self.base + at;
        let end = start + before.get(at..).unwrap_or("").len();
        Some(Diagnostic::new(Code::Syntax, self.file, Span::new(start, end), "`notify` is followed by whom, then the text")
            .with_label("nobody to notify")
            .with_help(format!(
                "write the role or the person before the text: `notify role owner {rest}`, or `notify owner_email {rest}` for the address in a field"
            )))
    }

    /// `1y`, `6mo`, `3 days`: a number with a unit that is not a duration's.
    fn not_a_duration(&self, token: &str) -> Option<Diagnostic> {
        let abs = self.abs;
        let digits = token.bytes().take_while(u8::is_ascii_digit).count();
        if !(digits > 0
            && digits < token.len()
            && token
                .get(digits..)
                .unwrap_or("")
                .bytes()
                .all(|b| b.is_ascii_alphabetic()))
        {
            return None;
        }
        let unit = token.get(digits..).unwrap_or("");
        let years = matches!(unit, "y" | "yr" | "yrs" | "year" | "years");
        let months = years || matches!(unit, "mo" | "mon" | "month" | "months");
        let diag = Diagnostic::new(
            Code::Syntax,
            self.file,
            Span::new(abs, abs + token.len()),
            format!("`{token}` is not a duration: the units are `ms`, `s`, `m`, `h`, `d` and `w`"),
        )
        .with_label("unknown unit");
        if !months {
            return Some(diag.with_help(
                "write a number and a unit with nothing between, such as `90m`, `2h30m` or `7d`",
            ));
        }
        Some(match calendar_rewrite(self.src, self.base, abs, token, token.get(..digits).unwrap_or(""), years) {
            Some((span, rewrite)) => diag
                .with_help(format!(
                    "months and years have no fixed length, so they are not durations: write `{rewrite}` (the same day of the month, or its last day when shorter)"
                ))
                .with_fix(format!("write `{rewrite}`"), span, rewrite),
            None => diag.with_help(format!(
                "months and years have no fixed length, so they are not durations: use `{}(date, {})` for a date or a time that many {} on",
                if years { "add_years" } else { "add_months" },
                token.get(..digits).unwrap_or(""),
                if years { "years" } else { "months" },
            )),
        })
    }

    /// A reserved word where a name goes: a field called `type` is still
    /// read as `event.type`.
    fn reserved_word(&self, token: &str, expected: &[String]) -> Option<Diagnostic> {
        if !(RESERVED.contains(&token)
            && expected
                .iter()
                .any(|e| e == "a name" || e == "an expression"))
        {
            return None;
        }
        let help = if expected.iter().any(|e| e == "an expression") {
            format!("a field called `{token}` is read as `event.{token}`; the event's own type, id and time are `envelope.type`, `envelope.id` and `envelope.occurred_at`")
        } else {
            format!("`{token}` cannot name a parameter, `let` or function; choose another name")
        };
        Some(
            Diagnostic::new(
                Code::Syntax,
                self.file,
                Span::new(self.abs, self.abs + token.len()),
                format!("`{token}` is a reserved word"),
            )
            .with_label("reserved")
            .with_help(help),
        )
    }

    /// Any other error: what was expected, and what was found instead.
    fn unexpected(&self, err: &pest::error::Error<Rule>, expected: &[String]) -> Diagnostic {
        let (src, base, chunk, abs) = (self.src, self.base, self.chunk, self.abs);
        let rest = src.get(abs..base + chunk.len()).unwrap_or("");
        let trimmed = scan::skip_trivia(rest);
        let (span, found) = if trimmed.is_empty() {
            // Nothing more in this item: point just after the last token.
            let end = base + scan::end_of_code(chunk, self.pos);
            let next = scan::first_word(src.get(base + chunk.len()..).unwrap_or(""));
            let found = match next {
                Some(word) => format!("`{word}` starts the next item"),
                None => "the file ends".to_string(),
            };
            (Span::new(end, end), found)
        } else {
            let len = scan::token_len(rest);
            (
                Span::new(abs, abs + len),
                format!("found `{}`", rest.get(..len).unwrap_or("")),
            )
        };

        let message = match expected {
            [] => format!("unexpected input: {found}"),
            [one] => format!("expected {one}, but {found}"),
            [init @ .., last] => format!("expected {} or {last}, but {found}", init.join(", ")),
        };
        let mut diag = Diagnostic::new(Code::Syntax, self.file, span, message);
        if let Some(help) = syntax_help(&expected_summary(err), src.get(abs..).unwrap_or("")) {
            diag = diag.with_help(help);
        }
        diag
    }
}

/// The literal tokens pest expected; character ranges and built-in rules are
/// left out (pest prints those as `a..z` and `BUILTIN_RULE`).
fn literal_tokens(err: &pest::error::Error<Rule>) -> Vec<String> {
    let Some(attempts) = err.parse_attempts() else {
        return Vec::new();
    };
    attempts
        .expected_tokens()
        .into_iter()
        .map(|t| t.to_string())
        .filter(|t| t != "BUILTIN_RULE" && !(t.len() > 2 && t.contains("..")))
        .collect()
}

/// Reserved words people reach for as names of fields and parameters (the
/// rest of the grammar's `keyword`s read as the structure they are).
const RESERVED: &[&str] = &[
    "action", "at", "every", "message", "rule", "type", "unless", "when",
];

const STATEMENT_TOKENS: &[&str] = &[
    "let", "if", "send", "notify", "create", "emit", "log", "after", "at", "every", "require",
    "stop",
];
const EXPRESSION_TOKENS: &[&str] = &[
    "(", "[", "true", "false", "none", "not", "-", "\"", "r\"", "previous",
];
/// Tokens that close or continue a construct: the likeliest thing missing.
const CLOSERS: &[&str] = &[
    "end", "then", "do", "else", ")", "]", "}", ">", ":", "=", ",", "->", "per", "for", "on",
];

/// What the parser expected at the failure, most useful first: closing
/// keywords, then kinds of things ("a statement"), then other tokens.
fn expected_list(err: &pest::error::Error<Rule>) -> Vec<String> {
    let tokens = literal_tokens(err);
    let mut statement = false;
    let mut expression = false;
    let mut operator = false;
    let mut closers = Vec::new();
    let mut others = Vec::new();
    for token in &tokens {
        let t = token.as_str();
        if t.trim().is_empty() || t == "#" {
            continue;
        }
        if STATEMENT_TOKENS.contains(&t) && tokens.iter().any(|x| x == "send") {
            statement = true;
        } else if (EXPRESSION_TOKENS.contains(&t) && t != "\"")
            || (matches!(t, "if" | "count" | "\"") && tokens.iter().any(|x| x == "true"))
        {
            expression = true;
        } else if t == "\"" {
            // A string alone (a plain string's place): not an expression.
            others.push("a string".to_string());
        } else if is_operator_token(t) {
            operator = true;
        } else if CLOSERS.contains(&t) {
            closers.push(format!("`{t}`"));
        } else if t != "_" && !t.chars().all(|c| c.is_ascii_digit()) {
            others.push(format!("`{t}`"));
        }
    }
    closers.sort_by_key(|c| CLOSERS.iter().position(|k| format!("`{k}`") == *c));
    let mut out = closers;
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &err.variant {
        for rule in positives {
            match describe_rule(*rule) {
                Some("a statement") => statement = true,
                Some("an expression") => expression = true,
                Some(d) if !out.iter().any(|o| o == d) => out.push(d.to_string()),
                Some(_) => {}
                None => {}
            }
        }
    }
    if statement || expression {
        // "an expression" or "a statement" already covers these.
        const COVERED: &[&str] = &[
            "a name",
            "a number",
            "a duration such as `30m`",
            "a date",
            "a string",
        ];
        out.retain(|o| !COVERED.contains(&o.as_str()));
    }
    if operator {
        out.push("an operator".into());
    }
    if statement {
        out.push("a statement".into());
    }
    if expression {
        out.push("an expression".into());
    }
    for o in others {
        if !out.contains(&o) {
            out.push(o);
        }
    }
    out.truncate(6);
    out
}

fn is_operator_token(token: &str) -> bool {
    matches!(
        token,
        "or" | "and"
            | "changed"
            | "??"
            | "=="
            | "!="
            | "<"
            | "<="
            | ">"
            | ">="
            | "in"
            | "not"
            | "contains"
            | "starts_with"
            | "ends_with"
            | "matches"
            | "+"
            | "-"
            | "*"
            | "/"
            | "%"
            | "."
    )
}

fn expected_summary(err: &pest::error::Error<Rule>) -> Vec<String> {
    literal_tokens(err)
}

/// Help for the half-typed forms people write most often.
fn syntax_help(expected: &[String], rest: &str) -> Option<String> {
    let has = |t: &str| expected.iter().any(|e| e == t);
    let word = scan::first_word(rest).unwrap_or_default();
    if word == "=" && has("==") {
        return Some("compare with `==`; a single `=` only appears in `let` and `fn`".into());
    }
    if (word == "&&" || rest.starts_with("&&")) && has("and") {
        return Some("write `and` instead of `&&`".into());
    }
    if rest.starts_with("||") && has("or") {
        return Some("write `or` instead of `||`".into());
    }
    if rest.starts_with('!') && !rest.starts_with("!=") {
        return Some("write `not` instead of `!`".into());
    }
    if rest.starts_with('\'') {
        return Some("strings use double quotes: `\"...\"`".into());
    }
    if has("end") {
        return Some(
            "blocks opened by `rule`, `if ... then`, `do` and `require approval` close with `end`"
                .into(),
        );
    }
    if has("then") {
        return Some("a condition is followed by `then` and the actions".into());
    }
    None
}

/// Turns pest pairs into the syntax tree, with spans shifted by `base` (the
/// item's offset in its file).
struct Builder {
    file: FileId,
    base: u32,
    diags: RefCell<Vec<Diagnostic>>,
    depth: Cell<u32>,
    /// Literals `9223372036854775808` not (yet) under a minus.
    unnegated: RefCell<Vec<Span>>,
}

/// The digits of `-i64::MIN`, an `int` literal only when negated.
const I64_MIN_DIGITS: &str = "9223372036854775808";

type Built<T> = Result<T, Box<Diagnostic>>;

/// The pairs under `pair`, keywords left out.
fn kids<'i>(pair: &Pair<'i, Rule>) -> impl Iterator<Item = Pair<'i, Rule>> {
    pair.clone()
        .into_inner()
        .filter(|p| !is_keyword(p.as_rule()))
}

impl Builder {
    fn span(&self, pair: &Pair<Rule>) -> Span {
        span_of(self.base, pair)
    }

    /// The error for a parse tree of a shape the lowering does not expect
    /// at `pair`: the item becomes [`Item::Error`] rather than a panic.
    fn shape_error(&self, pair: &Pair<Rule>) -> Box<Diagnostic> {
        Box::new(Diagnostic::new(
            Code::Syntax,
            self.file,
            self.span(pair),
            format!(
                "this item's syntax could not be read (an unexpected `{:?}` shape); please report it",
                pair.as_rule()
            ),
        ))
    }

    /// `next`, a part of `within` the grammar guarantees; when the tree lacks
    /// it, the shape error for `within`.
    fn part<'i>(&self, next: Option<Pair<'i, Rule>>, within: &Pair<Rule>) -> Built<Pair<'i, Rule>> {
        next.ok_or_else(|| self.shape_error(within))
    }

    fn report(&self, diag: Diagnostic) {
        self.diags.borrow_mut().push(diag);
    }

    fn name(&self, pair: Pair<Rule>) -> Name {
        Name {
            text: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn item(&self, pair: Pair<Rule>) -> Built<Item> {
        let span = self.span(&pair);
        Ok(match pair.as_rule() {
            Rule::type_decl => {
                let mut it = kids(&pair);
                let name = self.name(self.part(it.next(), &pair)?);
                Item::Type(TypeDecl {
                    span,
                    name,
                    fields: it.map(|f| self.field_decl(f)).collect::<Built<_>>()?,
                })
            }
            Rule::event_decl => {
                let mut it = kids(&pair);
                let name = self.name(self.part(it.next(), &pair)?);
                Item::Event(EventDecl {
                    span,
                    name,
                    fields: it.map(|f| self.field_decl(f)).collect::<Built<_>>()?,
                })
            }
            Rule::message_decl => {
                let mut it = kids(&pair);
                let name = self.name(self.part(it.next(), &pair)?);
                let mut fields = Vec::new();
                for f in it {
                    let fspan = self.span(&f);
                    let mut fi = kids(&f);
                    let fname = self.name(self.part(fi.next(), &f)?);
                    fields.push(MessageField {
                        span: fspan,
                        name: fname,
                        value: self.expr(self.part(fi.next(), &f)?)?,
                    });
                }
                Item::Message(MessageDecl { span, name, fields })
            }
            Rule::action_decl => {
                let mut it = kids(&pair);
                let name = self.name(self.part(it.next(), &pair)?);
                let params = self.params(self.part(it.next(), &pair)?)?;
                let rest = self.part(it.next(), &pair)?;
                let body = if rest.as_rule() == Rule::block {
                    ActionBody::Block(self.block(rest)?)
                } else {
                    let url = self.plain_string(rest);
                    let headers = match it.next() {
                        Some(headers) => kids(&headers).map(|h| self.webhook_header(h)).collect(),
                        None => Vec::new(),
                    };
                    ActionBody::Webhook(Webhook { url, headers })
                };
                Item::Action(ActionDecl {
                    span,
                    name,
                    params,
                    body,
                })
            }
            Rule::fn_decl => {
                let mut it = kids(&pair);
                let name = self.name(self.part(it.next(), &pair)?);
                let params = self.params(self.part(it.next(), &pair)?)?;
                let ret = self.type_expr(self.part(it.next(), &pair)?)?;
                let body = self.part(it.next(), &pair)?;
                let body = match body.as_rule() {
                    Rule::fn_body => {
                        FnBody::Expr(self.expr(self.part(kids(&body).next(), &body)?)?)
                    }
                    _ => FnBody::Rhai(self.plain_string(self.part(kids(&body).next(), &body)?)),
                };
                Item::Fn(FnDecl {
                    span,
                    name,
                    params,
                    ret,
                    body,
                })
            }
            Rule::extern_fn_decl => {
                let mut it = kids(&pair).peekable();
                let name = self.name(self.part(it.next(), &pair)?);
                let type_params = match it.peek().map(|p| p.as_rule()) {
                    Some(Rule::type_params) => kids(&self.part(it.next(), &pair)?)
                        .map(|p| self.name(p))
                        .collect(),
                    _ => Vec::new(),
                };
                let params = self.params(self.part(it.next(), &pair)?)?;
                let ret = self.type_expr(self.part(it.next(), &pair)?)?;
                Item::ExternFn(ExternFnDecl {
                    span,
                    name,
                    type_params,
                    params,
                    ret,
                })
            }
            Rule::rule_decl | Rule::short_rule => Item::Rule(self.rule(pair)?),
            Rule::test_decl => Item::Test(self.test(pair)?),
            _ => return Err(self.shape_error(&pair)),
        })
    }

    fn test(&self, pair: Pair<Rule>) -> Built<TestDecl> {
        let span = self.span(&pair);
        let mut it = kids(&pair);
        let name = self.plain_string(self.part(it.next(), &pair)?);
        let mut steps = Vec::new();
        for step in it {
            let sspan = self.span(&step);
            let rule = step.as_rule();
            let mut parts = kids(&step).peekable();
            let kind = match rule {
                Rule::given_step => {
                    let partial = parts
                        .next_if(|p| p.as_rule() == Rule::partial_mark)
                        .is_some();
                    let event = self.name(self.part(parts.next(), &step)?);
                    let next = self.part(parts.next(), &step)?;
                    let (key, record) = if next.as_rule() == Rule::expr {
                        (Some(self.expr(next)?), self.part(parts.next(), &step)?)
                    } else {
                        (None, next)
                    };
                    TestStepKind::Given {
                        partial,
                        event,
                        key,
                        payload: self.test_record(record)?,
                    }
                }
                Rule::wait_step => {
                    let until = parts.next_if(|p| p.as_rule() == Rule::until_mark).is_some();
                    TestStepKind::Wait {
                        until,
                        value: self.expr(self.part(parts.next(), &step)?)?,
                    }
                }
                Rule::decide_step => TestStepKind::Decide {
                    approve: self.part(parts.next(), &step)?.as_rule() == Rule::approve_mark,
                },
                Rule::expect_step => {
                    if parts
                        .next_if(|p| p.as_rule() == Rule::nothing_mark)
                        .is_some()
                    {
                        TestStepKind::ExpectNothing
                    } else {
                        let negated = parts.next_if(|p| p.as_rule() == Rule::no_mark).is_some();
                        let action = self.name(self.part(parts.next(), &step)?);
                        let target = parts
                            .next_if(|p| p.as_rule() == Rule::test_target)
                            .map(|p| self.part(kids(&p).next(), &p).map(|n| self.name(n)))
                            .transpose()?;
                        let args = parts.next().map(|r| self.test_record(r)).transpose()?;
                        TestStepKind::Expect {
                            negated,
                            action,
                            target,
                            args,
                        }
                    }
                }
                _ => return Err(self.shape_error(&step)),
            };
            steps.push(TestStep { span: sspan, kind });
        }
        Ok(TestDecl { span, name, steps })
    }

    fn test_record(&self, pair: Pair<Rule>) -> Built<TestRecord> {
        let span = self.span(&pair);
        let mut fields = Vec::new();
        for f in kids(&pair) {
            let fspan = self.span(&f);
            let mut fi = kids(&f);
            let name = self.name(self.part(fi.next(), &f)?);
            let value = self.part(fi.next(), &f)?;
            let value = if value.as_rule() == Rule::test_record {
                TestValue::Record(self.test_record(value)?)
            } else {
                TestValue::Expr(self.expr(value)?)
            };
            fields.push(TestField {
                span: fspan,
                name,
                value,
            });
        }
        Ok(TestRecord { span, fields })
    }

    fn field_decl(&self, pair: Pair<Rule>) -> Built<FieldDecl> {
        let span = self.span(&pair);
        let mut it = kids(&pair);
        let name = self.name(self.part(it.next(), &pair)?);
        Ok(FieldDecl {
            span,
            name,
            ty: self.type_expr(self.part(it.next(), &pair)?)?,
        })
    }

    fn params(&self, pair: Pair<Rule>) -> Built<Vec<Param>> {
        kids(&pair)
            .map(|p| {
                let span = self.span(&p);
                let mut it = kids(&p);
                let name = self.name(self.part(it.next(), &p)?);
                Ok(Param {
                    span,
                    name,
                    ty: self.type_expr(self.part(it.next(), &p)?)?,
                })
            })
            .collect()
    }

    fn type_expr(&self, pair: Pair<Rule>) -> Built<TypeExpr> {
        let span = self.span(&pair);
        let mut it = kids(&pair);
        let atom = self.part(it.next(), &pair)?;
        let optional = it.next().is_some();
        let kind = match atom.as_rule() {
            Rule::named_type => {
                TypeExprKind::Named(self.name(self.part(kids(&atom).next(), &atom)?))
            }
            Rule::list_type => TypeExprKind::List(Box::new(
                self.type_expr(self.part(kids(&atom).next(), &atom)?)?,
            )),
            Rule::paren_type => TypeExprKind::Paren(Box::new(
                self.type_expr(self.part(kids(&atom).next(), &atom)?)?,
            )),
            Rule::union_type => {
                TypeExprKind::Union(kids(&atom).map(|s| self.plain_string(s)).collect())
            }
            _ => return Err(self.shape_error(&atom)),
        };
        Ok(TypeExpr {
            span,
            kind,
            optional,
        })
    }

    /// `header "Authorization" = "Bearer " + secret pms_token`.
    fn webhook_header(&self, pair: Pair<Rule>) -> Header {
        let span = self.span(&pair);
        let mut name = None;
        let mut texts = Vec::new();
        let mut secret = None;
        for part in kids(&pair) {
            match part.as_rule() {
                Rule::plain_string if name.is_none() => name = Some(self.plain_string(part)),
                Rule::plain_string => texts.push(self.plain_string(part)),
                Rule::secret_ref => secret = kids(&part).next().map(|n| self.name(n)),
                _ => {}
            }
        }
        let name = name.unwrap_or(StrLit {
            value: String::new(),
            span,
        });
        let mut texts = texts.into_iter();
        let value = match secret {
            Some(secret) => HeaderValue::Secret {
                prefix: texts.next(),
                secret,
            },
            None => HeaderValue::Text(texts.next().unwrap_or(StrLit {
                value: String::new(),
                span,
            })),
        };
        Header { span, name, value }
    }

    fn plain_string(&self, pair: Pair<Rule>) -> StrLit {
        let span = self.span(&pair);
        let mut value = String::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::text => value.push_str(part.as_str()),
                Rule::escape => self.escape(&part, &mut value),
                _ => {}
            }
        }
        StrLit { value, span }
    }

    fn escape(&self, pair: &Pair<Rule>, out: &mut String) {
        let c = pair
            .as_str()
            .get(1..)
            .unwrap_or("")
            .chars()
            .next()
            .unwrap_or('\\');
        match c {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '"' | '\\' | '{' | '}' => out.push(c),
            _ => self.report(
                Diagnostic::new(Code::InvalidEscape, self.file, self.span(pair), format!("unknown escape `\\{c}`"))
                    .with_help(
                        "the escapes are `\\n`, `\\t`, `\\r`, `\\\"`, `\\\\`, `\\{` and `\\}`; for a regular expression use a raw string, `r\"...\"`",
                    ),
            ),
        }
    }

    fn rule(&self, pair: Pair<Rule>) -> Built<RuleDecl> {
        let span = self.span(&pair);
        let full = pair.as_rule() == Rule::rule_decl;
        let mut it = kids(&pair).peekable();
        let (mut name, mut title) = (None, None);
        if full {
            name = Some(self.name(self.part(it.next(), &pair)?));
            if it.peek().map(|p| p.as_rule()) == Some(Rule::plain_string) {
                title = Some(self.plain_string(self.part(it.next(), &pair)?));
            }
        }
        let trigger = self.trigger(self.part(it.next(), &pair)?)?;
        let mut clauses = Vec::new();
        let mut body = None;
        for p in it {
            let cspan = self.span(&p);
            match p.as_rule() {
                Rule::throttle_clause => {
                    let mut ci = kids(&p);
                    let count = self.expr(self.part(ci.next(), &p)?)?;
                    let per = self.expr(self.part(ci.next(), &p)?)?;
                    let by = ci.next().map(|e| self.expr(e)).transpose()?;
                    clauses.push(Clause::Throttle {
                        span: cspan,
                        count,
                        per,
                        by,
                    });
                }
                Rule::unless_rule_clause => clauses.push(Clause::Unless {
                    span: cspan,
                    cond: self.expr(self.part(kids(&p).next(), &p)?)?,
                }),
                Rule::priority_clause => clauses.push(Clause::Priority {
                    span: cspan,
                    value: self.expr(self.part(kids(&p).next(), &p)?)?,
                }),
                Rule::count_clause => {
                    let mut ci = kids(&p);
                    let count = self.expr(self.part(ci.next(), &p)?)?;
                    let within = self.expr(self.part(ci.next(), &p)?)?;
                    let by = ci.next().map(|e| self.expr(e)).transpose()?;
                    clauses.push(Clause::Count {
                        span: cspan,
                        count,
                        within,
                        by,
                    });
                }
                Rule::condition_clause => clauses.push(Clause::Condition {
                    span: cspan,
                    cond: self.expr(self.part(kids(&p).next(), &p)?)?,
                }),
                Rule::block => body = Some(self.block(p)?),
                _ => return Err(self.shape_error(&p)),
            }
        }
        Ok(RuleDecl {
            span,
            name,
            title,
            trigger,
            clauses,
            body: body.ok_or_else(|| self.shape_error(&pair))?,
        })
    }

    fn trigger(&self, pair: Pair<Rule>) -> Built<Trigger> {
        let span = self.span(&pair);
        Ok(match pair.as_rule() {
            Rule::when_trigger => Trigger::When {
                span,
                event: self.name(self.part(kids(&pair).next(), &pair)?),
            },
            Rule::quiet_trigger => {
                let mut it = kids(&pair);
                let event = self.name(self.part(it.next(), &pair)?);
                let field = self.name(self.part(it.next(), &pair)?);
                let period = self.expr(self.part(it.next(), &pair)?)?;
                let (mut since, mut until) = (None, None);
                for part in it {
                    let which = part.as_rule();
                    let mut names = kids(&part);
                    let since_or_until = self.name(self.part(names.next(), &part)?);
                    let pair = (since_or_until, self.name(self.part(names.next(), &part)?));
                    if which == Rule::quiet_since {
                        since = Some(pair);
                    } else {
                        until = Some(pair);
                    }
                }
                Trigger::Quiet(Box::new(Quiet {
                    span,
                    event,
                    field,
                    period,
                    since,
                    until,
                }))
            }
            _ => {
                let mut it = kids(&pair);
                let first = self.part(it.next(), &pair)?;
                let schedule = if first.as_rule() == Rule::duration_lit {
                    Schedule::Interval(self.primary(first)?)
                } else {
                    Schedule::Cron {
                        expr: self.plain_string(first),
                        zone: it.next().map(|z| self.plain_string(z)),
                    }
                };
                Trigger::Every { span, schedule }
            }
        })
    }

    fn block(&self, pair: Pair<Rule>) -> Built<Block> {
        let span = self.span(&pair);
        let stmts = kids(&pair)
            .map(|s| self.stmt(s))
            .collect::<Built<Vec<_>>>()?;
        Ok(Block { span, stmts })
    }

    fn role(&self, pair: Pair<Rule>) -> Built<Name> {
        Ok(self.name(self.part(kids(&pair).next(), &pair)?))
    }

    /// `role NAME`, `user EXPR` or `EXPR`: whom a notification or a task
    /// (`pair`) is for.
    fn assignee<'i>(
        &self,
        it: &mut std::iter::Peekable<impl Iterator<Item = Pair<'i, Rule>>>,
        pair: &Pair<Rule>,
    ) -> Built<Assignee> {
        let first = self.part(it.next(), pair)?;
        Ok(match first.as_rule() {
            Rule::role => Assignee::Role(self.role(first)?),
            Rule::user_mark => Assignee::Person {
                who: self.expr(self.part(it.next(), pair)?)?,
                user: true,
            },
            _ => Assignee::Person {
                who: self.expr(first)?,
                user: false,
            },
        })
    }

    fn stmt(&self, pair: Pair<Rule>) -> Built<Stmt> {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::let_stmt => self.let_stmt(pair)?,
            Rule::if_stmt => self.if_stmt(pair)?,
            Rule::stop_stmt => StmtKind::Stop,
            Rule::send_stmt => StmtKind::Send {
                message: self.name(self.part(kids(&pair).next(), &pair)?),
            },
            Rule::notify_stmt => self.notify_stmt(pair)?,
            Rule::task_stmt => self.task_stmt(pair)?,
            Rule::emit_stmt => self.emit_stmt(pair)?,
            Rule::log_stmt => StmtKind::Log {
                text: self.expr(self.part(kids(&pair).next(), &pair)?)?,
            },
            Rule::after_stmt | Rule::at_stmt | Rule::every_stmt => self.timer_stmt(pair)?,
            Rule::approval_stmt => self.approval_stmt(pair)?,
            Rule::call_stmt => self.call_stmt(pair)?,
            _ => return Err(self.shape_error(&pair)),
        };
        Ok(Stmt { span, kind })
    }

    /// `let name: type = value`.
    fn let_stmt(&self, pair: Pair<Rule>) -> Built<StmtKind> {
        let mut it = kids(&pair);
        let name = self.name(self.part(it.next(), &pair)?);
        let mut next = self.part(it.next(), &pair)?;
        let ty = if next.as_rule() == Rule::type_expr {
            let ty = self.type_expr(next)?;
            next = self.part(it.next(), &pair)?;
            Some(ty)
        } else {
            None
        };
        Ok(StmtKind::Let {
            name,
            ty,
            value: self.expr(next)?,
        })
    }

    /// `if c then ... else if c then ... else ... end`.
    fn if_stmt(&self, pair: Pair<Rule>) -> Built<StmtKind> {
        let mut it = kids(&pair);
        let cond = self.expr(self.part(it.next(), &pair)?)?;
        let then = self.block(self.part(it.next(), &pair)?)?;
        let mut branches = vec![(cond, then)];
        let mut otherwise = None;
        for p in it {
            if p.as_rule() == Rule::else_branch {
                let mut bi = kids(&p);
                let c = self.expr(self.part(bi.next(), &p)?)?;
                branches.push((c, self.block(self.part(bi.next(), &p)?)?));
            } else {
                otherwise = Some(self.block(p)?);
            }
        }
        Ok(StmtKind::If {
            branches,
            otherwise,
        })
    }

    /// `notify TO "text"`.
    fn notify_stmt(&self, pair: Pair<Rule>) -> Built<StmtKind> {
        let mut it = kids(&pair).peekable();
        let to = self.assignee(&mut it, &pair)?;
        Ok(StmtKind::Notify {
            to,
            text: self.expr(self.part(it.next(), &pair)?)?,
        })
    }

    /// `create task "title" for TO due WHEN`.
    fn task_stmt(&self, pair: Pair<Rule>) -> Built<StmtKind> {
        let mut it = kids(&pair).peekable();
        let title = self.expr(self.part(it.next(), &pair)?)?;
        let to = self.assignee(&mut it, &pair)?;
        let due = it.next().map(|e| self.expr(e)).transpose()?;
        Ok(StmtKind::CreateTask { title, to, due })
    }

    /// `emit event.type { field: value, ... }`.
    fn emit_stmt(&self, pair: Pair<Rule>) -> Built<StmtKind> {
        let mut it = kids(&pair);
        let event = self.name(self.part(it.next(), &pair)?);
        let record = self.part(it.next(), &pair)?;
        let record_span = self.span(&record);
        let mut fields = Vec::new();
        for f in kids(&record) {
            let fspan = self.span(&f);
            let mut fi = kids(&f);
            let name = self.name(self.part(fi.next(), &f)?);
            fields.push(RecordField {
                span: fspan,
                name,
                value: self.expr(self.part(fi.next(), &f)?)?,
            });
        }
        Ok(StmtKind::Emit {
            event,
            fields,
            record_span,
        })
    }

    /// `after DELAY`, `at TIME` or `every "CRON" in ZONE`, with its `unless`
    /// clauses, `skip if late`, and its block.
    fn timer_stmt(&self, pair: Pair<Rule>) -> Built<StmtKind> {
        let rule = pair.as_rule();
        let mut it = kids(&pair).peekable();
        let when = if rule == Rule::every_stmt {
            self.primary(self.part(it.next(), &pair)?)?
        } else {
            self.expr(self.part(it.next(), &pair)?)?
        };
        let zone = match it.peek().map(|p| p.as_rule()) {
            Some(Rule::every_zone) => {
                let z = self.part(it.next(), &pair)?;
                Some(self.expr(self.part(kids(&z).next(), &z)?)?)
            }
            _ => None,
        };
        let mut unless = Vec::new();
        let mut skip_late = false;
        for opt in kids(&self.part(it.next(), &pair)?) {
            if opt.as_rule() == Rule::unless_clause {
                let uspan = self.span(&opt);
                let mut ui = kids(&opt);
                let event = self.name(self.part(ui.next(), &opt)?);
                let field = self.name(self.part(ui.next(), &opt)?);
                unless.push(Unless {
                    span: uspan,
                    event,
                    field,
                });
            } else {
                skip_late = true;
            }
        }
        let kind = match rule {
            Rule::after_stmt => TimerKind::After,
            Rule::at_stmt => TimerKind::At,
            _ => TimerKind::Every,
        };
        Ok(StmtKind::Timer {
            kind,
            when,
            zone,
            unless,
            skip_late,
            body: self.block(self.part(it.next(), &pair)?)?,
        })
    }

    /// `require approval from R within D do ... else ... end`.
    fn approval_stmt(&self, pair: Pair<Rule>) -> Built<StmtKind> {
        let mut it = kids(&pair);
        let role = self.role(self.part(it.next(), &pair)?)?;
        let within = self.expr(self.part(it.next(), &pair)?)?;
        let body = self.block(self.part(it.next(), &pair)?)?;
        let otherwise = it.next().map(|b| self.block(b)).transpose()?;
        Ok(StmtKind::Approval {
            role,
            within,
            body,
            otherwise,
        })
    }

    /// `name(args)`: a call of an action.
    fn call_stmt(&self, pair: Pair<Rule>) -> Built<StmtKind> {
        let mut it = kids(&pair);
        let name = self.name(self.part(it.next(), &pair)?);
        Ok(StmtKind::Call {
            name,
            args: self.args(self.part(it.next(), &pair)?)?,
        })
    }

    fn args(&self, pair: Pair<Rule>) -> Built<Vec<Arg>> {
        kids(&pair)
            .map(|a| {
                let span = self.span(&a);
                let mut it = kids(&a);
                let first = self.part(it.next(), &a)?;
                Ok(match it.next() {
                    Some(value) => Arg {
                        span,
                        name: Some(self.name(first)),
                        value: self.expr(value)?,
                    },
                    None => Arg {
                        span,
                        name: None,
                        value: self.expr(first)?,
                    },
                })
            })
            .collect()
    }

    fn expr(&self, pair: Pair<Rule>) -> Built<Expr> {
        let operators = pair.clone().into_inner().count() as u32;
        let depth = self.depth.get() + 1 + operators / 2;
        if depth > MAX_DEPTH {
            return Err(Box::new(
                Diagnostic::new(
                    Code::Syntax,
                    self.file,
                    self.span(&pair),
                    "this expression is nested too deeply",
                )
                .with_help(format!(
                    "split it with `let`; expressions may nest at most {MAX_DEPTH} levels"
                )),
            ));
        }
        let saved = self.depth.replace(depth);
        let result = PRATT
            .map_primary(|p| self.primary(p))
            .map_prefix(|op, rhs| {
                let rhs = rhs?;
                let span = self.span(&op).to(rhs.span);
                let op = if op.as_rule() == Rule::not_op {
                    UnaryOp::Not
                } else {
                    UnaryOp::Neg
                };
                if op == UnaryOp::Neg && matches!(rhs.kind, ExprKind::Int(i64::MIN)) {
                    let mut unnegated = self.unnegated.borrow_mut();
                    if let Some(at) = unnegated.iter().position(|s| *s == rhs.span) {
                        unnegated.swap_remove(at);
                        return Ok(Expr {
                            span,
                            kind: ExprKind::Int(i64::MIN),
                        });
                    }
                }
                Ok(Expr {
                    span,
                    kind: ExprKind::Unary(op, Box::new(rhs)),
                })
            })
            .map_postfix(|lhs, op| {
                let lhs = lhs?;
                let span = lhs.span.to(self.span(&op));
                if op.as_rule() == Rule::changed_op {
                    let (mut from, mut to) = (None, None);
                    for part in kids(&op) {
                        let operand = self.part(kids(&part).next(), &part)?;
                        let value = Some(Box::new(self.expr(operand)?));
                        if part.as_rule() == Rule::changed_from {
                            from = value;
                        } else {
                            to = value;
                        }
                    }
                    return Ok(Expr {
                        span,
                        kind: ExprKind::Changed {
                            subject: Box::new(lhs),
                            from,
                            to,
                        },
                    });
                }
                let field = self.name(self.part(kids(&op).next(), &op)?);
                Ok(Expr {
                    span,
                    kind: ExprKind::Field(Box::new(lhs), field),
                })
            })
            .map_infix(|lhs, op, rhs| {
                let (lhs, rhs) = (lhs?, rhs?);
                let span = lhs.span.to(rhs.span);
                let op = match op.as_rule() {
                    Rule::or_op => BinaryOp::Or,
                    Rule::and_op => BinaryOp::And,
                    Rule::coalesce_op => BinaryOp::Coalesce,
                    Rule::eq_op => BinaryOp::Eq,
                    Rule::ne_op => BinaryOp::Ne,
                    Rule::lt_op => BinaryOp::Lt,
                    Rule::le_op => BinaryOp::Le,
                    Rule::gt_op => BinaryOp::Gt,
                    Rule::ge_op => BinaryOp::Ge,
                    Rule::in_op => BinaryOp::In,
                    Rule::not_in_op => BinaryOp::NotIn,
                    Rule::contains_op => BinaryOp::Contains,
                    Rule::starts_with_op => BinaryOp::StartsWith,
                    Rule::ends_with_op => BinaryOp::EndsWith,
                    Rule::matches_op => BinaryOp::Matches,
                    Rule::add_op => BinaryOp::Add,
                    Rule::sub_op => BinaryOp::Sub,
                    Rule::mul_op => BinaryOp::Mul,
                    Rule::div_op => BinaryOp::Div,
                    Rule::rem_op => BinaryOp::Rem,
                    _ => return Err(self.shape_error(&op)),
                };
                Ok(Expr {
                    span,
                    kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                })
            })
            .parse(pair.into_inner());
        self.depth.set(saved);
        result
    }

    /// A literal such as `0.10` is a `float` or a `decimal` by where it is
    /// used, so it must fit both exactly enough: within a `decimal`'s range
    /// and precision (which also keeps it finite as a `float`).
    fn number_fits(&self, span: Span, text: &str, digits: &str) {
        if rust_decimal::Decimal::from_str_exact(digits).is_ok() {
            return;
        }
        let whole = digits.split('.').next().unwrap_or(digits);
        let message = if rust_decimal::Decimal::from_str_exact(whole).is_err() {
            format!("`{text}` is too large for a number literal")
        } else {
            format!("`{text}` has more digits than a number literal can hold")
        };
        self.invalid_literal(
            span,
            message,
            "a literal with a point is a `decimal` or a `float` by where it is used, so it must fit a `decimal`: at most 79228162514264337593543950335, with at most 28 digits after the point (fewer for large numbers)",
        );
    }

    fn invalid_literal(&self, span: Span, message: String, help: &str) {
        self.report(
            Diagnostic::new(Code::InvalidLiteral, self.file, span, message).with_help(help),
        );
    }

    fn primary(&self, pair: Pair<Rule>) -> Built<Expr> {
        let span = self.span(&pair);
        let text = pair.as_str();
        let kind = match pair.as_rule() {
            Rule::int_lit => match text.replace('_', "").parse::<i64>() {
                Ok(n) => ExprKind::Int(n),
                // Fits only negated (`-9223372036854775808`): `map_prefix`
                // folds the minus in, and the literal is reported otherwise.
                Err(_) if text.replace('_', "") == I64_MIN_DIGITS => {
                    self.unnegated.borrow_mut().push(span);
                    ExprKind::Int(i64::MIN)
                }
                Err(_) => {
                    self.invalid_literal(span, format!("`{text}` is too large for an `int`"), "an `int` holds values up to 9223372036854775807; use a `decimal` literal such as `1.0` for larger amounts");
                    ExprKind::Int(0)
                }
            },
            Rule::exp_lit => {
                self.invalid_literal(
                    span,
                    format!("`{text}`: number literals have no exponent"),
                    "write the number out in digits, such as `1500000.0` for `1.5e6`",
                );
                ExprKind::Number("1.0".into())
            }
            Rule::decimal_lit => {
                let digits = text.replace('_', "");
                self.number_fits(span, text, &digits);
                ExprKind::Number(digits)
            }
            Rule::duration_lit => ExprKind::Duration(self.duration(text, span)),
            Rule::date_lit => match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(d) => ExprKind::Date(d),
                Err(e) => {
                    self.invalid_literal(
                        span,
                        format!("`{text}` is not a valid date: {e}"),
                        "write dates as `YYYY-MM-DD`, such as `2026-12-01`",
                    );
                    ExprKind::Date(chrono::NaiveDate::default())
                }
            },
            Rule::datetime_lit => {
                let normalized = if text.len() == 17 || (text.len() == 22 && !text.ends_with('Z')) {
                    // No seconds: `2026-12-01T10:00Z`.
                    let (head, zone) = text.split_at(16);
                    format!("{head}:00{zone}")
                } else {
                    text.to_string()
                };
                match chrono::DateTime::parse_from_rfc3339(&normalized) {
                    Ok(d) => ExprKind::DateTime(d),
                    Err(e) => {
                        self.invalid_literal(span, format!("`{text}` is not a valid date and time: {e}"), "write times as RFC 3339, such as `2026-12-01T10:00:00Z` or `2026-12-01T10:00:00-05:00`");
                        ExprKind::DateTime(chrono::DateTime::default())
                    }
                }
            }
            Rule::interp_string | Rule::raw_string => ExprKind::Str(self.template(pair)?),
            Rule::true_lit => ExprKind::Bool(true),
            Rule::false_lit => ExprKind::Bool(false),
            Rule::none_lit => ExprKind::None,
            Rule::name => ExprKind::Name(self.name(self.part(kids(&pair).next(), &pair)?)),
            Rule::call => {
                let mut it = kids(&pair);
                let name = self.name(self.part(it.next(), &pair)?);
                ExprKind::Call(name, self.args(self.part(it.next(), &pair)?)?)
            }
            Rule::list_lit => {
                ExprKind::List(kids(&pair).map(|e| self.expr(e)).collect::<Built<_>>()?)
            }
            Rule::paren_expr => {
                ExprKind::Paren(Box::new(self.expr(self.part(kids(&pair).next(), &pair)?)?))
            }
            Rule::previous_expr => {
                ExprKind::Previous(Box::new(self.expr(self.part(kids(&pair).next(), &pair)?)?))
            }
            Rule::count_expr => {
                let mut it = kids(&pair);
                let event = self.name(self.part(it.next(), &pair)?);
                let mut by = Vec::new();
                let mut within = None;
                for p in it {
                    if p.as_rule() == Rule::field_path {
                        by.push(self.expr(p)?);
                    } else {
                        within = Some(self.expr(p)?);
                    }
                }
                ExprKind::CountOf {
                    event,
                    by,
                    within: Box::new(within.ok_or_else(|| self.shape_error(&pair))?),
                }
            }
            Rule::if_expr => {
                let mut it = kids(&pair);
                let c = self.expr(self.part(it.next(), &pair)?)?;
                let t = self.expr(self.part(it.next(), &pair)?)?;
                let e = self.expr(self.part(it.next(), &pair)?)?;
                ExprKind::If(Box::new(c), Box::new(t), Box::new(e))
            }
            _ => return Err(self.shape_error(&pair)),
        };
        Ok(Expr { span, kind })
    }

    fn duration(&self, text: &str, span: Span) -> i64 {
        let mut total: i64 = 0;
        let mut digits = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            if c == '_' {
                continue;
            }
            let unit: i64 = match c {
                'm' if chars.peek() == Some(&'s') => {
                    chars.next();
                    1
                }
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                _ => 7 * 86_400_000,
            };
            let part = digits.parse::<i64>().ok().and_then(|n| n.checked_mul(unit));
            match part.and_then(|p| total.checked_add(p)) {
                Some(t) => total = t,
                None => {
                    self.invalid_literal(
                        span,
                        format!("the duration `{text}` is too long"),
                        "durations can be at most about 292 million years",
                    );
                    // Reported: a stand-in that no other check refuses.
                    return i64::MAX;
                }
            }
            digits.clear();
        }
        total
    }

    fn template(&self, pair: Pair<Rule>) -> Built<Template> {
        let raw = pair.as_rule() == Rule::raw_string;
        let mut parts = Vec::new();
        let mut text = String::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::text | Rule::raw_text => text.push_str(part.as_str()),
                Rule::escape => self.escape(&part, &mut text),
                Rule::interpolation => {
                    if !text.is_empty() {
                        parts.push(TemplatePart::Text(std::mem::take(&mut text)));
                    }
                    parts.push(TemplatePart::Expr(
                        self.expr(self.part(kids(&part).next(), &part)?)?,
                    ));
                }
                _ => {}
            }
        }
        if !text.is_empty() || parts.is_empty() {
            parts.push(TemplatePart::Text(text));
        }
        Ok(Template { parts, raw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> Builder {
        Builder {
            file: 0,
            base: 10,
            diags: RefCell::new(Vec::new()),
            depth: Cell::new(0),
            unnegated: RefCell::new(Vec::new()),
        }
    }

    #[test]
    fn an_unexpected_shape_is_an_error_not_a_panic() {
        let mut pairs = StewardParser::parse(Rule::expr, "a + 1").unwrap();
        let pair = pairs.next().unwrap();
        let b = builder();
        // An expression where an item belongs: once `unreachable!`.
        let diag = b.item(pair.clone()).unwrap_err();
        assert_eq!(diag.code, Code::Syntax);
        assert!(
            diag.message.contains("unexpected `expr` shape"),
            "{}",
            diag.message
        );
        assert_eq!(diag.primary.span, Span::new(10, 15));
        // A part the tree lacks: once `next().unwrap()`.
        let diag = b.part(None, &pair).unwrap_err();
        assert_eq!(diag.primary.span, Span::new(10, 15));
        assert!(b.part(kids(&pair).next(), &pair).is_ok());
    }
}
