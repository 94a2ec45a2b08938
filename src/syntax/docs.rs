//! `##` doc comments, read back from the source: the consecutive `##` lines
//! just above a declaration (or a field) are its documentation.

/// The doc comment written just above the line holding `offset`, without the
/// `##` markers; `None` when there is none.
pub fn doc_before(src: &str, offset: u32) -> Option<String> {
    let offset = (offset as usize).min(src.len());
    // An offset inside a character has no line above it to read.
    let before = src.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let mut lines = Vec::new();
    let mut rest = before.get(..line_start)?;
    while let Some(stripped) = rest.strip_suffix('\n') {
        let start = stripped.rfind('\n').map_or(0, |i| i + 1);
        let (above, line) = stripped.split_at_checked(start)?;
        let line = line.trim();
        match line.strip_prefix("##") {
            Some(doc) => lines.push(doc.strip_prefix(' ').unwrap_or(doc).trim_end()),
            None => break,
        }
        rest = above;
    }
    if lines.is_empty() {
        return None;
    }
    lines.reverse();
    Some(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_consecutive_doc_lines() {
        let src = "# not a doc\n## First.\n## Second.\nevent a.b {}\n";
        let at = src.find("event").unwrap() as u32;
        assert_eq!(
            super::doc_before(src, at).as_deref(),
            Some("First.\nSecond.")
        );
        assert_eq!(super::doc_before(src, 0), None);
    }
}
