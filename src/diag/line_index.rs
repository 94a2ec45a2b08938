/// Converts byte offsets into lines and columns. The one place in the project
/// that does; everything else carries byte spans.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineIndex {
    /// Byte offset of the start of each line.
    starts: Vec<u32>,
    /// Byte offset of the end of each line's text (before its line break).
    ends: Vec<u32>,
    text_len: u32,
    /// Whether the text is pure ASCII, where every column count is the byte count.
    ascii: bool,
    /// Lines' texts are needed for non-ASCII counting.
    text: Option<std::sync::Arc<str>>,
}

/// A 0-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineCol {
    pub line: u32,
    pub col: u32,
}

impl LineIndex {
    /// Lines end at `\n`, `\r\n` or a lone `\r`, as the language server
    /// protocol counts them; the parser reads a lone `\r` as a line break
    /// too ([`crate::syntax::parse`]), so every tool agrees on line numbers.
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        let mut ends = Vec::new();
        let bytes = text.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let at = i as u32;
            match b {
                b'\n' => {
                    let crlf = i.checked_sub(1).and_then(|j| bytes.get(j)) == Some(&b'\r');
                    ends.push(if crlf { at - 1 } else { at });
                    starts.push(at + 1);
                }
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => {
                    ends.push(at);
                    starts.push(at + 1);
                }
                _ => {}
            }
        }
        ends.push(text.len() as u32);
        let ascii = text.is_ascii();
        LineIndex {
            starts,
            ends,
            text_len: text.len() as u32,
            ascii,
            text: if ascii { None } else { Some(text.into()) },
        }
    }

    fn line_of(&self, offset: u32) -> usize {
        let offset = offset.min(self.text_len);
        match self.starts.binary_search(&offset) {
            Ok(line) => line,
            Err(next) => next - 1,
        }
    }

    fn count(&self, line: usize, offset: u32, unit: impl Fn(char) -> u32) -> u32 {
        // `line_of` answers only lines there are.
        let start = self.starts.get(line).copied().unwrap_or(0);
        let offset = offset.min(self.text_len);
        match &self.text {
            None => offset - start,
            Some(text) => {
                // Clamp to a char boundary so a span inside a character still maps.
                let mut end = offset as usize;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.get(start as usize..end)
                    .unwrap_or("")
                    .chars()
                    .map(unit)
                    .sum()
            }
        }
    }

    /// Line and column, the column counted in Unicode scalar values (what the
    /// CLI prints: a `ë` or an emoji counts as one).
    pub fn line_col(&self, offset: u32) -> LineCol {
        let line = self.line_of(offset);
        LineCol {
            line: line as u32,
            col: self.count(line, offset, |_| 1),
        }
    }

    /// Line and column, the column counted in UTF-16 code units (what the
    /// language server protocol requires).
    pub fn line_col_utf16(&self, offset: u32) -> LineCol {
        let line = self.line_of(offset);
        LineCol {
            line: line as u32,
            col: self.count(line, offset, |c| c.len_utf16() as u32),
        }
    }

    /// The byte offset of a UTF-16 line and column; past the end of a line
    /// clamps to the line's end (before its line break, never after it).
    pub fn offset_utf16(&self, pos: LineCol) -> u32 {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return self.text_len;
        };
        let end = self
            .ends
            .get(pos.line as usize)
            .copied()
            .unwrap_or(self.text_len);
        match &self.text {
            None => start.saturating_add(pos.col).min(end),
            Some(text) => {
                let mut units = 0;
                for (i, c) in text
                    .get(start as usize..end as usize)
                    .unwrap_or("")
                    .char_indices()
                {
                    if units >= pos.col {
                        return start + i as u32;
                    }
                    units += c.len_utf16() as u32;
                }
                end
            }
        }
    }

    pub fn line_count(&self) -> usize {
        self.starts.len()
    }

    pub fn line_start(&self, line: usize) -> u32 {
        self.starts.get(line).copied().unwrap_or(self.text_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_columns_are_bytes() {
        let idx = LineIndex::new("ab\ncd\n");
        assert_eq!(idx.line_col(4), LineCol { line: 1, col: 1 });
        assert_eq!(idx.line_col(6), LineCol { line: 2, col: 0 });
    }

    #[test]
    fn non_ascii_columns_count_characters_or_utf16_units() {
        let text = "x = \"Zoë 🎉\" y";
        let idx = LineIndex::new(text);
        let y = text.find('y').unwrap() as u32;
        // Z o ë space 🎉 = 5 chars, but 🎉 is 2 UTF-16 units.
        assert_eq!(idx.line_col(y).col, 12);
        assert_eq!(idx.line_col_utf16(y).col, 13);
        assert_eq!(idx.offset_utf16(LineCol { line: 0, col: 13 }), y);
    }

    #[test]
    fn a_column_past_the_end_of_a_line_clamps_before_its_break() {
        let idx = LineIndex::new("ab\ncd\r\nef\rgh");
        assert_eq!(idx.offset_utf16(LineCol { line: 0, col: 99 }), 2);
        assert_eq!(idx.offset_utf16(LineCol { line: 1, col: 99 }), 5);
        assert_eq!(
            idx.offset_utf16(LineCol {
                line: 2,
                col: u32::MAX
            }),
            9
        );
        assert_eq!(idx.offset_utf16(LineCol { line: 3, col: 1 }), 11);
        let idx = LineIndex::new("é\nx");
        assert_eq!(idx.offset_utf16(LineCol { line: 0, col: 5 }), 2);
    }

    #[test]
    fn a_lone_carriage_return_ends_a_line() {
        let idx = LineIndex::new("a\rb\r\nc\nd");
        assert_eq!(idx.line_count(), 4);
        assert_eq!(idx.line_col(2), LineCol { line: 1, col: 0 });
        assert_eq!(idx.line_col(5), LineCol { line: 2, col: 0 });
        assert_eq!(idx.line_col(7), LineCol { line: 3, col: 0 });
    }
}
