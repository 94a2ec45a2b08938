//! Calendar arithmetic: months and years (`add_months`, `add_years`), and
//! business days (`add_business_days`, `business_days_between`,
//! `is_business_day`): Monday to Friday, less the holidays a rule gives as
//! a list of dates. Months and years have no fixed length, so they are
//! functions of a date, not durations.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::eval::{fault, Fault, Frame};
use super::value::Value;

/// At most this many business days are counted in one call: beyond it is
/// a mistake in the data (and would take long to walk).
const MAX_BUSINESS_DAYS: i64 = 100_000;

/// `add_months(day | time, months [, zone])`.
pub(super) fn add_months(a: &[Value], _: &Frame) -> Result<Value, Fault> {
    let months = int(a.get(1), "add_months", "months")?;
    shift(a, months, "add_months")
}

/// `add_years(day | time, years [, zone])`: twelve months a year.
pub(super) fn add_years(a: &[Value], _: &Frame) -> Result<Value, Fault> {
    let years = int(a.get(1), "add_years", "years")?;
    let months = years
        .checked_mul(12)
        .ok_or_else(|| Fault::new(format!("add_years: {years} years is past the calendar")))?;
    shift(a, months, "add_years")
}

fn int(v: Option<&Value>, name: &str, what: &str) -> Result<i64, Fault> {
    match v {
        Some(Value::Int(n)) => Ok(*n),
        _ => fault(format!("{name}: `{what}` must be an int")),
    }
}

/// The same day of the month `months` later (the month's last day when it
/// is shorter); a time keeps its time of day, in UTC or in the zone given.
fn shift(a: &[Value], months: i64, name: &str) -> Result<Value, Fault> {
    let past = || Fault::new(format!("{name}: {months} months is past the calendar"));
    match (a.first(), a.get(2)) {
        (Some(Value::Date(d)), _) => months_from(*d, months).map(Value::Date).ok_or_else(past),
        (Some(Value::DateTime(t)), None) => {
            let local = months_from_time(t.naive_utc(), months).ok_or_else(past)?;
            Ok(Value::DateTime(Utc.from_utc_datetime(&local)))
        }
        (Some(Value::DateTime(t)), Some(Value::Str(zone))) => {
            let tz: Tz = zone
                .parse()
                .map_err(|_| Fault::new(format!("{name}: unknown time zone \"{zone}\"")))?;
            let local =
                months_from_time(t.with_timezone(&tz).naive_local(), months).ok_or_else(past)?;
            in_zone(tz, local).map(Value::DateTime).ok_or_else(past)
        }
        _ => fault(format!("{name}: expected a date or a datetime")),
    }
}

fn months_from(d: NaiveDate, months: i64) -> Option<NaiveDate> {
    let n = Months::new(u32::try_from(months.unsigned_abs()).ok()?);
    if months >= 0 {
        d.checked_add_months(n)
    } else {
        d.checked_sub_months(n)
    }
}

fn months_from_time(t: NaiveDateTime, months: i64) -> Option<NaiveDateTime> {
    Some(months_from(t.date(), months)?.and_time(t.time()))
}

/// A wall-clock time in a zone: one the spring-forward gap skips is moved
/// past the gap; one the fall-back repeats is its first occurrence.
fn in_zone(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    use chrono::LocalResult;
    let t = match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t,
        LocalResult::None => (1..=24 * 60).find_map(|m| {
            let later = local.checked_add_signed(chrono::Duration::minutes(m))?;
            tz.from_local_datetime(&later).earliest()
        })?,
    };
    Some(t.with_timezone(&Utc))
}

fn holidays(v: Option<&Value>) -> Result<HashSet<NaiveDate>, Fault> {
    match v {
        None => Ok(HashSet::new()),
        Some(Value::List(items)) => items
            .iter()
            .map(|i| match i {
                Value::Date(d) => Ok(*d),
                other => fault(format!("holidays are dates, not {other}")),
            })
            .collect(),
        Some(other) => fault(format!("holidays are a list of dates, not {other}")),
    }
}

fn is_business(d: NaiveDate, holidays: &HashSet<NaiveDate>) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !holidays.contains(&d)
}

fn date(v: Option<&Value>, name: &str) -> Result<NaiveDate, Fault> {
    match v {
        Some(Value::Date(d)) => Ok(*d),
        _ => fault(format!("{name}: expected a date")),
    }
}

/// `is_business_day(day [, holidays])`.
pub(super) fn is_business_day(a: &[Value], _: &Frame) -> Result<Value, Fault> {
    let d = date(a.first(), "is_business_day")?;
    Ok(Value::Bool(is_business(d, &holidays(a.get(1))?)))
}

/// `add_business_days(day, days [, holidays])`: the `days`th business day
/// after `day` (before it, for a negative count); `day` itself is not
/// counted, and 0 gives `day`.
pub(super) fn add_business_days(a: &[Value], _: &Frame) -> Result<Value, Fault> {
    let mut d = date(a.first(), "add_business_days")?;
    let n = int(a.get(1), "add_business_days", "days")?;
    if n.abs() > MAX_BUSINESS_DAYS {
        return fault(format!(
            "add_business_days: {n} business days is more than {MAX_BUSINESS_DAYS}"
        ));
    }
    let holidays = holidays(a.get(2))?;
    let step = if n >= 0 { 1 } else { -1 };
    let mut left = n.abs();
    while left > 0 {
        d = d
            .checked_add_signed(chrono::Duration::days(step))
            .ok_or_else(|| Fault::new("add_business_days: past the calendar"))?;
        if is_business(d, &holidays) {
            left -= 1;
        }
    }
    Ok(Value::Date(d))
}

