//! Runs `test` blocks: each test gets a fresh engine on an in-memory store,
//! with the virtual clock at [`TEST_START`], and runs its steps in order.
//! Expectations consume the actions they match, so `expect send welcome`
//! twice needs two welcomes; `expect no ...` and `expect nothing` look at the
//! actions not matched yet. A rule error during a test fails it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value as Json};

use super::decode::{decode_payload, Event};
use super::runtime::{Action, Collect, Engine};
use super::store::{MemoryStore, Store};
use super::value::{show_datetime, show_duration};
use super::Ruleset;
use crate::check::actions::ParamType;
use crate::check::Analysis;
use crate::syntax::ast::{
    Expr, ExprKind, Item, Name, TestDecl, TestRecord, TestStepKind, TestValue, UnaryOp,
};

/// Where the virtual clock of every test starts.
pub const TEST_START: &str = "2026-01-01T00:00:00Z";

/// How many actions (and rule errors) one test may produce before it fails:
/// a test that schedules millions of ticks fails clearly instead of filling
/// the memory.
pub const MAX_KEPT: usize = 10_000;

fn test_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(TEST_START)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// The tenant test events belong to.
pub const TEST_TENANT: &str = "test";

#[derive(Clone, Debug)]
pub struct TestResult {
    pub name: String,
    /// `file:line` of the test.
    pub location: String,
    pub failures: Vec<String>,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs every test of the program's user files.
pub fn run_tests(analysis: &Analysis, rules: &Arc<Ruleset>) -> Vec<TestResult> {
    let mut results = Vec::new();
    for file in analysis.user_files() {
        let source = analysis.sources.get(file.id);
        for item in &file.tree.items {
            if let Item::Test(t) = item {
                let line = |offset: u32| source.lines.line_col(offset).line + 1;
                let mut runner = Runner::new(rules.clone());
                runner.run(t, &line, source.text.as_ref());
                results.push(TestResult {
                    name: t.name.value.clone(),
                    location: format!("{}:{}", source.name, line(t.span.start)),
                    failures: runner.failures,
                });
            }
        }
    }
    results
}

struct Runner {
    engine: Engine<MemoryStore>,
    sink: Collect,
    /// Which of `sink.actions` an expectation has matched.
    matched: Vec<bool>,
    errors_seen: usize,
    events: u32,
    failures: Vec<String>,
}

impl Runner {
    fn new(rules: Arc<Ruleset>) -> Runner {
        let mut engine = Engine::new(rules, MemoryStore::new());
        engine.add_tenant(&Arc::from(TEST_TENANT));
        // A test may wait for years; what it may keep is bounded instead.
        engine.limits.horizon = chrono::Duration::days(36_600);
        let mut sink = Collect::with_limit(MAX_KEPT);
        let start = test_start();
        // The clock is unset: there is no horizon to pass.
        let _ = engine.advance_to(start, &mut sink);
        Runner {
            engine,
            sink,
            matched: Vec::new(),
            errors_seen: 0,
            events: 0,
            failures: Vec::new(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.engine.now().unwrap_or_default()
    }

    fn run(&mut self, t: &TestDecl, line: &dyn Fn(u32) -> u32, text: &str) {
        for step in &t.steps {
            let at = line(step.span.start);
            let written = text.get(step.span.range()).unwrap_or("").trim();
            if let Err(message) = self.step(&step.kind) {
                self.failures
                    .push(format!("line {at}: `{written}`\n      {message}"));
            }
            self.matched.resize(self.sink.actions.len(), false);
            for e in self.sink.errors.get(self.errors_seen..).unwrap_or(&[]) {
                self.failures.push(format!(
                    "line {at}: rule `{}` failed on event `{}`: {}",
                    e.rule, e.event, e.message
                ));
            }
            self.errors_seen = self.sink.errors.len();
            if self.sink.dropped > 0 {
                self.failures.push(format!(
                    "line {at}: the test stopped here: it performed more than {MAX_KEPT} actions \
                     and rule errors (a schedule firing through a long wait?)"
                ));
                return;
            }
        }
    }

    /// Runs one step of a test; what went wrong, when something did.
    fn step(&mut self, step: &TestStepKind) -> Result<(), String> {
        match step {
            TestStepKind::Given {
                partial,
                event,
                key,
                payload,
            } => self.given(*partial, event, key.as_ref(), payload),
            TestStepKind::Wait { until, value } => self.wait(*until, value),
            TestStepKind::Decide { approve } => self.decide(*approve),
            TestStepKind::Expect {
                negated,
                action,
                target,
                args,
            } => self.expect_action(*negated, action, target.as_ref(), args.as_ref()),
            TestStepKind::ExpectNothing => self.expect_nothing(),
        }
    }

    /// `given event.type { ... }`: the event handled now.
    fn given(
        &mut self,
        partial: bool,
        event: &Name,
        key: Option<&Expr>,
        payload: &TestRecord,
    ) -> Result<(), String> {
        let shapes = self.engine.rules.shapes();
        let record = *shapes
            .events
            .get(&event.text)
            .ok_or_else(|| format!("no event `{}`", event.text))?;
        let payload = decode_payload(shapes, record, &payload_text(payload)?, partial)
            .map_err(|e| format!("the payload is rejected: {e}"))?;
        let key = match key {
            Some(k) => match literal(k)? {
                Json::String(s) => Some(Arc::from(s.as_str())),
                other => return Err(format!("a key is text, not {other}")),
            },
            None => None,
        };
        self.events += 1;
        let event = Event {
            id: Arc::from(format!("test-{}", self.events)),
            tenant: Arc::from(TEST_TENANT),
            event_type: Arc::from(event.text.as_str()),
            occurred_at: self.now(),
            key,
            payload,
            previous: None,
        };
        self.engine
            .handle(event, &mut self.sink)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// `wait 2d` or `wait until TIME`: the clock moved forward, the timers
    /// due by then run.
    fn wait(&mut self, until: bool, value: &Expr) -> Result<(), String> {
        let to = match (until, literal(value)?) {
            (false, Json::String(d)) => {
                let ms = super::decode::parse_duration(&d)
                    .ok_or_else(|| format!("`{d}` is not a duration"))?;
                super::value::add_ms(self.now(), ms)
                    .ok_or_else(|| format!("`wait {d}` goes past the end of the calendar"))?
            }
            (true, Json::String(t)) => DateTime::parse_from_rfc3339(&t)
                .map_err(|_| format!("`{t}` is not a time"))?
                .with_timezone(&Utc),
            (_, other) => return Err(format!("cannot wait for {other}")),
        };
        if to < self.now() {
            return Err(format!(
                "the clock is already at {}; tests cannot go back in time",
                show_datetime(&self.now())
            ));
        }
        self.engine
            .advance_to(to, &mut self.sink)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// `approve` or `reject`: the oldest pending approval decided.
    fn decide(&mut self, approve: bool) -> Result<(), String> {
        let pending = self
            .engine
            .store
            .pending_approvals()
            .map_err(|e| e.to_string())?;
        let Some(first) = pending.first() else {
            return Err("no approval is pending".to_string());
        };
        let now = self.now();
        self.engine
            .decide(&first.id, approve, "test", now, &mut self.sink)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// `expect ACTION ...` (or `expect no ...`): an action not matched
    /// before that matches was performed (or none was).
    fn expect_action(
        &mut self,
        negated: bool,
        action: &Name,
        target: Option<&Name>,
        args: Option<&TestRecord>,
    ) -> Result<(), String> {
        let args = args.map(record_json).transpose()?;
        let want = Want {
            action: &action.text,
            target: target.map(|t| t.text.as_str()),
            args: args.as_ref(),
        };
        self.matched.resize(self.sink.actions.len(), false);
        let found = self
            .sink
            .actions
            .iter()
            .enumerate()
            .find(|(i, a)| self.matched.get(*i) == Some(&false) && want.matches(a));
        match (negated, found) {
            (false, Some((i, _))) => {
                if let Some(matched) = self.matched.get_mut(i) {
                    *matched = true;
                }
                Ok(())
            }
            (false, None) => Err(format!(
                "no such action was performed. {}",
                self.unmatched_list()
            )),
            (true, None) => Ok(()),
            (true, Some((_, action))) => Err(format!("it was performed: {}", show_action(action))),
        }
    }

    /// `expect nothing`: every action performed was matched.
    fn expect_nothing(&mut self) -> Result<(), String> {
        self.matched.resize(self.sink.actions.len(), false);
        if self.matched.iter().all(|m| *m) {
            Ok(())
        } else {
            Err(format!("actions were performed. {}", self.unmatched_list()))
        }
    }

    fn unmatched_list(&self) -> String {
        let list: Vec<String> = self
            .sink
            .actions
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.matched.get(*i).copied().unwrap_or(false))
            .map(|(_, a)| format!("\n        {}", show_action(a)))
            .collect();
        let total = list.len();
        let mut list = list;
        if total > 10 {
            list.truncate(10);
            list.push(format!("\n        ... and {} more", total - 10));
        }
        if list.is_empty() {
            "No action is left unmatched.".to_string()
        } else {
            format!("Actions not matched yet:{}", list.join(""))
        }
    }
}

fn show_action(a: &Action) -> String {
    format!(
        "{} {} at {} (rule `{}`, event `{}`)",
        a.action,
        Json::Object(a.args.clone()),
        show_datetime(&a.at),
        a.rule,
        a.event
    )
}

struct Want<'a> {
    action: &'a str,
    target: Option<&'a str>,
    args: Option<&'a Map<String, Json>>,
}

impl Want<'_> {
    fn matches(&self, a: &Action) -> bool {
        if &*a.action != self.action {
            return false;
        }
        // What the action's declaration says: the target is its first
        // argument, and expected fields are matched inside a payload.
        let builtin = crate::check::actions::builtin(self.action);
        let target_field = builtin.and_then(|b| b.target()).map(|p| p.name);
        let payload = builtin
            .and_then(|b| b.params.iter().find(|p| p.ty == ParamType::Payload))
            .and_then(|p| a.args.get(p.name));
        let actual = match payload {
            Some(Json::Object(p)) => p,
            _ => &a.args,
        };
        if let (Some(t), Some(field)) = (self.target, target_field) {
            if a.args.get(field).and_then(Json::as_str) != Some(t) {
                return false;
            }
        }
        self.args.is_none_or(|want| {
            want.iter().all(|(k, v)| match actual.get(k) {
                Some(got) => json_match(v, got),
                // `at` is when the action was performed.
                None if k == "at" => json_match(v, &Json::String(show_datetime(&a.at))),
                None => false,
            })
        })
    }
}

/// Whether `got` is what `want` asks for: objects by their given fields,
/// numbers by value (decimals travel as text).
fn json_match(want: &Json, got: &Json) -> bool {
    let number = |j: &Json| -> Option<Decimal> {
        match j {
            Json::Number(n) => n.to_string().parse().ok(),
            Json::String(s) => s.parse().ok(),
            _ => None,
        }
    };
    match (want, got) {
        (Json::Object(w), Json::Object(g)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|x| json_match(v, x))),
        (Json::Array(w), Json::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| json_match(a, b))
        }
        (Json::Number(_), _) => number(want).is_some() && number(want) == number(got),
        (Json::String(w), Json::Number(_)) => {
            number(got).is_some() && w.parse().ok() == number(got)
        }
        _ => want == got,
    }
}

fn record_json(r: &TestRecord) -> Result<Map<String, Json>, String> {
    let mut map = Map::new();
    for f in &r.fields {
        let v = match &f.value {
            TestValue::Expr(e) => literal(e)?,
            TestValue::Record(inner) => Json::Object(record_json(inner)?),
        };
        map.insert(f.name.text.clone(), v);
    }
    Ok(map)
}

/// A `given` payload as the JSON text an event source would send, numbers
/// as written (`240.00` keeps its places for a `decimal`).
fn payload_text(r: &TestRecord) -> Result<String, String> {
    let mut out = String::from("{");
    for (i, f) in r.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Json::String(f.name.text.clone()).to_string());
        out.push(':');
        match &f.value {
            TestValue::Expr(e) => out.push_str(&literal_text(e)?),
            TestValue::Record(inner) => out.push_str(&payload_text(inner)?),
        }
    }
    out.push('}');
    Ok(out)
}

