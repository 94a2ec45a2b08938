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

/// An event a simulation could not take: its id and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub id: String,
    pub reason: String,
}

/// Runs envelopes (id, JSON line) through `rules` on a virtual clock and
/// a store in memory, up to `until` if given: what the rules did, and the
/// events they could not take. The dry runs and backtests of the HTTP API
/// and the console.
pub fn simulate(
    rules: Arc<Ruleset>,
    lines: &[(String, String)],
    until: Option<chrono::DateTime<chrono::Utc>>,
    decide: crate::engine::AutoDecide,
) -> Result<(crate::engine::Collect, Vec<Rejected>), crate::engine::Refused> {
    let mut engine = crate::engine::Engine::new(rules.clone(), crate::engine::MemoryStore::new());
    engine.auto_decide = decide;
    let mut sink = crate::engine::Collect::default();
    let mut rejected = Vec::new();
    for (id, line) in lines {
        let handled = crate::engine::decode_event(rules.shapes(), line)
            .map_err(|why| why.to_string())
            .and_then(|event| {
                engine
                    .handle(event, &mut sink)
                    .map_err(|why| why.to_string())
            });
        if let Err(reason) = handled {
            rejected.push(Rejected {
                id: id.clone(),
                reason,
            });
        }
    }
    if let Some(t) = until {
        engine.advance_to(t, &mut sink)?;
    }
    Ok((sink, rejected))
}

/// How the actions of a candidate program differ from the active one's
/// over the same events: each action by rule, event, action and
/// arguments.
#[derive(Debug, Default)]
pub struct ActionsDiff {
    /// What the candidate does that the active program does not.
    pub added: Vec<Action>,
    /// What the active program does that the candidate does not.
    pub removed: Vec<Action>,
    pub unchanged: usize,
}

/// Compares two runs' actions (a backtest): as multisets, by rule, event,
/// action and arguments, each list in that order.
pub fn diff_actions(active: Vec<Action>, candidate: Vec<Action>) -> ActionsDiff {
    fn key(a: &Action) -> (&str, &str, &str, String) {
        (
            &a.rule,
            &a.event,
            &a.action,
            Json::Object(a.args.clone()).to_string(),
        )
    }
    let sorted = |mut v: Vec<Action>| {
        v.sort_by_cached_key(|a| {
            let (r, e, n, args) = key(a);
            (r.to_string(), e.to_string(), n.to_string(), args)
        });
        v
    };
    let mut old = sorted(active).into_iter().peekable();
    let mut new = sorted(candidate).into_iter().peekable();
    let mut diff = ActionsDiff::default();
    loop {
        let order = match (old.peek(), new.peek()) {
            (Some(a), Some(b)) => key(a).cmp(&key(b)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => break,
        };
        match order {
            std::cmp::Ordering::Equal => {
                diff.unchanged += 1;
                old.next();
                new.next();
            }
            std::cmp::Ordering::Less => diff.removed.extend(old.next()),
            std::cmp::Ordering::Greater => diff.added.extend(new.next()),
        }
    }
    diff
}

/// What a stored continuation (a timer's or an approval's) runs in
/// `rules`, the program that made it: its block's actions, and its `else`
/// block's (an approval rejected or expired), as [`block_actions`] names
/// them. `None` if its rule is not in `rules`.
pub fn continuation_actions(
    rules: &Ruleset,
    stored: &crate::engine::stored::StoredContinuation,
) -> Option<(Vec<String>, Vec<String>)> {
    use crate::engine::program::{BlockRef, Branch};
    let rule = rules.rules.iter().find(|r| *r.name == *stored.rule)?;
    let find = |b: BlockRef| rule.block_steps.iter().position(|x| *x == b);
    let (mut then, mut otherwise) = (Vec::new(), Vec::new());
    if let Some(i) = find(stored.block) {
        block_actions(rule, i, "", &mut then);
    }
    let other = BlockRef {
        step: stored.block.step,
        branch: Branch::Else,
    };
    if let Some(i) = find(other) {
        block_actions(rule, i, "", &mut otherwise);
    }
    Some((then, otherwise))
}

/// What block `block` of a rule runs, as action names: `maybe X` where a
/// condition decides, `later X` in a timer's block, `each tick X` in a
/// schedule's, `ask R` for an approval; each after `prefix`.
pub fn block_actions(
    rule: &crate::engine::program::Rule,
    block: usize,
    prefix: &str,
    out: &mut Vec<String>,
) {
    use crate::engine::program::{Op, Rule};
    fn walk(rule: &Rule, ops: &[Op], prefix: &str, out: &mut Vec<String>, depth: u32) {
        if depth > 16 {
            return;
        }
        for op in ops {
            match op {
                Op::Let(_) | Op::Stop => {}
                Op::Act(a) => match &a.emit {
                    Some((event_type, _)) => out.push(format!("{prefix}emit {event_type}")),
                    None => out.push(format!("{prefix}{}", a.action)),
                },
                Op::If {
                    branches,
                    otherwise,
                } => {
                    let maybe = format!("{prefix}maybe ");
                    for (_, ops) in branches {
                        walk(rule, ops, &maybe, out, depth + 1);
                    }
                    walk(rule, otherwise, &maybe, out, depth + 1);
                }
                Op::Timer(t) => {
                    if let Some(ops) = rule.blocks.get(t.block) {
                        walk(rule, ops, &format!("{prefix}later "), out, depth + 1);
                    }
                }
                Op::Every(i) => {
                    let block = rule.repeats.get(*i).and_then(|r| rule.blocks.get(r.block));
                    if let Some(ops) = block {
                        walk(rule, ops, &format!("{prefix}each tick "), out, depth + 1);
                    }
                }
                Op::Approval(a) => out.push(format!("{prefix}ask {}", a.role)),
            }
        }
    }
    if let Some(ops) = rule.blocks.get(block) {
        walk(rule, ops, prefix, out, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(rule: &str, event: &str, n: i64) -> Action {
        let mut args = serde_json::Map::new();
        args.insert("n".into(), json!(n));
        Action {
            at: chrono::DateTime::UNIX_EPOCH,
            tenant: Arc::from("t"),
            event: Arc::from(event),
            rule: Arc::from(rule),
            action: Arc::from("log"),
            args,
            key_parts: crate::engine::action::KeyParts {
                tenant: Arc::from("t"),
                rule: Arc::from(rule),
                version: Arc::from("v"),
                source: Arc::from(event),
                pos: 0,
            },
        }
    }

    /// Actions compare as multisets: a second identical action in the
    /// candidate is added, not unchanged; arguments make a difference.
    #[test]
    fn a_backtest_diff_counts_each_action() {
        let active = vec![act("r", "e1", 1), act("r", "e2", 1), act("s", "e1", 1)];
        let candidate = vec![
            act("s", "e1", 1),
            act("r", "e1", 1),
            act("r", "e1", 1),
            act("r", "e2", 2),
        ];
        let diff = diff_actions(active, candidate);
        assert_eq!(diff.unchanged, 2);
        let show = |v: &[Action]| -> Vec<String> {
            v.iter()
                .map(|a| format!("{} {} {}", a.rule, a.event, Json::Object(a.args.clone())))
                .collect()
        };
        assert_eq!(show(&diff.added), ["r e1 {\"n\":1}", "r e2 {\"n\":2}"]);
        assert_eq!(show(&diff.removed), ["r e2 {\"n\":1}"]);
    }
}