/// `business_days_between(start, finish [, holidays])`: the business days
/// after `start` up to and including `finish` (negative when `finish` is
/// earlier), so `add_business_days(start, n)` is a `finish` with `n`.
pub(super) fn business_days_between(a: &[Value], _: &Frame) -> Result<Value, Fault> {
    let start = date(a.first(), "business_days_between")?;
    let finish = date(a.get(1), "business_days_between")?;
    let holidays = holidays(a.get(2))?;
    let (from, to, sign) = if finish >= start {
        (start, finish, 1)
    } else {
        (finish, start, -1)
    };
    // Whole weeks at once, then the days left, then the holidays that fall
    // on a weekday in between.
    let days = (to - from).num_days();
    let weeks = days / 7;
    let mut count = weeks * 5;
    let mut d = from
        .checked_add_signed(chrono::Duration::days(weeks * 7))
        .ok_or_else(|| Fault::new("business_days_between: past the calendar"))?;
    while d < to {
        d = d
            .checked_add_signed(chrono::Duration::days(1))
            .ok_or_else(|| Fault::new("business_days_between: past the calendar"))?;
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            count += 1;
        }
    }
    let off = holidays
        .iter()
        .filter(|h| **h > from && **h <= to && !matches!(h.weekday(), Weekday::Sat | Weekday::Sun))
        .count();
    count -= i64::try_from(off).unwrap_or(0);
    Ok(Value::Int(sign * count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::program::Library;

    fn call(f: fn(&[Value], &Frame) -> Result<Value, Fault>, args: &[Value]) -> Value {
        let empty = std::sync::Arc::new(crate::engine::value::Record {
            shape: 0,
            slots: Box::new([]),
        });
        let lib = Library::empty();
        let frame = Frame {
            event: &empty,
            envelope: &empty,
            locals: &[],
            recalled: &[],
            now: Utc::now(),
            lib: &lib,
        };
        f(args, &frame).unwrap()
    }

    fn day(text: &str) -> Value {
        Value::Date(text.parse().unwrap())
    }

    fn time(text: &str) -> Value {
        Value::DateTime(text.parse().unwrap())
    }

    #[test]
    fn months_keep_the_day_or_take_the_last_one() {
        assert_eq!(
            call(add_months, &[day("2026-01-31"), Value::Int(1)]),
            day("2026-02-28")
        );
        assert_eq!(
            call(add_months, &[day("2028-01-31"), Value::Int(1)]),
            day("2028-02-29")
        );
        assert_eq!(
            call(add_months, &[day("2026-03-31"), Value::Int(-1)]),
            day("2026-02-28")
        );
        assert_eq!(
            call(add_years, &[day("2028-02-29"), Value::Int(1)]),
            day("2029-02-28")
        );
        assert_eq!(
            call(add_years, &[day("2026-05-31"), Value::Int(0)]),
            day("2026-05-31")
        );
    }

    #[test]
    fn months_of_a_time_keep_its_wall_clock_time_in_a_zone() {
        // 09:00 in Toronto in February (UTC-5) is 09:00 in April (UTC-4).
        let feb = time("2026-02-10T14:00:00Z");
        let zone = Value::Str("America/Toronto".into());
        assert_eq!(
            call(add_months, &[feb.clone(), Value::Int(2), zone]),
            time("2026-04-10T13:00:00Z")
        );
        // In UTC, the same UTC time of day.
        assert_eq!(
            call(add_months, &[feb, Value::Int(2)]),
            time("2026-04-10T14:00:00Z")
        );
        // 02:30 on March 8, 2026 does not exist in Toronto: the first time
        // after the gap, 03:00 EDT.
        let before_gap = time("2026-02-08T07:30:00Z");
        let zone = Value::Str("America/Toronto".into());
        assert_eq!(
            call(add_months, &[before_gap, Value::Int(1), zone]),
            time("2026-03-08T07:00:00Z")
        );
    }

    #[test]
    fn business_days_skip_weekends_and_holidays() {
        let holidays =
            Value::List(vec![day("2026-12-25"), day("2026-12-26"), day("2026-12-28")].into());
        // Friday plus one business day is Monday.
        assert_eq!(
            call(add_business_days, &[day("2026-11-20"), Value::Int(1)]),
            day("2026-11-23")
        );
        assert_eq!(
            call(add_business_days, &[day("2026-11-23"), Value::Int(-1)]),
            day("2026-11-20")
        );
        assert_eq!(
            call(add_business_days, &[day("2026-11-21"), Value::Int(0)]),
            day("2026-11-21")
        );
        assert_eq!(
            call(
                add_business_days,
                &[day("2026-12-24"), Value::Int(1), holidays.clone()]
            ),
            day("2026-12-29")
        );
        // Between is the inverse of add, both ways; the Saturday holiday is
        // not taken off twice.
        for n in [-12, -1, 0, 1, 5, 23] {
            let end = call(
                add_business_days,
                &[day("2026-12-21"), Value::Int(n), holidays.clone()],
            );
            assert_eq!(
                call(
                    business_days_between,
                    &[day("2026-12-21"), end, holidays.clone()]
                ),
                Value::Int(n)
            );
        }
        assert_eq!(
            call(is_business_day, &[day("2026-12-28"), holidays]),
            Value::Bool(false)
        );
        assert_eq!(
            call(is_business_day, &[day("2026-12-28")]),
            Value::Bool(true)
        );
    }
}