fn literal_text(e: &Expr) -> Result<String, String> {
    Ok(match &e.kind {
        ExprKind::Number(text) => text.clone(),
        ExprKind::Paren(inner) => literal_text(inner)?,
        ExprKind::Unary(UnaryOp::Neg, inner) if matches!(inner.kind, ExprKind::Number(_)) => {
            format!("-{}", literal_text(inner)?)
        }
        ExprKind::List(items) => {
            let items: Vec<String> = items.iter().map(literal_text).collect::<Result<_, _>>()?;
            format!("[{}]", items.join(","))
        }
        _ => literal(e)?.to_string(),
    })
}

/// A test value: a literal, as JSON (what an event source would send).
fn literal(e: &Expr) -> Result<Json, String> {
    Ok(match &e.kind {
        ExprKind::Int(i) => Json::from(*i),
        ExprKind::Number(text) => {
            serde_json::from_str(text).map_err(|_| format!("`{text}` is not a number"))?
        }
        ExprKind::Str(t) => match t.as_plain() {
            Some(s) => Json::String(s),
            None => return Err("test values are literals: no `{...}` in text".to_string()),
        },
        ExprKind::Bool(b) => Json::Bool(*b),
        ExprKind::None => Json::Null,
        ExprKind::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
        ExprKind::DateTime(t) => Json::String(show_datetime(&t.with_timezone(&Utc))),
        ExprKind::Duration(ms) => Json::String(show_duration(*ms)),
        ExprKind::List(items) => Json::Array(items.iter().map(literal).collect::<Result<_, _>>()?),
        ExprKind::Paren(inner) => literal(inner)?,
        ExprKind::Unary(UnaryOp::Neg, inner) => match literal(inner)? {
            Json::Number(n) => serde_json::from_str(&format!("-{n}"))
                .map_err(|_| format!("`-{n}` is not a number"))?,
            Json::String(d) if super::decode::parse_duration(&d).is_some() => {
                Json::String(format!("-{d}"))
            }
            _ => return Err("only numbers and durations can be negated".to_string()),
        },
        _ => {
            return Err(
                "test values are literals (text, numbers, dates, times, durations, lists, records)"
                    .to_string(),
            )
        }
    })
}
