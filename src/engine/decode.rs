//! From JSON text straight to slot-laid-out records, by the declared schema.
//!
//! There is no intermediate `serde_json::Value`: a [`serde::de::DeserializeSeed`]
//! walks the text with the shape of the event in hand, puts each field in its
//! slot, skips fields the schema does not declare, and stops at the first
//! mismatch with its path (`payload.guest.risk: expected float, found string`).

use foldhash::HashMap;
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::value::{same_text, Record, Value};
use crate::check::stdlib;
use crate::check::types::{quoted_members, Program, RecordId, Type};

/// The layout of a value of a declared type.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Bool,
    Int,
    Float,
    Decimal,
    Str,
    /// Members are shared, so a decoded member is a reference count, not a copy.
    Union(Arc<[Arc<str>]>),
    Date,
    DateTime,
    Duration,
    List(Box<Shape>),
    Record(RecordId),
    Optional(Box<Shape>),
}

impl Shape {
    pub fn of(ty: &Type) -> Shape {
        match ty {
            Type::Int => Shape::Int,
            Type::Float | Type::Number => Shape::Float,
            Type::Decimal => Shape::Decimal,
            Type::Bool => Shape::Bool,
            Type::String => Shape::Str,
            Type::Union(m) => Shape::Union(m.iter().map(|m| Arc::from(m.as_str())).collect()),
            Type::Date => Shape::Date,
            Type::DateTime => Shape::DateTime,
            Type::Duration => Shape::Duration,
            Type::List(t) => Shape::List(Box::new(Shape::of(t))),
            Type::Record(id) => Shape::Record(*id),
            Type::Optional(t) => Shape::Optional(Box::new(Shape::of(t))),
            // Not the type of a declared field; the checker rejects these.
            Type::None | Type::Var(_) | Type::Error => Shape::Str,
        }
    }
}

#[derive(Clone, Debug)]
pub struct RecordShape {
    pub name: String,
    pub fields: Vec<(Arc<str>, Shape)>,
    /// Slot numbers in the order of the fields' names, for JSON output.
    pub sorted: Vec<usize>,
}

static NO_RECORD: RecordShape = RecordShape {
    name: String::new(),
    fields: Vec::new(),
    sorted: Vec::new(),
};

impl RecordShape {
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.fields
            .iter()
            .position(|(n, _)| same_text(n.as_bytes(), name.as_bytes()))
    }
}

/// Every record layout of a program, and which one each event type uses.
#[derive(Clone, Debug)]
pub struct Shapes {
    pub records: Vec<RecordShape>,
    pub events: HashMap<String, RecordId>,
    /// The event type of each event's record, shared by its decoded events.
    pub type_names: Vec<Option<Arc<str>>>,
    pub envelope: RecordId,
}

impl Shapes {
    pub fn new(program: &Program) -> Shapes {
        let records = program
            .records
            .iter()
            .map(|r| {
                let mut by_name: Vec<_> = r.fields.iter().enumerate().collect();
                by_name.sort_by(|(_, a), (_, b)| a.name.cmp(&b.name));
                let sorted = by_name.into_iter().map(|(i, _)| i).collect();
                RecordShape {
                    name: r.name.clone(),
                    fields: r
                        .fields
                        .iter()
                        .map(|f| (Arc::from(f.name.as_str()), Shape::of(&f.ty)))
                        .collect(),
                    sorted,
                }
            })
            .collect();
        let mut type_names = vec![None; program.records.len()];
        for (name, id) in &program.events {
            if let Some(slot) = type_names.get_mut(*id as usize) {
                *slot = Some(Arc::from(name.as_str()));
            }
        }
        Shapes {
            records,
            type_names,
            events: program
                .events
                .iter()
                .map(|(name, id)| (name.clone(), *id))
                .collect(),
            envelope: program
                .types
                .get(stdlib::ENVELOPE_TYPE)
                .copied()
                .unwrap_or_default(),
        }
    }

