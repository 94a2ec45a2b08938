//! The built-in functions declared `extern fn` in `stdlib/functions.stw`.
//! One implementation per name and arity; overloads that differ only by
//! type share it and dispatch on the values.

use std::str::FromStr;
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use chrono::{Datelike, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};

use super::eval::{arith, as_f64, compare, fault, list_fits, text_fits, Fault, Frame};
use super::value::Value;
use crate::syntax::ast::BinaryOp;

pub type Builtin = fn(&[Value], &Frame) -> Result<Value, Fault>;

/// The implementation of `name` with `arity` arguments.
pub fn lookup(name: &str, arity: usize) -> Option<Builtin> {
    numbers(name, arity)
        .or_else(|| texts(name, arity))
        .or_else(|| times(name, arity))
}

/// Arithmetic, rounding and conversions between numbers.
fn numbers(name: &str, arity: usize) -> Option<Builtin> {
    Some(match (name, arity) {
        ("abs", 1) => abs,
        ("round", 1) => |a, _| {
            let [v] = args(a, "round")?;
            round_to(v, 0)
        },
        ("round", 2) => |a, _| {
            let [v, places] = args(a, "round")?;
            match places {
                Value::Int(p) if (0..=28).contains(p) => round_to(v, *p as u32),
                other => fault(format!("round: `places` must be 0 to 28, not {other}")),
            }
        },
        ("floor", 1) => |a, _| match args(a, "floor")? {
            [Value::Float(x)] => Ok(Value::Float(x.floor())),
            [Value::Decimal(d)] => Ok(Value::Decimal(d.floor())),
            [v] => Ok(v.clone()),
        },
        ("ceil", 1) => |a, _| match args(a, "ceil")? {
            [Value::Float(x)] => Ok(Value::Float(x.ceil())),
            [Value::Decimal(d)] => Ok(Value::Decimal(d.ceil())),
            [v] => Ok(v.clone()),
        },
        ("min", 2) => |a, _| pick(a, std::cmp::Ordering::Less, "min"),
        ("max", 2) => |a, _| pick(a, std::cmp::Ordering::Greater, "max"),
        ("to_float", 1) => |a, _| {
            let [v] = args(a, "to_float")?;
            Ok(Value::Float(as_f64(v)))
        },
        ("to_decimal", 1) => |a, _| match args(a, "to_decimal")? {
            [Value::Int(i)] => Ok(Value::Decimal(Decimal::from(*i))),
            [Value::Float(x)] => Decimal::from_str(&x.to_string())
                .ok()
                .or_else(|| Decimal::from_f64(*x))
                .map(Value::Decimal)
                .ok_or_else(|| Fault::new(format!("to_decimal: {x} does not fit a decimal"))),
            [v] => Ok(v.clone()),
        },
        ("to_int", 1) => |a, _| match args(a, "to_int")? {
            [Value::Float(x)] if x.is_finite() && x.abs() < 9.2e18 => {
                Ok(Value::Int(x.trunc() as i64))
            }
            [Value::Decimal(d)] => d
                .trunc()
                .to_i64()
                .map(Value::Int)
                .ok_or_else(|| Fault::new(format!("to_int: {d} does not fit an int"))),
            [Value::Int(i)] => Ok(Value::Int(*i)),
            [v] => fault(format!("to_int: {v} does not fit an int")),
        },
        ("sum", 1) => sum,
        _ => return None,
    })
}

