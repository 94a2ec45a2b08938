//! Line-level scanning that does not need the grammar: where comments and
//! strings are, and where top-level items start (for recovery). Strings cannot
//! span lines, so every line starts outside a string and outside a comment.

use std::ops::Range;

use crate::diag::Span;

/// What one line holds outside the grammar's view.
struct LineScan {
    /// Byte offset (in the line) of a `#` comment.
    comment: Option<usize>,
    /// Byte offset of a string still open at the end of the line.
    open_string: Option<usize>,
}

fn scan_line(line: &str) -> LineScan {
    // Each frame is a string (with the offset of its quote) or an
    // interpolation's code (with its brace depth).
    enum Frame {
        Str(usize),
        Code(u32),
    }
    let bytes = line.as_bytes();
    let mut stack = vec![Frame::Code(0)];
    let mut i = 0;
    // The byte `back` places before the current one, if any.
    let before = |i: usize, back: usize| i.checked_sub(back).and_then(|j| bytes.get(j)).copied();
    while let Some(&b) = bytes.get(i) {
        match stack.last_mut() {
            Some(Frame::Code(depth)) => match b {
                b'#' => {
                    return LineScan {
                        comment: Some(i),
                        open_string: None,
                    }
                }
                b'"' => {
                    let raw = before(i, 1) == Some(b'r')
                        && !before(i, 2).is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_');
                    if raw {
                        match line.get(i + 1..).unwrap_or("").find('"') {
                            Some(close) => i += close + 1,
                            None => {
                                return LineScan {
                                    comment: None,
                                    open_string: Some(i - 1),
                                }
                            }
                        }
                    } else {
                        stack.push(Frame::Str(i));
                    }
                }
                b'{' => *depth += 1,
                b'}' => {
                    if *depth == 0 {
                        if stack.len() > 1 {
                            stack.pop();
                        }
                    } else {
                        *depth -= 1;
                    }
                }
                _ => {}
            },
            Some(Frame::Str(_)) => match b {
                b'\\' => i += 1,
                b'"' => {
                    stack.pop();
                }
                b'{' => stack.push(Frame::Code(0)),
                _ => {}
            },
            // The base frame is never popped; were it, the line ends here.
            None => break,
        }
        i += 1;
    }
    let open_string = stack.iter().find_map(|f| match f {
        Frame::Str(at) => Some(*at),
        Frame::Code(_) => None,
    });
    LineScan {
        comment: None,
        open_string,
    }
}

fn lines(src: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start = 0;
    src.split_inclusive('\n').map(move |line| {
        let at = start;
        start += line.len();
        (at, line.strip_suffix('\n').unwrap_or(line))
    })
}

/// Every comment in the file, `#` to the end of its line.
pub fn comments(src: &str) -> Vec<Span> {
    lines(src)
        .filter_map(|(at, line)| {
            scan_line(line)
                .comment
                .map(|c| Span::new(at + c, at + line.trim_end().len()))
        })
        .collect()
}

/// The start of a string that is still open at the end of the line holding
/// `offset`, if the line has one before `offset`.
pub fn open_string_at(src: &str, offset: usize) -> Option<usize> {
    let line_start = src
        .get(..offset.min(src.len()))
        .unwrap_or("")
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line_end = src
        .get(line_start..)
        .unwrap_or("")
        .find('\n')
        .map_or(src.len(), |i| line_start + i);
    let open = scan_line(src.get(line_start..line_end).unwrap_or("")).open_string? + line_start;
    (open <= offset).then_some(open)
}

/// The line with strings and comments blanked, for looking for keywords.
fn code_words(line: &str) -> Vec<&str> {
    let end = scan_line(line).comment.unwrap_or(line.len());
    let mut words = Vec::new();
    let mut in_string = false;
    for (i, part) in line.get(..end).unwrap_or("").split('"').enumerate() {
        // Even parts are outside strings (nested strings in interpolations are rare
        // enough that this approximation is fine for finding item keywords).
        in_string = i % 2 == 1;
        if !in_string {
            words.extend(
                part.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| !w.is_empty()),
            );
        }
    }
    let _ = in_string;
    words
}

