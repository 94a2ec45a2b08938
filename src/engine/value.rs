//! Runtime values. A record is a slot array laid out by its declaration (the
//! compiler turns field names into slot numbers), so reading `guest.email`
//! is two index operations, never a lookup by name.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;

use crate::check::types::RecordId;

/// A runtime error: recorded against the rule and the event, never fatal.
/// Boxed, so that `Result<bool, Fault>` (what every condition returns) fits
/// in two registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault(Box<str>);

impl Fault {
    pub fn new(message: impl Into<String>) -> Fault {
        Fault(message.into().into_boxed_str())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn fault<T>(message: impl Into<String>) -> Result<T, Fault> {
    Err(Fault::new(message))
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An absent optional.
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(Decimal),
    /// Text, and members of string unions.
    Str(Arc<str>),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    /// In milliseconds.
    Duration(i64),
    List(Arc<[Value]>),
    Record(Arc<Record>),
}

/// The value of a record type or an event payload: slots in declaration order.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub shape: RecordId,
    pub slots: Box<[Value]>,
}

impl Value {
    pub fn str(text: &str) -> Value {
        Value::Str(Arc::from(text))
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The kind of value, as the language names its types.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "none",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Decimal(_) => "decimal",
            Value::Str(_) => "string",
            Value::Date(_) => "date",
            Value::DateTime(_) => "datetime",
            Value::Duration(_) => "duration",
            Value::List(_) => "list",
            Value::Record(_) => "record",
        }
    }
}

/// `a == b` for texts, without a call to `memcmp` for the short texts
/// conditions and field names mostly are (`"US"`, `"airbnb"`, `"risk"`): two
/// overlapping loads cover every length up to 16.
#[inline(always)]
pub fn same_text(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // The first and the last `W` bytes of texts of one length of at least
    // `W` (what the arms below call it with): together, every byte.
    #[inline(always)]
    fn ends<const W: usize>(a: &[u8], b: &[u8]) -> bool {
        a.first_chunk::<W>() == b.first_chunk::<W>() && a.last_chunk::<W>() == b.last_chunk::<W>()
    }
    match n {
        0 => true,
        1 => a.first() == b.first(),
        2..=3 => ends::<2>(a, b),
        4..=7 => ends::<4>(a, b),
        8..=16 => ends::<8>(a, b),
        _ => a == b,
    }
}

/// A duration as the language writes it: `2d4h`, `30m`, `1500ms`, `0s`.
pub fn show_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
    }
    let mut rest = ms.unsigned_abs();
    for (unit, size) in [
        ("d", 86_400_000u64),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// `t` plus `ms` milliseconds (negative: earlier), or `None` when the result
/// is outside the calendar chrono can represent. Every time computation of
/// the engine goes through this or [`add_days`]: none can panic.
pub fn add_ms(t: DateTime<Utc>, ms: i64) -> Option<DateTime<Utc>> {
    t.checked_add_signed(chrono::TimeDelta::try_milliseconds(ms)?)
}

/// `day` plus `days` days, or `None` out of range.
pub fn add_days(day: NaiveDate, days: i64) -> Option<NaiveDate> {
    day.checked_add_signed(chrono::TimeDelta::try_days(days)?)
}

/// RFC 3339 in UTC, with milliseconds only when there are some.
pub fn show_datetime(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// How `{expr}` shows a value inside text.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => Ok(()),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Str(s) => f.write_str(s),
            Value::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Value::DateTime(t) => f.write_str(&show_datetime(t)),
            Value::Duration(ms) => f.write_str(&show_duration(*ms)),
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                Ok(())
            }
            Value::Record(r) => {
                f.write_str("{")?;
                for (i, item) in r.slots.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_compare_at_every_length() {
        let long = "abcdefghijklmnopqrstu";
        for n in 0..=long.len() {
            let a = &long.as_bytes()[..n];
            assert!(same_text(a, a));
            for i in 0..n {
                let mut b = a.to_vec();
                b[i] = b'#';
                assert!(!same_text(a, &b), "{n} {i}");
            }
            if n < long.len() {
                assert!(!same_text(a, &long.as_bytes()[..n + 1]));
            }
        }
    }

    #[test]
    fn durations_show_as_written() {
        assert_eq!(show_duration(0), "0s");
        assert_eq!(show_duration(2 * 86_400_000 + 4 * 3_600_000), "2d4h");
        assert_eq!(show_duration(-90_000), "-1m30s");
        assert_eq!(show_duration(1_500), "1s500ms");
    }
}