    /// The shape of record `id`; an id the program does not have (none
    /// does) reads as a record of no fields.
    pub fn record(&self, id: RecordId) -> &RecordShape {
        self.records.get(id as usize).unwrap_or(&NO_RECORD)
    }

    /// The value a partial test payload gets for a field it leaves out.
    pub fn zero(&self, shape: &Shape) -> Value {
        match shape {
            Shape::Bool => Value::Bool(false),
            Shape::Int => Value::Int(0),
            Shape::Float => Value::Float(0.0),
            Shape::Decimal => Value::Decimal(Decimal::ZERO),
            Shape::Str => Value::str(""),
            Shape::Union(members) => {
                Value::Str(members.first().cloned().unwrap_or_else(|| "".into()))
            }
            Shape::Date => Value::Date(NaiveDate::default()),
            Shape::DateTime => Value::DateTime(DateTime::<Utc>::default()),
            Shape::Duration => Value::Duration(0),
            Shape::List(_) => Value::List(Arc::from(Vec::new())),
            Shape::Optional(_) => Value::None,
            Shape::Record(id) => {
                let rec = self.record(*id);
                Value::Record(Arc::new(Record {
                    shape: *id,
                    slots: rec.fields.iter().map(|(_, s)| self.zero(s)).collect(),
                }))
            }
        }
    }

    /// A value as JSON, for action arguments and emitted payloads. Decimals
    /// are strings (exact); dates, times and durations are strings as well.
    pub fn to_json(&self, value: &Value) -> serde_json::Value {
        serde_json::to_value(self.json(value)).unwrap_or(serde_json::Value::Null)
    }

    /// A value as JSON to serialize without building a `serde_json::Value`:
    /// what `to_json` gives, written straight to the output.
    pub fn json<'a>(&'a self, value: &'a Value) -> Json<'a> {
        Json {
            value,
            shapes: self,
        }
    }
}

/// See [`Shapes::json`]. Object keys come out sorted, as in a
/// `serde_json::Map`.
pub struct Json<'a> {
    value: &'a Value,
    shapes: &'a Shapes,
}

impl serde::Serialize for Json<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.value {
            Value::None => s.serialize_none(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(x) if x.is_finite() => s.serialize_f64(*x),
            Value::Float(_) => s.serialize_none(),
            Value::Str(text) => s.serialize_str(text),
            Value::Decimal(_) | Value::Date(_) | Value::DateTime(_) | Value::Duration(_) => {
                s.collect_str(self.value)
            }
            Value::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items.iter() {
                    seq.serialize_element(&self.shapes.json(item))?;
                }
                seq.end()
            }
            Value::Record(r) => {
                let shape = self.shapes.record(r.shape);
                let mut map = s.serialize_map(Some(r.slots.len()))?;
                for &i in &shape.sorted {
                    if let (Some((name, _)), Some(v)) = (shape.fields.get(i), r.slots.get(i)) {
                        map.serialize_entry(&**name, &self.shapes.json(v))?;
                    }
                }
                map.end()
            }
        }
    }
}

/// Why a payload or an envelope was rejected: where, and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub path: String,
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl std::error::Error for DecodeError {}

/// A decoded event: the envelope's fields and the typed payload.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: Arc<str>,
    pub tenant: Arc<str>,
    pub event_type: Arc<str>,
    pub occurred_at: DateTime<Utc>,
    pub key: Option<Arc<str>>,
    pub payload: Arc<Record>,
    /// The entity's values before the change the event reports, when its
    /// source knows them (`steward pg capture` gives an update's old row):
    /// what `previous` reads when nothing was remembered for the key yet.
    pub previous: Option<Arc<Record>>,
}

impl Event {
    /// The key timers and ordering use: the envelope's `key`, else the id.
    pub fn timer_key(&self) -> &Arc<str> {
        self.key.as_ref().unwrap_or(&self.id)
    }
}

/// Texts are borrowed from the line unless they have escapes.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    tenant: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    occurred_at: Cow<'a, str>,
    #[serde(default, borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(default, borrow)]
    previous: Option<&'a RawValue>,
}