const ITEM_KEYWORDS: &[&str] = &["rule", "event", "type", "message", "action", "fn", "extern"];

/// Splits a file into the byte ranges of its top-level items. A line whose
/// first word is an item keyword starts an item; so does a `when` or `every`
/// in the first column, unless it is the trigger of a `rule` still missing one.
pub fn split_items(src: &str) -> Vec<Range<usize>> {
    let mut starts = Vec::new();
    // Inside a `rule` item that has not yet seen its trigger.
    let mut rule_needs_trigger = false;
    for (at, line) in lines(src) {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let words = code_words(line);
        // An item keyword is followed by a space and a name: `type: string`
        // is a field named like one, `event.id` a continuation line.
        let first = words.first().copied().filter(|w| {
            trimmed.starts_with(w) && {
                let rest = trimmed.get(w.len()..).unwrap_or("");
                !rest.trim_start().starts_with(':')
                    && (!ITEM_KEYWORDS.contains(w)
                        || rest.starts_with([' ', '\t'])
                            && rest
                                .trim_start()
                                .starts_with(|c: char| c.is_alphabetic() || c == '_'))
            }
        });
        let mut starts_item = false;
        match first {
            Some(w) if ITEM_KEYWORDS.contains(&w) => {
                starts_item = true;
                rule_needs_trigger = w == "rule";
            }
            // `test` is contextual: an item only as `test "name"` in the first column.
            Some("test")
                if indent == 0 && trimmed.get(4..).unwrap_or("").trim_start().starts_with('"') =>
            {
                starts_item = true;
                rule_needs_trigger = false;
            }
            Some("when" | "every") if indent == 0 => {
                if rule_needs_trigger {
                    rule_needs_trigger = false;
                } else {
                    starts_item = true;
                }
            }
            _ => {}
        }
        if starts_item {
            starts.push(at + indent);
        }
        if rule_needs_trigger
            && words
                .iter()
                .skip(usize::from(starts_item))
                .any(|w| *w == "when" || *w == "every")
        {
            rule_needs_trigger = false;
        }
    }
    let Some(&first) = starts.first() else {
        // Only comments and blank lines: an empty program.
        return if skip_trivia(src).is_empty() {
            Vec::new()
        } else {
            std::iter::once(0..src.len()).collect()
        };
    };
    // Text before the first item keyword (other than comments) is an item too,
    // so stray text is reported instead of silently ignored.
    let mut ranges = Vec::new();
    if !skip_trivia(src.get(..first).unwrap_or("")).is_empty() {
        ranges.push(0..first);
    }
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(src.len());
        ranges.push(start..end);
    }
    ranges
}

/// `text` without leading whitespace and comments.
pub fn skip_trivia(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        if text.starts_with('#') {
            text = text.find('\n').map_or("", |i| text.get(i..).unwrap_or(""));
        } else {
            return text;
        }
    }
}

/// The length of `text` without trailing whitespace and comments. `text`
/// must start outside a string (at a token).
pub fn trim_trailing_trivia(text: &str) -> usize {
    let mut end = text.len();
    loop {
        let trimmed = text.get(..end).unwrap_or("").trim_end();
        end = trimmed.len();
        let line_start = trimmed.rfind('\n').map_or(0, |i| i + 1);
        match scan_line(trimmed.get(line_start..).unwrap_or("")).comment {
            Some(c) => end = line_start + c,
            None => return end,
        }
    }
}

/// The span of `range` in `src` without trailing whitespace and comments.
pub fn trimmed_span(src: &str, range: Range<usize>) -> Span {
    let text = src.get(range.clone()).unwrap_or("");
    let end = range.start + end_of_code(text, text.len());
    Span::new(range.start, end.max(range.start))
}

/// The offset just after the last code (not whitespace or comment) in
/// `text[..upto]`.
pub fn end_of_code(text: &str, upto: usize) -> usize {
    let mut end = 0;
    for (at, line) in lines(text.get(..upto).unwrap_or("")) {
        let code = match scan_line(line).comment {
            Some(c) => line.get(..c).unwrap_or(""),
            None => line,
        };
        let code = code.trim_end();
        if !code.is_empty() {
            end = at + code.len();
        }
    }
    end
}

