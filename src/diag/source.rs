use std::sync::{Arc, LazyLock};

use super::LineIndex;

/// Which file of a [`SourceMap`] a span points into.
pub type FileId = u32;

/// A half-open byte range `start..end` into one file's text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn len(self) -> u32 {
        self.end - self.start
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    pub fn contains(self, offset: u32) -> bool {
        self.start <= offset && offset <= self.end
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

std::thread_local! {
    static HIDE_SPANS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if HIDE_SPANS.with(|h| h.get()) {
            f.write_str("_")
        } else {
            write!(f, "{}..{}", self.start, self.end)
        }
    }
}

/// Runs `f` with every [`Span`] printing as `_` in `Debug` output, so two
/// syntax trees can be compared without their positions.
pub fn without_spans<T>(f: impl FnOnce() -> T) -> T {
    HIDE_SPANS.with(|h| h.set(true));
    let result = f();
    HIDE_SPANS.with(|h| h.set(false));
    result
}

/// What [`SourceMap::get`] answers for an id it did not hand out.
static NO_FILE: LazyLock<SourceFile> = LazyLock::new(|| SourceFile {
    name: Arc::from(""),
    text: Arc::from(""),
    lines: LineIndex::new(""),
});

/// One source file: its name as shown to users, its text, and its lines.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: Arc<str>,
    pub text: Arc<str>,
    pub lines: LineIndex,
}

/// Every file of one program (user files and the standard library), by id.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> FileId {
        let text: Arc<str> = text.into();
        let lines = LineIndex::new(&text);
        self.files.push(SourceFile {
            name: name.into(),
            text,
            lines,
        });
        (self.files.len() - 1) as FileId
    }

    /// File `id`. Ids come from [`SourceMap::add`] and files are never
    /// removed; another id reads as an empty file with no name.
    pub fn get(&self, id: FileId) -> &SourceFile {
        self.files.get(id as usize).unwrap_or(&NO_FILE)
    }

    pub fn name(&self, id: FileId) -> &str {
        &self.get(id).name
    }

    pub fn text(&self, id: FileId) -> &str {
        &self.get(id).text
    }

    pub fn ids(&self) -> impl Iterator<Item = FileId> {
        0..self.files.len() as FileId
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}