/// Texts, and lists of them.
fn texts(name: &str, arity: usize) -> Option<Builtin> {
    Some(match (name, arity) {
        ("to_string", 1) => |a, _| {
            let [v] = args(a, "to_string")?;
            Ok(Value::Str(Arc::from(v.to_string())))
        },
        ("parse_int", 1) => |a, _| {
            let [v] = args(a, "parse_int")?;
            Ok(text(v)
                .trim()
                .parse::<i64>()
                .map_or(Value::None, Value::Int))
        },
        ("parse_decimal", 1) => |a, _| {
            let [v] = args(a, "parse_decimal")?;
            Ok(Decimal::from_str_exact(text(v).trim()).map_or(Value::None, Value::Decimal))
        },
        ("lower", 1) => |a, _| {
            let [v] = args(a, "lower")?;
            Ok(Value::Str(Arc::from(text(v).to_lowercase())))
        },
        ("upper", 1) => |a, _| {
            let [v] = args(a, "upper")?;
            Ok(Value::Str(Arc::from(text(v).to_uppercase())))
        },
        ("trim", 1) => |a, _| {
            let [v] = args(a, "trim")?;
            Ok(Value::str(text(v).trim()))
        },
        ("len", 1) => |a, _| {
            Ok(Value::Int(match args(a, "len")? {
                [Value::List(items)] => items.len() as i64,
                [v] => text(v).chars().count() as i64,
            }))
        },
        ("replace", 3) => replace,
        ("split", 2) => split,
        ("join", 2) => join,
        ("first", 1) => |a, _| match args(a, "first")? {
            [Value::List(items)] => Ok(items.first().cloned().unwrap_or(Value::None)),
            _ => fault("first: expected a list"),
        },
        _ => return None,
    })
}

/// Dates, times, durations and the calendar.
fn times(name: &str, arity: usize) -> Option<Builtin> {
    Some(match (name, arity) {
        ("now", 0) => |_, f| Ok(Value::DateTime(f.now)),
        ("today", 0) => |_, f| Ok(Value::Date(f.now.date_naive())),
        ("today", 1) => |a, f| {
            let [tz] = args(a, "today")?;
            Ok(Value::Date(f.now.with_timezone(&zone(tz)?).date_naive()))
        },
        ("date_of", 1) => |a, _| {
            let [t] = args(a, "date_of")?;
            Ok(Value::Date(time(t)?.date_naive()))
        },
        ("date_of", 2) => |a, _| {
            let [t, tz] = args(a, "date_of")?;
            Ok(Value::Date(time(t)?.with_timezone(&zone(tz)?).date_naive()))
        },
        ("at_time", 4) => at_time,
        ("add_months", 2 | 3) => super::calendar::add_months,
        ("add_years", 2 | 3) => super::calendar::add_years,
        ("add_business_days", 2 | 3) => super::calendar::add_business_days,
        ("business_days_between", 2 | 3) => super::calendar::business_days_between,
        ("is_business_day", 1 | 2) => super::calendar::is_business_day,
        ("hour_of", 2) => |a, _| {
            let [t, tz] = args(a, "hour_of")?;
            Ok(Value::Int(time(t)?.with_timezone(&zone(tz)?).hour() as i64))
        },
        ("weekday", 1) => weekday,
        ("days_between", 2) => |a, _| match args(a, "days_between")? {
            [Value::Date(x), Value::Date(y)] => Ok(Value::Int((*y - *x).num_days())),
            _ => fault("days_between: expected two dates"),
        },
        ("in_hours", 1) => |a, _| span(args(a, "in_hours")?, 3_600_000.0),
        ("in_days", 1) => |a, _| span(args(a, "in_days")?, 86_400_000.0),
        ("in_minutes", 1) => |a, _| span(args(a, "in_minutes")?, 60_000.0),
        ("format_date", 2) => |a, _| match args(a, "format_date")? {
            [Value::Date(d), pattern] => {
                format_with(text(pattern), |items| d.format_with_items(items))
            }
            [v, pattern] => {
                let t = time(v)?;
                format_with(text(pattern), |items| t.format_with_items(items))
            }
        },
        ("format_date", 3) => |a, _| {
            let [t, pattern, tz] = args(a, "format_date")?;
            let t = time(t)?.with_timezone(&zone(tz)?);
            format_with(text(pattern), |items| t.format_with_items(items))
        },
        _ => return None,
    })
}