/// Decodes one envelope (DESIGN.md) and its payload by the declared schema.
pub fn decode_event(shapes: &Shapes, text: &str) -> Result<Event, DecodeError> {
    let raw: RawEnvelope = serde_json::from_str(text).map_err(|_| envelope_error(text))?;
    let occurred_at = DateTime::parse_from_rfc3339(&raw.occurred_at)
        .map_err(|_| DecodeError {
            path: "occurred_at".to_string(),
            reason: format!(
                "expected an RFC 3339 time such as \"2026-11-20T10:00:00Z\", found \"{}\"",
                raw.occurred_at
            ),
        })?
        .with_timezone(&Utc);
    let Some(&record) = shapes.events.get(&*raw.event_type) else {
        return Err(DecodeError {
            path: "type".to_string(),
            reason: format!("no event `{}` is declared", raw.event_type),
        });
    };
    let payload = decode_payload(shapes, record, raw.payload.get(), false)?;
    // The values before the change are a hint: ones that do not fit the
    // schema are not used, and do not reject the event.
    let previous = raw
        .previous
        .filter(|p| p.get() != "null")
        .and_then(|p| decode_payload(shapes, record, p.get(), false).ok());
    Ok(Event {
        id: Arc::from(&*raw.id),
        tenant: Arc::from(&*raw.tenant),
        event_type: match shapes.type_names.get(record as usize) {
            Some(Some(name)) => name.clone(),
            _ => Arc::from(&*raw.event_type),
        },
        occurred_at,
        key: raw.key.as_deref().map(Arc::from),
        payload,
        previous,
    })
}

/// Decodes a payload of the record `record`. With `partial`, fields left out
/// get zero values (`""`, `0`, `false`, the first union member) instead of
/// being an error: for tests that only care about a few fields.
pub fn decode_payload(
    shapes: &Shapes,
    record: RecordId,
    text: &str,
    partial: bool,
) -> Result<Arc<Record>, DecodeError> {
    let cx = Cx {
        shapes,
        partial,
        error: RefCell::new(None),
    };
    let shape = Shape::Record(record);
    let root = Path::Root("payload");
    let mut de = serde_json::Deserializer::from_str(text);
    let result = Seed {
        cx: &cx,
        shape: &shape,
        path: &root,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match result {
        Ok(Value::Record(r)) => Ok(r),
        Ok(other) => Err(DecodeError {
            path: "payload".to_string(),
            reason: format!("expected an object, found {}", other.kind()),
        }),
        Err(e) => Err(cx.error.into_inner().unwrap_or_else(|| DecodeError {
            path: "payload".to_string(),
            reason: serde_reason(&e),
        })),
    }
}

/// Why an envelope was refused, with the path of the field at fault (found
/// again, more slowly, only once the fast parse failed).
fn envelope_error(text: &str) -> DecodeError {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') {
        let reason = match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => "expected a JSON object (an envelope), found another JSON value".to_string(),
            Err(e) => format!("the line is not JSON: {}", serde_reason(&e)),
        };
        return DecodeError {
            path: "envelope".to_string(),
            reason,
        };
    }
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, RawEnvelope>(&mut de) {
        Ok(_) => DecodeError {
            path: "envelope".to_string(),
            reason: "could not be read".to_string(),
        },
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let reason = if inner.is_syntax() || inner.is_eof() {
                format!("the line is not JSON: {}", serde_reason(&inner))
            } else {
                serde_reason(&inner)
            };
            DecodeError {
                path: if path == "." || inner.is_syntax() || inner.is_eof() {
                    "envelope".to_string()
                } else {
                    path
                },
                reason,
            }
        }
    }
}

/// serde_json's message without its " at line 1 column 9" tail.
fn serde_reason(e: &serde_json::Error) -> String {
    serde_reason_of(e)
}

fn serde_reason_of(e: &impl fmt::Display) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text.get(..i).unwrap_or("").to_string(),
        None => text,
    }
}

