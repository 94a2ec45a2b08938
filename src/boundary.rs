//! The library's surface for the programs built on it: the command line now,
//! the HTTP API and the console next. It owns the pipeline from sources to a
//! compiled ruleset and the JSON shapes of what comes out (diagnostics with
//! their labels and fixes, actions, explain traces), so each shape is
//! written once. Errors that cross it are typed.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value as Json};

use crate::check::{analyze, Analysis, Host, RhaiSourceError};
use crate::diag::{Diagnostic, JsonDiagnostic};
use crate::engine::runtime::{Action, RuleError, Trace};
use crate::engine::{compile, Ruleset};

/// Why sources did not become a ruleset.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The checker (or the compiler, for Rhai scripts) found errors.
    #[error("the rules have {} error(s)", .0.iter().filter(|d| d.is_error()).count())]
    Invalid(Vec<Diagnostic>),
}

/// Sources checked and, when they have no errors, compiled.
pub struct Built {
    pub analysis: Analysis,
    pub rules: Result<Arc<Ruleset>, BuildError>,
}

/// Checks `files` (name, text) as one program with `host` for Rhai scripts,
/// and compiles them if they have no errors.
pub fn build(files: &[(String, String)], host: &dyn Host) -> Built {
    built(analyze(files, host))
}

/// A program's sources as deployed and stored: its rule files, and the Rhai
/// scripts they read (by the file that names each and the path it gives),
/// so a stored version is checked and compiled again exactly as it was,
/// with no file system.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sources {
    pub files: Vec<(String, String)>,
    #[serde(default)]
    pub scripts: Vec<(String, String, String)>,
}

impl Sources {
    /// Checks `files` with `host`, keeping every script the checker read
    /// with the files.
    pub fn read(files: Vec<(String, String)>, host: &dyn Host) -> (Sources, Analysis) {
        let recording = Recording {
            inner: host,
            read: std::cell::RefCell::new(Vec::new()),
        };
        let analysis = analyze(&files, &recording);
        let scripts = recording.read.into_inner();
        (Sources { files, scripts }, analysis)
    }

    /// Checks and compiles the stored sources.
    pub fn build(&self) -> Built {
        build(&self.files, self)
    }

    /// Checks and compiles the sources knowing the tenant's secrets (by
    /// name): a webhook header naming another is an error (E0417). As
    /// [`Sources::build`] when `secrets` is `None`.
    pub fn build_knowing(&self, secrets: Option<&BTreeSet<String>>) -> Built {
        match secrets {
            Some(secrets) => build(
                &self.files,
                &Knowing {
                    inner: self,
                    secrets,
                },
            ),
            None => self.build(),
        }
    }
}

/// A host that answers as `inner` does, and knows the tenant's secrets.
pub struct Knowing<'a> {
    pub inner: &'a dyn Host,
    pub secrets: &'a BTreeSet<String>,
}

impl Host for Knowing<'_> {
    fn rhai_source(&self, file: &str, path: &str) -> Result<String, RhaiSourceError> {
        self.inner.rhai_source(file, path)
    }

    fn has_secret(&self, name: &str) -> Option<bool> {
        Some(self.secrets.contains(name))
    }
}

impl Sources {
    /// The sources as one map of files by name, as the HTTP API sends and
    /// takes them: the rule files, and each script under the path its rules
    /// give, relative to the file that names it.
    pub fn to_files(&self) -> std::collections::BTreeMap<String, String> {
        let mut out: std::collections::BTreeMap<String, String> =
            self.files.iter().cloned().collect();
        for (file, path, text) in &self.scripts {
            out.insert(script_name(file, path), text.clone());
        }
        out
    }
}

/// Where the script `path` that `file` names is, as a name beside it.
pub fn script_name(file: &str, path: &str) -> String {
    match file.rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => format!("{dir}/{path}"),
        _ => path.to_string(),
    }
}

impl Host for Sources {
    fn rhai_source(&self, file: &str, path: &str) -> Result<String, RhaiSourceError> {
        self.scripts
            .iter()
            .find(|(f, p, _)| f == file && p == path)
            .map(|(_, _, text)| text.clone())
            .ok_or(RhaiSourceError::Missing)
    }
}