/// The arguments of a built-in as an array of the count it declares. The
/// checker only calls a built-in with that count; another is a fault of the
/// call, never a panic of the engine.
#[inline(always)]
fn args<'a, const N: usize>(a: &'a [Value], name: &str) -> Result<&'a [Value; N], Fault> {
    match a.try_into() {
        Ok(array) => Ok(array),
        Err(_) => Err(arity_fault(name, N, a.len())),
    }
}

#[cold]
#[inline(never)]
fn arity_fault(name: &str, want: usize, found: usize) -> Fault {
    Fault::new(format!("{name}: expected {want} arguments, found {found}"))
}

fn replace(a: &[Value], _: &Frame) -> Result<Value, Fault> {
    let [haystack, from, to] = args(a, "replace")?;
    let from = text(from);
    if from.is_empty() {
        return Ok(haystack.clone());
    }
    let (haystack, to) = (text(haystack), text(to));
    if to.len() > from.len() {
        let grows = (to.len() - from.len()).saturating_mul(haystack.matches(from).count());
        text_fits("replace", haystack.len().saturating_add(grows))?;
    }
    Ok(Value::Str(Arc::from(haystack.replace(from, to))))
}

fn split(a: &[Value], _: &Frame) -> Result<Value, Fault> {
    let [whole, sep] = args(a, "split")?;
    let (whole, sep) = (text(whole), text(sep));
    let count = if sep.is_empty() {
        whole.chars().count()
    } else {
        whole.matches(sep).count().saturating_add(1)
    };
    list_fits("split", count)?;
    let parts: Vec<Value> = if sep.is_empty() {
        whole.chars().map(|c| Value::str(&c.to_string())).collect()
    } else {
        whole.split(sep).map(Value::str).collect()
    };
    Ok(Value::List(Arc::from(parts)))
}

fn join(a: &[Value], _: &Frame) -> Result<Value, Fault> {
    let [Value::List(items), sep] = args(a, "join")? else {
        return fault("join: expected a list");
    };
    let sep = text(sep);
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        std::fmt::Write::write_fmt(&mut out, format_args!("{item}"))
            .map_err(|_| Fault::new("join: cannot show an item"))?;
        text_fits("join", out.len())?;
    }
    Ok(Value::Str(Arc::from(out)))
}

fn sum(a: &[Value], _: &Frame) -> Result<Value, Fault> {
    let [Value::List(items)] = args(a, "sum")? else {
        return fault("sum: expected a list");
    };
    let mut total = match items.first() {
        Some(Value::Decimal(_)) => Value::Decimal(Decimal::ZERO),
        Some(Value::Float(_)) => Value::Float(0.0),
        _ => Value::Int(0),
    };
    for item in items.iter() {
        total = arith(BinaryOp::Add, &total, item)?;
    }
    Ok(total)
}

