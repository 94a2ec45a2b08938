//! The stored form of suspended work: a continuation (what a timer or an
//! approval resumes) as data a database can keep, and the registry of
//! ruleset versions it resumes under.
//!
//! A stored continuation names everything by what is stable across
//! compiles: the ruleset version, the rule's name, the block by the step id
//! of the statement that owns it ([`BlockRef`]), records by their type's
//! name. Values round-trip exactly: floats by their bits, decimals with
//! their scale, times to the nanosecond. Resuming finds the version that
//! created the continuation; a version, rule or step that no longer exists
//! cancels it with a reason, never resumes it elsewhere.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::decode::{Event, Shapes};
use super::lower::Ruleset;
use super::program::{BlockRef, Branch};
use super::runtime::envelope_record;
use super::store::Continuation;
use super::value::{Record, Value};

/// A value as stored: tagged by kind, exact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredValue {
    None,
    Bool(bool),
    Int(i64),
    /// The IEEE 754 bits, so every float (negative zero included) comes back.
    Float(u64),
    /// As text, keeping its scale (`240.00`).
    Decimal(String),
    Str(String),
    /// `YYYY-MM-DD`.
    Date(String),
    /// RFC 3339 with as many fraction digits as it has.
    DateTime(String),
    /// Milliseconds.
    Duration(i64),
    List(Vec<StoredValue>),
    /// A record by its type's name (an event's by the event type) and its
    /// fields in declaration order.
    Record {
        record: String,
        fields: Vec<StoredValue>,
    },
}

/// An event as stored with its continuation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub id: String,
    pub tenant: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: String,
    pub key: Option<String>,
    pub payload: StoredValue,
}

/// A continuation as stored: where to resume, under which version, with
/// the event and the `let`s in scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredContinuation {
    pub version: String,
    pub rule: String,
    pub block: BlockRef,
    pub event: StoredEvent,
    pub locals: Vec<StoredValue>,
}

/// Why stored work cannot resume: it is cancelled with this reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Cancelled {
    #[error("ruleset version `{0}` is not loaded")]
    UnknownVersion(String),
    #[error("rule `{rule}` no longer exists in version `{version}`")]
    NoRule { rule: String, version: String },
    #[error("rule `{rule}` has no step {step} ({branch:?}) in version `{version}`")]
    NoStep {
        rule: String,
        step: u32,
        branch: super::program::Branch,
        version: String,
    },
    #[error("the stored value does not fit: {0}")]
    BadValue(String),
}

/// The stored form of `cont`, suspended under `rules`.
pub fn store(rules: &Ruleset, cont: &Continuation) -> StoredContinuation {
    let shapes = rules.shapes();
    let (rule, block) = match rules
        .rules
        .get(cont.rule)
        .and_then(|r| Some((r, *r.block_steps.get(cont.block)?)))
    {
        Some((rule, block)) => (rule.name.to_string(), block),
        // Not a block of the ruleset (the engine makes none): stored under
        // no rule, so that resuming it cancels it (`Cancelled::NoRule`)
        // instead of running another block.
        None => (
            String::new(),
            BlockRef {
                step: 0,
                branch: Branch::Body,
            },
        ),
    };
    StoredContinuation {
        version: rules.version.clone(),
        rule,
        block,
        event: StoredEvent {
            id: cont.event.id.to_string(),
            tenant: cont.event.tenant.to_string(),
            event_type: cont.event.event_type.to_string(),
            occurred_at: show_time(&cont.event.occurred_at),
            key: cont.event.key.as_deref().map(String::from),
            payload: value_to_stored(shapes, &Value::Record(cont.event.payload.clone())),
        },
        locals: cont
            .locals
            .iter()
            .map(|v| value_to_stored(shapes, v))
            .collect(),
    }
}

/// The loaded ruleset versions: stored work resumes under the version that
/// created it, even after a newer one is deployed.
#[derive(Default)]
pub struct Versions {
    by_version: HashMap<String, Arc<Ruleset>>,
}

impl Versions {
    pub fn new() -> Versions {
        Versions::default()
    }

    pub fn insert(&mut self, rules: Arc<Ruleset>) {
        self.by_version.insert(rules.version.clone(), rules);
    }

    pub fn get(&self, version: &str) -> Option<&Arc<Ruleset>> {
        self.by_version.get(version)
    }