/// A host that answers as `inner` does and keeps what it answered.
struct Recording<'a> {
    inner: &'a dyn Host,
    read: std::cell::RefCell<Vec<(String, String, String)>>,
}

impl Host for Recording<'_> {
    fn rhai_source(&self, file: &str, path: &str) -> Result<String, RhaiSourceError> {
        let text = self.inner.rhai_source(file, path)?;
        let mut read = self.read.borrow_mut();
        if !read.iter().any(|(f, p, _)| f == file && p == path) {
            read.push((file.to_string(), path.to_string(), text.clone()));
        }
        Ok(text)
    }

    fn has_secret(&self, name: &str) -> Option<bool> {
        self.inner.has_secret(name)
    }
}

/// Compiles an analysis already made (the CLI reads files its own way).
pub fn built(analysis: Analysis) -> Built {
    let rules = if analysis.has_errors() {
        Err(BuildError::Invalid(analysis.errors().cloned().collect()))
    } else {
        compile(&analysis)
            .map(Arc::new)
            .map_err(BuildError::Invalid)
    };
    Built { analysis, rules }
}

/// Every diagnostic of `analysis`, as `steward check --format json` prints
/// them (and the HTTP API will answer them).
pub fn diagnostics_json(analysis: &Analysis, diagnostics: &[Diagnostic]) -> Vec<JsonDiagnostic> {
    diagnostics
        .iter()
        .map(|d| JsonDiagnostic::new(d, &analysis.sources))
        .collect()
}

/// An action as JSON (`steward replay` prints the same shape, streamed).
pub fn action_json(action: &Action) -> Json {
    action.to_json()
}

/// A rule error as JSON.
pub fn rule_error_json(error: &RuleError) -> Json {
    json!({
        "rule": &*error.rule,
        "event": &*error.event,
        "at": crate::engine::value::show_datetime(&error.at),
        "message": error.message,
    })
}

/// What `explain` says about one event, as JSON: the rules considered, each
/// condition's value and the fields it read, and what the rules did.
pub fn explain_json(trace: &Trace, actions: &[Action], errors: &[RuleError]) -> Json {
    let rules: Vec<Json> = trace
        .rules
        .iter()
        .map(|r| {
            let mut rule = json!({
                "rule": r.rule,
                "considered": r.considered,
                "conditions": r.conditions.iter().map(|c| json!({
                    "condition": c.condition,
                    "value": c.value,
                    "reads": c.reads,
                })).collect::<Vec<_>>(),
                "matched": r.matched,
            });
            if let Some(map) = rule.as_object_mut() {
                if let Some(s) = &r.skipped {
                    map.insert("skipped".into(), json!(s));
                }
                if let Some(t) = r.throttled {
                    map.insert("throttled".into(), json!(t));
                }
                if let Some(w) = &r.watch {
                    map.insert("watch".into(), json!(w));
                }
                if !r.scheduled.is_empty() {
                    map.insert("scheduled".into(), json!(r.scheduled));
                }
                if let Some(c) = &r.counted {
                    map.insert(
                        "count".into(),
                        json!({"seen": c.seen, "of": c.of, "within": c.window, "reached": c.reached}),
                    );
                }
                if let Some(e) = &r.error {
                    map.insert("error".into(), json!(e));
                }
            }
            rule
        })
        .collect();
    let mut out = json!({
        "trace": {
            "event": trace.event,
            "tenant": trace.tenant,
            "event_type": trace.event_type,
            "at": trace.at,
            "rules": rules,
        },
        "actions": actions.iter().map(action_json).collect::<Vec<_>>(),
        "errors": errors.iter().map(rule_error_json).collect::<Vec<_>>(),
    });
    if !trace.restarted.is_empty() {
        if let Some(t) = out.get_mut("trace").and_then(|t| t.as_object_mut()) {
            t.insert("restarted".into(), json!(trace.restarted));
        }
    }
    out
}