fn weekday(a: &[Value], _: &Frame) -> Result<Value, Fault> {
    let [Value::Date(d)] = args(a, "weekday")? else {
        return fault("weekday: expected a date");
    };
    Ok(Value::str(match d.weekday() {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn zone(v: &Value) -> Result<Tz, Fault> {
    let name = text(v);
    Tz::from_str(name).map_err(|_| Fault::new(format!("unknown time zone \"{name}\"")))
}

fn time(v: &Value) -> Result<chrono::DateTime<Utc>, Fault> {
    match v {
        Value::DateTime(t) => Ok(*t),
        other => fault(format!("expected a datetime, found a {}", other.kind())),
    }
}

fn span([v]: &[Value; 1], unit: f64) -> Result<Value, Fault> {
    match v {
        Value::Duration(ms) => Ok(Value::Float(*ms as f64 / unit)),
        other => fault(format!("expected a duration, found a {}", other.kind())),
    }
}

fn abs(a: &[Value], _: &Frame) -> Result<Value, Fault> {
    let [v] = args(a, "abs")?;
    match v {
        Value::Int(i) => i
            .checked_abs()
            .map(Value::Int)
            .ok_or_else(|| Fault::new("abs: overflow")),
        Value::Float(x) => Ok(Value::Float(x.abs())),
        Value::Decimal(d) => Ok(Value::Decimal(d.abs())),
        Value::Duration(ms) => Ok(Value::Duration(ms.saturating_abs())),
        v => fault(format!("abs: expected a number, found a {}", v.kind())),
    }
}

fn round_to(v: &Value, places: u32) -> Result<Value, Fault> {
    match v {
        Value::Float(x) => {
            // A float has at most 17 significant digits: where scaling by
            // 10^places leaves no fraction (or overflows), `x` is already round.
            let factor = 10f64.powi(places.min(330) as i32);
            let scaled = x * factor;
            if !scaled.is_finite() || scaled.abs() >= 2f64.powi(53) {
                return Ok(Value::Float(*x));
            }
            Ok(Value::Float(scaled.round() / factor))
        }
        Value::Decimal(d) => Ok(Value::Decimal(
            d.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero),
        )),
        other => Ok(other.clone()),
    }
}

fn pick(a: &[Value], want: std::cmp::Ordering, name: &str) -> Result<Value, Fault> {
    let [x, y] = args(a, name)?;
    match compare(y, x) {
        Some(o) if o == want => Ok(y.clone()),
        Some(_) => Ok(x.clone()),
        None if [x, y]
            .iter()
            .any(|v| matches!(v, Value::Float(x) if x.is_nan())) =>
        {
            fault("a float that is not a number (NaN) has no order")
        }
        None => fault(format!("cannot compare a {} with a {}", x.kind(), y.kind())),
    }
}

fn at_time(a: &[Value], _: &Frame) -> Result<Value, Fault> {
    let [Value::Date(day), Value::Int(h), Value::Int(m), tz] = args(a, "at_time")? else {
        return fault("at_time: expected a date, an hour and a minute");
    };
    let tz = zone(tz)?;
    let Some(t) = u32::try_from(*h)
        .ok()
        .zip(u32::try_from(*m).ok())
        .and_then(|(h, m)| NaiveTime::from_hms_opt(h, m, 0))
    else {
        return fault(format!("at_time: {h}:{m:02} is not a time of day"));
    };
    let local = day.and_time(t);
    // In a gap (clocks spring forward) the time does not exist: take the
    // first instant after it; in an overlap, the earlier of the two.
    let resolved = match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t,
        chrono::LocalResult::Ambiguous(early, _) => early,
        chrono::LocalResult::None => {
            let later = local + chrono::Duration::hours(1);
            match tz.from_local_datetime(&later).earliest() {
                Some(t) => t,
                None => return fault(format!("at_time: {local} does not exist in {tz}")),
            }
        }
    };
    Ok(Value::DateTime(resolved.with_timezone(&Utc)))
}

fn format_with<'a, F, D>(pattern: &'a str, render: F) -> Result<Value, Fault>
where
    F: FnOnce(std::vec::IntoIter<Item<'a>>) -> D,
    D: std::fmt::Display,
{
    let items: Vec<Item> = StrftimeItems::new(pattern).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return fault(format!("format_date: invalid pattern \"{pattern}\""));
    }
    let mut out = String::new();
    std::fmt::Write::write_fmt(&mut out, format_args!("{}", render(items.into_iter())))
        .map_err(|_| Fault::new(format!("format_date: cannot format with \"{pattern}\"")))?;
    Ok(Value::Str(Arc::from(out)))
}

#[cfg(test)]
mod tests {
    /// Every overload of every `extern fn` in `stdlib/` has an implementation.
    #[test]
    fn every_extern_fn_overload_is_implemented() {
        let mut overloads = 0;
        for (_, text) in crate::check::stdlib::FILES {
            let (tree, _) = crate::syntax::parse(0, text);
            for item in &tree.items {
                if let crate::syntax::ast::Item::ExternFn(d) = item {
                    overloads += 1;
                    assert!(
                        super::lookup(&d.name.text, d.params.len()).is_some(),
                        "`{}` with {} parameters has no implementation",
                        d.name.text,
                        d.params.len()
                    );
                }
            }
        }
        assert!(
            overloads > 40,
            "only {overloads} built-in functions were found"
        );
    }
}
