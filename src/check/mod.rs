//! The checker: names, types and schemas, for all files of a program at once.
//!
//! [`analyze`] parses the standard library and the given files, collects
//! their declarations into a [`Program`], then checks every function, message
//! and rule. It reports every problem in one pass and records what it learns
//! (the type at each expression, what each name refers to) for the editor.
//!
//! Invariants: no IO (the caller supplies file texts, and answers whether a
//! Rhai file exists); an [`Type::Error`] absorbs follow-on errors, so one
//! mistake gives one diagnostic.

pub mod actions;
mod compose;
mod decls;
mod expr;
mod history;
mod interact;
mod quiet;
mod rules;
pub mod schedule;
pub mod stdlib;
mod suggest;
mod tests;
pub mod types;

use std::collections::HashMap;
use std::sync::Arc;

use crate::diag::{self, Diagnostic, FileId, SourceMap, Span};
use crate::syntax::ast::SourceFile;

pub use types::{Loc, Program, Type, Webhook, WebhookHeader};

/// What a name in the source refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DefKind {
    Type,
    Event,
    Field,
    Message,
    Action,
    Function,
    Param,
    Let,
}

/// A use of a name, and the declaration it refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference {
    pub at: Loc,
    pub target: Loc,
    pub kind: DefKind,
}

/// The type the checker gave an expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeAt {
    pub at: Loc,
    pub ty: Type,
}

/// One parsed file of the program.
#[derive(Clone, Debug)]
pub struct ParsedFile {
    pub id: FileId,
    pub tree: Arc<SourceFile>,
    /// Whether the file is part of the embedded standard library.
    pub stdlib: bool,
}

/// Everything the front end knows about a program.
#[derive(Debug)]
pub struct Analysis {
    pub sources: SourceMap,
    pub files: Vec<ParsedFile>,
    pub program: Program,
    /// Sorted by file and position, errors and warnings together.
    pub diagnostics: Vec<Diagnostic>,
    pub references: Vec<Reference>,
    /// The typed, resolved program (rules and functions, each expression
    /// with its type): what the engine lowers and the editor's hover reads.
    pub hir: crate::hir::Program,
    /// The type of each `let`, at its name (for the editor's hover, completion
    /// and inlay hints).
    pub lets: Vec<TypeAt>,
    /// The text of each Rhai script (by the file naming it and the path as
    /// written), when the host supplied it.
    pub rhai: HashMap<(FileId, String), String>,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    /// The user files (not the standard library).
    pub fn user_files(&self) -> impl Iterator<Item = &ParsedFile> {
        self.files.iter().filter(|f| !f.stdlib)
    }
}

/// What the checker asks of its caller, which owns the file system.
pub trait Host {
    /// The text of the Rhai script `path`, written in `file`. The checker
    /// compiles it (syntax errors are reported) and keeps it for the engine,
    /// so the checker's answer is the engine's: a script is read once.
    fn rhai_source(&self, file: &str, path: &str) -> Result<String, RhaiSourceError>;

    /// Whether the tenant has set the secret `name` (a webhook header names
    /// it): `None` when the host cannot say (an editor, `steward check`), and
    /// the name is taken to exist.
    fn has_secret(&self, _name: &str) -> Option<bool> {
        None
    }
}

/// Why a Rhai script could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RhaiSourceError {
    #[error("not found")]
    Missing,
    /// An absolute path, or one that resolves outside the rule files' folders.
    #[error("outside the rule files' folders")]
    Outside,
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("cannot be read ({0})")]
    Unreadable(std::io::ErrorKind),
    /// The host has no files (checking text alone): the script is taken to
    /// exist, and is not compiled.
    #[error("not available")]
    Unavailable,
}

/// A host that has every Rhai file (for checking text with no files behind it).
pub struct NoFiles;

impl Host for NoFiles {
    fn rhai_source(&self, _file: &str, _path: &str) -> Result<String, RhaiSourceError> {
        Err(RhaiSourceError::Unavailable)
    }
}

/// Parses and checks `files` (name and text) together, with the standard library.
pub fn analyze(files: &[(String, String)], host: &dyn Host) -> Analysis {
    analyze_cached(files, host, &mut ParseCache::default())
}

/// Syntax trees kept between analyses of the same files, so that an editor
/// re-parses only what changed. A tree is reused when its file has the same
/// text and the same [`FileId`] as before; when the text changed, only the
/// items whose text changed are parsed again ([`crate::syntax::Reuse`]).
#[derive(Debug, Default)]
pub struct ParseCache {
    trees: HashMap<FileId, CachedTree>,
}

#[derive(Debug, Default)]
struct CachedTree {
    /// The text `tree` was parsed from (none before the first parse).
    text: Option<String>,
    tree: Arc<SourceFile>,
    diagnostics: Vec<Diagnostic>,
    items: crate::syntax::Reuse,
}

impl ParseCache {
    fn parse(&mut self, id: FileId, text: &str) -> (Arc<SourceFile>, Vec<Diagnostic>) {
        let cached = self.trees.entry(id).or_default();
        if cached.text.as_deref() != Some(text) {
            let (tree, diagnostics) = crate::syntax::parse_reusing(id, text, &mut cached.items);
            cached.text = Some(text.to_string());
            cached.tree = Arc::new(tree);
            cached.diagnostics = diagnostics;
        }
        (cached.tree.clone(), cached.diagnostics.clone())
    }
}