/// The first word (or symbol run) of `text` after whitespace and comments.
pub fn first_word(text: &str) -> Option<String> {
    let text = skip_trivia(text);
    let len = token_len(text);
    (len > 0).then(|| text.get(..len).unwrap_or("").to_string())
}

/// The length of the token at the start of `text`: a word, a string up to its
/// end on this line, or one character.
pub fn token_len(text: &str) -> usize {
    let mut chars = text.char_indices();
    let Some((_, c)) = chars.next() else { return 0 };
    if c.is_alphanumeric() || c == '_' {
        return text
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(text.len());
    }
    if c == '"' {
        let line = text.find('\n').unwrap_or(text.len());
        return text
            .get(1..line)
            .unwrap_or("")
            .find('"')
            .map_or(line, |i| i + 2);
    }
    let symbols = text
        .find(|c: char| !"=!<>&|?+-*/%".contains(c))
        .unwrap_or(text.len());
    if symbols > 0 {
        symbols
    } else {
        c.len_utf8()
    }
}

/// `text` with each lone `\r` (one not followed by `\n`) replaced by `\n`:
/// the same length, so every byte offset stays. Old Mac line endings then
/// read as line breaks, and a `#` comment ends at one.
pub fn lone_cr_as_lf(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let lone = |(i, b): (usize, &u8)| *b == b'\r' && bytes.get(i + 1) != Some(&b'\n');
    if !bytes.iter().enumerate().any(lone) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() != Some(&'\n') {
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// How deeply an item's blocks (`then`/`do` ... `end`) and brackets nest, as
/// a line scan sees it, before any recursive pass runs: the parser refuses an
/// item nested deeper than its limits instead of overflowing the stack.
/// Returns (blocks, brackets).
pub fn nesting(item: &str) -> (u32, u32) {
    let (mut blocks, mut brackets) = (0u32, 0u32);
    let (mut max_blocks, mut max_brackets) = (0u32, 0u32);
    for (_, line) in lines(item) {
        let end = scan_line(line).comment.unwrap_or(line.len());
        for (i, part) in line.get(..end).unwrap_or("").split('"').enumerate() {
            if i % 2 == 1 {
                continue;
            }
            let mut prev = ' ';
            for c in part.chars() {
                match c {
                    '(' | '[' | '{' => brackets = brackets.saturating_add(1),
                    '<' if prev.is_alphanumeric() || prev == '_' || prev == '<' => {
                        brackets = brackets.saturating_add(1)
                    }
                    ')' | ']' | '}' | '>' => brackets = brackets.saturating_sub(1),
                    _ => {}
                }
                max_brackets = max_brackets.max(brackets);
                prev = c;
            }
        }
        let words = code_words(line);
        for w in &words {
            if *w == "end" {
                blocks = blocks.saturating_sub(1);
            }
        }
        if matches!(words.last(), Some(&"then" | &"do")) {
            blocks = blocks.saturating_add(1);
            max_blocks = max_blocks.max(blocks);
        }
    }
    (max_blocks, max_brackets)
}

#[cfg(test)]
#[allow(clippy::string_slice, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    #[test]
    fn comments_skip_hashes_in_strings() {
        let src = "message m { subject: \"#1 {x ?? \"#\"}\" } # real\n## doc\n";
        let found: Vec<&str> = comments(src).iter().map(|s| &src[s.range()]).collect();
        assert_eq!(found, ["# real", "## doc"]);
    }

    #[test]
    fn split_keeps_rule_trigger_in_the_rule() {
        let src = "rule a\nwhen x.y\nthen log \"a\"\nend\nwhen x.y then log \"b\"\n";
        let items: Vec<&str> = split_items(src).into_iter().map(|r| &src[r]).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].starts_with("rule a"));
        assert!(items[1].starts_with("when x.y then"));
    }

    #[test]
    fn open_strings_are_found() {
        let src = "when a.b then log \"oops\nevent x {}";
        assert_eq!(open_string_at(src, 23), Some(18));
    }
}