struct Cx<'s> {
    shapes: &'s Shapes,
    partial: bool,
    /// The first error, with its path; serde's own error only unwinds.
    error: RefCell<Option<DecodeError>>,
}

#[derive(Clone, Copy)]
enum Path<'a> {
    Root(&'a str),
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root(name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

#[derive(Clone, Copy)]
struct Seed<'a> {
    cx: &'a Cx<'a>,
    shape: &'a Shape,
    path: &'a Path<'a>,
}

impl Seed<'_> {
    fn fail<E: de::Error>(&self, reason: String) -> E {
        let mut slot = self.cx.error.borrow_mut();
        if slot.is_none() {
            *slot = Some(DecodeError {
                path: self.path.to_string(),
                reason,
            });
        }
        E::custom("rejected")
    }

    fn expected(&self) -> String {
        match self.shape {
            Shape::Bool => "bool".into(),
            Shape::Int => "int".into(),
            Shape::Float => "float".into(),
            Shape::Decimal => "decimal".into(),
            Shape::Str => "string".into(),
            Shape::Union(m) => format!("one of {}", quoted_members(m)),
            Shape::Date => "date".into(),
            Shape::DateTime => "datetime".into(),
            Shape::Duration => "duration".into(),
            Shape::List(_) => "list".into(),
            Shape::Record(id) => format!("object ({})", self.cx.shapes.record(*id).name),
            Shape::Optional(_) => "optional".into(),
        }
    }

    fn mismatch<E: de::Error>(&self, found: &str) -> E {
        self.fail(format!("expected {}, found {found}", self.expected()))
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.shape {
            Shape::Optional(inner) => d.deserialize_option(OptionVisitor(Seed {
                shape: inner,
                ..self
            })),
            // As written: `240.00` keeps its two places, which a float
            // would lose.
            Shape::Decimal => {
                let raw = <&RawValue>::deserialize(d)?;
                self.decimal(raw.get())
            }
            _ => d.deserialize_any(self),
        }
    }
}

impl Seed<'_> {
    /// A decimal from the JSON text of a number or a string.
    fn decimal<E: de::Error>(&self, raw: &str) -> Result<Value, E> {
        let found = |kind: &str| self.mismatch(kind);
        match raw.as_bytes().first() {
            Some(b'"') => {
                // Without escapes the text is between the quotes.
                let text: Cow<str> = match raw.get(1..raw.len().saturating_sub(1)) {
                    Some(inner) if raw.len() >= 2 && !inner.contains(['\\', '"']) => {
                        Cow::Borrowed(inner)
                    }
                    _ => serde_json::from_str(raw).map_err(|_| found("string"))?,
                };
                Decimal::from_str_exact(text.trim())
                    .map(Value::Decimal)
                    .map_err(|_| self.fail(format!("expected decimal, found \"{text}\"")))
            }
            Some(b'-' | b'0'..=b'9') => Decimal::from_str_exact(raw)
                .or_else(|_| Decimal::from_scientific(raw))
                .map(Value::Decimal)
                .map_err(|_| self.fail(format!("{raw} does not fit a decimal"))),
            Some(b't' | b'f') => Err(found("bool")),
            Some(b'n') => Err(found("null")),
            Some(b'[') => Err(found("list")),
            Some(b'{') => Err(found("object")),
            _ => Err(found("nothing")),
        }
    }
}

struct OptionVisitor<'a>(Seed<'a>);