/// [`analyze`], reusing the trees of files that did not change since the
/// last call with the same cache.
pub fn analyze_cached(
    files: &[(String, String)],
    host: &dyn Host,
    cache: &mut ParseCache,
) -> Analysis {
    let mut sources = SourceMap::new();
    let mut parsed = Vec::new();
    let mut diagnostics = Vec::new();
    let all = stdlib::FILES
        .iter()
        .map(|(name, text)| (format!("<stdlib>/{name}"), *text, true))
        .chain(
            files
                .iter()
                .map(|(name, text)| (name.clone(), text.as_str(), false)),
        );
    for (name, text, stdlib) in all {
        let id = sources.add(name, text);
        let (tree, diags) = cache.parse(id, text);
        diagnostics.extend(diags);
        parsed.push(ParsedFile { id, tree, stdlib });
    }
    cache
        .trees
        .retain(|id, _| (*id as usize) < stdlib::FILES.len() + files.len());
    let mut checker = Checker {
        sources: &sources,
        files: &parsed,
        program: Program::default(),
        diags: diagnostics,
        references: Vec::new(),
        hir: crate::hir::Program::default(),
        fn_ids: HashMap::new(),
        lets: Vec::new(),
        rhai: HashMap::new(),
        rule_recalls: Vec::new(),
        expanding: Vec::new(),
        host,
    };
    checker.run();
    let Checker {
        program,
        mut diags,
        references,
        hir,
        lets,
        rhai,
        ..
    } = checker;
    diag::sort(&mut diags);
    diags.dedup_by(|a, b| a.code == b.code && a.primary == b.primary && a.message == b.message);
    Analysis {
        sources,
        files: parsed,
        program,
        diagnostics: diags,
        references,
        hir,
        lets,
        rhai,
    }
}

/// The checker's state while it walks one program.
struct Checker<'a> {
    sources: &'a SourceMap,
    files: &'a [ParsedFile],
    program: Program,
    diags: Vec<Diagnostic>,
    references: Vec<Reference>,
    hir: crate::hir::Program,
    /// The id of each user function in `hir.functions`.
    fn_ids: HashMap<String, crate::hir::FnId>,
    lets: Vec<TypeAt>,
    rhai: HashMap<(FileId, String), String>,
    /// The recalls (`hir::Program::recalls`) the rule being checked reads.
    rule_recalls: Vec<usize>,
    /// The block actions whose calls are being expanded, outermost first.
    expanding: Vec<String>,
    host: &'a dyn Host,
}

impl Checker<'_> {
    fn run(&mut self) {
        self.collect_declarations();
        self.check_bodies();
    }

    fn report(&mut self, mut diag: Diagnostic) {
        // "a `int`" reads wrong: types are shown after "a" throughout.
        let fix = |text: &mut String| {
            if text.contains("a `int") || text.contains("a `{unknown}`") {
                *text = text
                    .replace("a `int", "an `int")
                    .replace(" a `{unknown}`", " an unknown value");
            }
        };
        fix(&mut diag.message);
        fix(&mut diag.primary.text);
        diag.secondary.iter_mut().for_each(|l| fix(&mut l.text));
        if let Some(help) = &mut diag.help {
            fix(help);
        }
        if diag.fix.is_none() {
            diag = self.suggestion_fix(diag);
        }
        self.diags.push(diag);
    }

    /// A "did you mean `x`?" help at a misspelled name (or string literal)
    /// becomes a fix that replaces it.
    fn suggestion_fix(&self, diag: Diagnostic) -> Diagnostic {
        let Some(name) = diag
            .help
            .as_deref()
            .and_then(|h| h.strip_prefix("did you mean `"))
            .and_then(|h| h.split_once("`?"))
            .map(|(name, _)| name.to_string())
        else {
            return diag;
        };
        let span = diag.primary.span;
        let text = self.text(diag.primary.file, span);
        let is_name = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        };
        let replacement = if is_name(text) {
            name.clone()
        } else if text.len() >= 2
            && text.starts_with('"')
            && text.ends_with('"')
            && !text.contains('{')
        {
            format!("\"{name}\"")
        } else {
            return diag;
        };
        diag.with_fix(format!("replace with `{name}`"), span, replacement)
    }

    /// The source text of a span, for quoting it in messages.
    fn text(&self, file: FileId, span: Span) -> &str {
        self.sources.text(file).get(span.range()).unwrap_or("")
    }

    /// Where the message `name` is declared (its name).
    fn message_loc(&self, name: &str) -> Option<Loc> {
        let &(file, index) = self.program.messages.get(name)?;
        let f = self.files.iter().find(|f| f.id == file)?;
        match f.tree.items.get(index)? {
            crate::syntax::ast::Item::Message(m) => Some(Loc {
                file,
                span: m.name.span,
            }),
            _ => None,
        }
    }

    fn refer(&mut self, file: FileId, span: Span, target: Loc, kind: DefKind) {
        self.references.push(Reference {
            at: Loc { file, span },
            target,
            kind,
        });
    }
}