    /// The continuation `stored` names, with the ruleset it runs under.
    pub fn resume(
        &self,
        stored: &StoredContinuation,
    ) -> Result<(Arc<Ruleset>, Continuation), Cancelled> {
        let rules = self
            .get(&stored.version)
            .ok_or_else(|| Cancelled::UnknownVersion(stored.version.clone()))?;
        let (rule, found) = rules
            .rules
            .iter()
            .enumerate()
            .find(|(_, r)| *r.name == *stored.rule)
            .ok_or_else(|| Cancelled::NoRule {
                rule: stored.rule.clone(),
                version: stored.version.clone(),
            })?;
        let block = found
            .block_steps
            .iter()
            .position(|b| *b == stored.block)
            .ok_or_else(|| Cancelled::NoStep {
                rule: stored.rule.clone(),
                step: stored.block.step,
                branch: stored.block.branch,
                version: stored.version.clone(),
            })?;
        let shapes = rules.shapes();
        let payload = match stored_to_value(shapes, &stored.event.payload)? {
            Value::Record(r) => r,
            other => {
                return Err(Cancelled::BadValue(format!(
                    "the payload is a {}, not a record",
                    other.kind()
                )))
            }
        };
        let e = &stored.event;
        let event = Arc::new(Event {
            id: Arc::from(e.id.as_str()),
            tenant: Arc::from(e.tenant.as_str()),
            event_type: Arc::from(e.event_type.as_str()),
            occurred_at: parse_time(&e.occurred_at)?,
            key: e.key.as_deref().map(Arc::from),
            payload,
            previous: None,
        });
        let locals = stored
            .locals
            .iter()
            .map(|v| stored_to_value(shapes, v))
            .collect::<Result<_, _>>()?;
        let cont = Continuation {
            rules: rules.clone(),
            rule,
            block,
            envelope: envelope_record(shapes, &event),
            event,
            locals,
        };
        Ok((rules.clone(), cont))
    }
}

fn show_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, Cancelled> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Cancelled::BadValue(format!("`{text}` is not an RFC 3339 time")))
}

/// A runtime value in its stored form.
pub fn value_to_stored(shapes: &Shapes, value: &Value) -> StoredValue {
    match value {
        Value::None => StoredValue::None,
        Value::Bool(b) => StoredValue::Bool(*b),
        Value::Int(i) => StoredValue::Int(*i),
        Value::Float(x) => StoredValue::Float(x.to_bits()),
        Value::Decimal(d) => StoredValue::Decimal(d.to_string()),
        Value::Str(s) => StoredValue::Str(s.to_string()),
        Value::Date(d) => StoredValue::Date(d.format("%Y-%m-%d").to_string()),
        Value::DateTime(t) => StoredValue::DateTime(show_time(t)),
        Value::Duration(ms) => StoredValue::Duration(*ms),
        Value::List(items) => {
            StoredValue::List(items.iter().map(|v| value_to_stored(shapes, v)).collect())
        }
        Value::Record(r) => StoredValue::Record {
            record: shapes.record(r.shape).name.clone(),
            fields: r.slots.iter().map(|v| value_to_stored(shapes, v)).collect(),
        },
    }
}

/// A stored value back in its runtime form, laid out by `shapes`.
pub fn stored_to_value(shapes: &Shapes, stored: &StoredValue) -> Result<Value, Cancelled> {
    let bad = |what: String| Cancelled::BadValue(what);
    Ok(match stored {
        StoredValue::None => Value::None,
        StoredValue::Bool(b) => Value::Bool(*b),
        StoredValue::Int(i) => Value::Int(*i),
        StoredValue::Float(bits) => Value::Float(f64::from_bits(*bits)),
        StoredValue::Decimal(text) => Value::Decimal(
            Decimal::from_str_exact(text).map_err(|_| bad(format!("`{text}` is not a decimal")))?,
        ),
        StoredValue::Str(s) => Value::str(s),
        StoredValue::Date(text) => Value::Date(
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| bad(format!("`{text}` is not a date")))?,
        ),
        StoredValue::DateTime(text) => Value::DateTime(parse_time(text)?),
        StoredValue::Duration(ms) => Value::Duration(*ms),
        StoredValue::List(items) => Value::List(
            items
                .iter()
                .map(|v| stored_to_value(shapes, v))
                .collect::<Result<Vec<_>, _>>()?
                .into(),
        ),
        StoredValue::Record { record, fields } => {
            let (shape, found) = shapes
                .records
                .iter()
                .enumerate()
                .find(|(_, r)| r.name == *record)
                .ok_or_else(|| bad(format!("no record `{record}`")))?;
            let declared = found.fields.len();
            if declared != fields.len() {
                return Err(bad(format!(
                    "`{record}` has {declared} fields, the stored value {}",
                    fields.len()
                )));
            }
            Value::Record(Arc::new(Record {
                shape: u32::try_from(shape).map_err(|_| bad("too many records".into()))?,
                slots: fields
                    .iter()
                    .map(|v| stored_to_value(shapes, v))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_boxed_slice(),
            }))
        }
    })
}