impl<'de> Visitor<'de> for OptionVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an optional value")
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::None)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.0.deserialize(d)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.expected())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        match self.shape {
            Shape::Bool => Ok(Value::Bool(v)),
            _ => Err(self.mismatch("bool")),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        match self.shape {
            Shape::Int => Ok(Value::Int(v)),
            Shape::Float => Ok(Value::Float(v as f64)),
            Shape::Decimal => Ok(Value::Decimal(Decimal::from(v))),
            _ => Err(self.mismatch("number")),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        match self.shape {
            Shape::Int => i64::try_from(v)
                .map(Value::Int)
                .map_err(|_| self.fail(format!("{v} is too large for an int"))),
            Shape::Float => Ok(Value::Float(v as f64)),
            Shape::Decimal => Ok(Value::Decimal(Decimal::from(v))),
            _ => Err(self.mismatch("number")),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        match self.shape {
            Shape::Float => Ok(Value::Float(v)),
            // The shortest text that reads back as `v` is the literal as
            // written for any number with up to 15 significant digits.
            Shape::Decimal => Decimal::from_str(&v.to_string())
                .or_else(|_| Decimal::from_scientific(&format!("{v:e}")))
                .map(Value::Decimal)
                .map_err(|_| self.fail(format!("{v} does not fit a decimal"))),
            Shape::Int if v.fract() == 0.0 && v.abs() >= 9.2e18 => {
                Err(self.fail(format!("{v} is too large for an int")))
            }
            Shape::Int => Err(self.fail(format!(
                "expected int, found {v:?} (written with a fraction or an exponent)"
            ))),
            _ => Err(self.mismatch("number")),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        match self.shape {
            Shape::Str => Ok(Value::str(v)),
            Shape::Union(members) => {
                match members.iter().find(|m| same_text(m.as_bytes(), v.as_bytes())) {
                    Some(m) => Ok(Value::Str(m.clone())),
                    None => Err(self.mismatch(&format!("\"{v}\""))),
                }
            }
            Shape::Decimal => Decimal::from_str_exact(v)
                .map(Value::Decimal)
                .map_err(|_| self.fail(format!("expected decimal, found \"{v}\""))),
            Shape::Date => parse_date(v)
                .map(Value::Date)
                .ok_or_else(|| self.fail(format!("expected a date (YYYY-MM-DD), found \"{v}\""))),
            Shape::DateTime => DateTime::parse_from_rfc3339(v)
                .map(|t| Value::DateTime(t.with_timezone(&Utc)))
                .map_err(|_| {
                    self.fail(format!(
                        "expected an RFC 3339 datetime such as \"2026-11-20T10:00:00Z\", found \"{v}\""
                    ))
                }),
            Shape::Duration => parse_duration(v).map(Value::Duration).ok_or_else(|| {
                self.fail(format!("expected a duration such as \"2h30m\", found \"{v}\""))
            }),
            _ => Err(self.mismatch("string")),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Err(self.mismatch("null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Err(self.mismatch("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let Shape::List(item) = self.shape else {
            return Err(self.mismatch("list"));
        };
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        loop {
            let path = Path::Index(self.path, items.len());
            let seed = Seed {
                cx: self.cx,
                shape: item,
                path: &path,
            };
            match seq
                .next_element_seed(seed)
                .map_err(|e| seed.fail(serde_reason_of(&e)))?
            {
                Some(v) => items.push(v),
                None => break,
            }
        }
        Ok(Value::List(Arc::from(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Shape::Record(id) = self.shape else {
            return Err(self.mismatch("object"));
        };
        let shape = self.cx.shapes.record(*id);
        let n = shape.fields.len();
        let mut slots: Vec<Value> = vec![Value::None; n];
        // Which slots the object filled; records of more than 64 fields keep
        // the rest of the mask on the heap.
        let mut seen = Seen::new(n);
        while let Some(slot) = map.next_key_seed(FieldKey(shape))? {
            match slot.and_then(|i| Some((i, shape.fields.get(i)?, slots.get_mut(i)?))) {
                Some((i, (name, field_shape), slot)) => {
                    let path = Path::Field(self.path, name);
                    let seed = Seed {
                        cx: self.cx,
                        shape: field_shape,
                        path: &path,
                    };
                    if seen.get(i) {
                        // The last would win silently; the sender meant one.
                        return Err(seed.fail("the field appears twice".to_string()));
                    }
                    // An error from serde itself (a number out of range, bad
                    // syntax) gets the path of the innermost field it is in.
                    *slot = map
                        .next_value_seed(seed)
                        .map_err(|e| seed.fail(serde_reason_of(&e)))?;
                    seen.set(i);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen.all(n) {
            for (i, ((name, field_shape), slot)) in
                shape.fields.iter().zip(slots.iter_mut()).enumerate()
            {
                if seen.get(i) {
                    continue;
                }
                *slot = match field_shape {
                    Shape::Optional(_) => Value::None,
                    _ if self.cx.partial => self.cx.shapes.zero(field_shape),
                    _ => {
                        let path = Path::Field(self.path, name);
                        let seed = Seed {
                            shape: field_shape,
                            path: &path,
                            ..self
                        };
                        return Err(seed.fail("required field is missing".to_string()));
                    }
                };
            }
        }
        Ok(Value::Record(Arc::new(Record {
            shape: *id,
            slots: slots.into_boxed_slice(),
        })))
    }
}

/// A set of slot numbers: a word for the usual record, a vector beyond 64.
enum Seen {
    Word(u64),
    Many(Vec<bool>),
}

impl Seen {
    fn new(n: usize) -> Seen {
        if n <= 64 {
            Seen::Word(0)
        } else {
            Seen::Many(vec![false; n])
        }
    }

    fn set(&mut self, i: usize) {
        match self {
            Seen::Word(w) => *w |= 1 << i,
            Seen::Many(v) => {
                if let Some(b) = v.get_mut(i) {
                    *b = true;
                }
            }
        }
    }

    fn get(&self, i: usize) -> bool {
        match self {
            Seen::Word(w) => *w & (1 << i) != 0,
            Seen::Many(v) => v.get(i).copied().unwrap_or(false),
        }
    }

    fn all(&self, n: usize) -> bool {
        match self {
            Seen::Word(w) => w.count_ones() as usize == n,
            Seen::Many(v) => v.iter().all(|b| *b),
        }
    }
}

/// `YYYY-MM-DD`. The usual form is read digit by digit; anything else goes
/// to chrono, which also takes one-digit months and days.
pub fn parse_date(v: &str) -> Option<NaiveDate> {
    let b = v.as_bytes();
    let digits = |ds: &[u8]| {
        ds.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = *b {
        if let (Some(y), Some(m), Some(d)) = (
            digits(&[y0, y1, y2, y3]),
            digits(&[m0, m1]),
            digits(&[d0, d1]),
        ) {
            return NaiveDate::from_ymd_opt(y as i32, m, d);
        }
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()
}

/// A key of a JSON object: the slot of the field it names, if declared.
struct FieldKey<'a>(&'a RecordShape);

impl<'de> DeserializeSeed<'de> for FieldKey<'_> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldKey<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.slot(v))
    }
}

/// Reads a duration as the language writes it: `2h30m`, `45s`, `1500ms`, `1w`.
pub fn parse_duration(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let (number, after) = rest.split_at_checked(digits)?;
        let n: i64 = number.parse().ok()?;
        rest = after;
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            let size = match rest.as_bytes().first()? {
                b's' => 1_000,
                b'm' => 60_000,
                b'h' => 3_600_000,
                b'd' => 86_400_000,
                b'w' => 7 * 86_400_000,
                _ => return None,
            };
            (size, 1)
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = rest.get(len..)?;
    }
    Some(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_fast_and_slow() {
        let ymd = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        assert_eq!(parse_date("2026-12-01"), ymd(2026, 12, 1));
        assert_eq!(parse_date("2028-02-29"), ymd(2028, 2, 29));
        assert_eq!(parse_date("2026-02-29"), None);
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("2026-1-5"), ymd(2026, 1, 5));
        assert_eq!(parse_date("2026-12-0x"), None);
        assert_eq!(parse_date("12/01/2026"), None);
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2h30m"), Some(9_000_000));
        assert_eq!(parse_duration("1500ms"), Some(1_500));
        assert_eq!(parse_duration("-1d"), Some(-86_400_000));
        assert_eq!(parse_duration("2x"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration(""), None);
    }
}
