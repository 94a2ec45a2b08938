//! Cron schedules: the standard five fields (minute, hour, day of month,
//! month, day of week), checked with precise messages, then handed to the
//! `cron` crate (which wants a seconds field and numbers weekdays from 1 =
//! Sunday) for computing fire times.

use std::str::FromStr;

use chrono::{DateTime, TimeZone};

/// Why a cron expression is invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError {
    pub message: String,
    /// The byte range of the offending field inside the expression.
    pub field: Option<(usize, usize)>,
    pub help: String,
}

/// A valid cron schedule.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    schedule: cron::Schedule,
}

struct Field {
    name: &'static str,
    plural: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        plural: "minutes",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        plural: "hours",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        plural: "days of the month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        plural: "months",
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    },
    Field {
        name: "day of week",
        plural: "days of the week",
        min: 0,
        max: 7,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
];

const MACROS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];
const DAY_NAMES: [&str; 8] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl CronSchedule {
    pub fn parse(expr: &str) -> Result<CronSchedule, CronError> {
        let trimmed = expr.trim();
        if trimmed.starts_with('@') {
            if !MACROS.contains(&trimmed) {
                return Err(CronError {
                    message: format!("unknown shorthand `{trimmed}`"),
                    field: None,
                    help: "the shorthands are `@yearly`, `@monthly`, `@weekly`, `@daily` and `@hourly`".into(),
                });
            }
            let schedule = cron::Schedule::from_str(trimmed).map_err(|_| crate_error(trimmed))?;
            return Ok(CronSchedule { schedule });
        }
        let fields: Vec<(usize, &str)> = expr
            .split_ascii_whitespace()
            .map(|f| (f.as_ptr() as usize - expr.as_ptr() as usize, f))
            .collect();
        if fields.len() != 5 {
            return Err(CronError {
                message: format!("a cron expression has 5 fields, this one has {}", fields.len()),
                field: None,
                help: "write `minute hour day-of-month month day-of-week`, such as `\"0 8 * * *\"` for 08:00 every day".into(),
            });
        }
        let mut converted = vec!["0".to_string()];
        for (i, ((at, text), spec)) in fields.iter().zip(&FIELDS).enumerate() {
            let days = check_field(text, spec).map_err(|(message, help)| CronError {
                message,
                field: Some((*at, at + text.len())),
                help,
            })?;
            converted.push(match days {
                // The crate numbers weekdays from 1 = Sunday: name them instead.
                // `check_field` keeps them to 0..=7.
                Some(days) if i == 4 => days
                    .iter()
                    .filter_map(|d| DAY_NAMES.get(*d as usize).copied())
                    .collect::<Vec<_>>()
                    .join(","),
                _ => text.to_string(),
            });
        }
        let schedule =
            cron::Schedule::from_str(&converted.join(" ")).map_err(|_| crate_error(trimmed))?;
        // A day that no month has (`31 2`, `30 2`) is a schedule that never fires.
        let from = chrono::Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
        if from.is_some_and(|from| schedule.after(&from).next().is_none()) {
            return Err(CronError {
                message: "this schedule never fires: no month has that day".into(),
                field: fields.get(2).map(|(at, text)| (*at, at + text.len())),
                help: format!(
                    "the day of month `{}` never falls in the month `{}`",
                    fields.get(2).map_or("", |f| f.1),
                    fields.get(3).map_or("", |f| f.1)
                ),
            });
        }
        Ok(CronSchedule { schedule })
    }

    /// The fire times strictly after `after`, in its time zone.
    pub fn after<'a, Z: TimeZone + 'a>(
        &'a self,
        after: &DateTime<Z>,
    ) -> impl Iterator<Item = DateTime<Z>> + 'a {
        self.schedule.after(after)
    }
}

/// What the cron library refused after the checks here passed; its own
/// message shows its internal six-field form, so it is not repeated.
fn crate_error(expr: &str) -> CronError {
    CronError {
        message: format!("`{expr}` is not a cron expression Steward can run"),
        field: None,
        help: "write `minute hour day-of-month month day-of-week` with numbers, names, `*`, ranges (`1-5`), lists (`1,15`) and steps (`*/15`); see docs/language.md".into(),
    }
}

/// Checks one field. For the day-of-week field, returns the days it selects
/// (0 = Sunday) unless it is `*`.
fn check_field(text: &str, spec: &Field) -> Result<Option<Vec<u32>>, (String, String)> {
    let range_help = || {
        let names = match spec.names.get(1) {
            Some(name) => format!(", or names such as `{name}`"),
            None => String::new(),
        };
        format!(
            "{} go from {} to {}{names}; the fields are minute, hour, day of month, month, day of week",
            spec.plural, spec.min, spec.max
        )
    };
    let value = |v: &str| -> Result<u32, (String, String)> {
        if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(i as u32 + u32::from(spec.min == 1));
        }
        let n: u32 = v
            .parse()
            .map_err(|_| (format!("`{v}` is not a valid {}", spec.name), range_help()))?;
        if n < spec.min || n > spec.max {
            return Err((format!("{} {n} is out of range", spec.name), range_help()));
        }
        Ok(n)
    };
    let empty = || {
        (
            format!("the {} field `{text}` has an empty value", spec.name),
            "separate values with `,` and give both ends of a range, as in `1-5,10`".to_string(),
        )
    };
    let mut selected = Vec::new();
    for part in text.split(',') {
        if part.is_empty() {
            return Err(empty());
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let span = spec.max - spec.min;
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0 && *s <= span)
                    .ok_or_else(|| {
                        (
                            format!("`{s}` is not a valid step in the {} field", spec.name),
                            format!(
                                "a step in the {} field is a whole number from 1 to {span}, as in `*/15`",
                                spec.name
                            ),
                        )
                    })?;
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((at, bt)) = range.split_once('-') {
            if at.is_empty() || bt.is_empty() {
                return Err(empty());
            }
            let (a, mut b) = (value(at)?, value(bt)?);
            // `mon-sun`: Sunday ends a week as 7.
            if spec.max == 7 && b == 0 && a > 0 {
                b = 7;
            }
            if a > b {
                return Err((
                    format!(
                        "the range `{range}` in the {} field runs backwards",
                        spec.name
                    ),
                    format!("write the smaller value first, as in `{bt}-{at}`"),
                ));
            }
            (a, b)
        } else if part.contains('/') {
            (value(range)?, spec.max)
        } else {
            let v = value(range)?;
            (v, v)
        };
        if range.is_empty() {
            return Err((
                format!("the {} field has an empty part", spec.name),
                range_help(),
            ));
        }
        selected.extend((lo..=hi).step_by(step as usize).map(|d| {
            if spec.max == 7 {
                d % 7
            } else {
                d
            }
        }));
    }
    if spec.max != 7 || text == "*" {
        return Ok(None);
    }
    selected.sort_unstable();
    selected.dedup();
    Ok(Some(selected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike};

    #[test]
    fn reports_the_field_out_of_range() {
        let err = CronSchedule::parse("0 61 * * *").unwrap_err();
        assert_eq!(err.message, "hour 61 is out of range");
        let err = CronSchedule::parse("61 8 * * *").unwrap_err();
        assert_eq!(err.message, "minute 61 is out of range");
        assert_eq!(err.field, Some((0, 2)));
    }

    #[test]
    fn messages_name_the_field_never_the_internal_form() {
        let message = |e: &str| CronSchedule::parse(e).unwrap_err().message;
        assert_eq!(
            message("*/100 * * * *"),
            "`100` is not a valid step in the minute field"
        );
        assert_eq!(
            message("0 0 31 2 *"),
            "this schedule never fires: no month has that day"
        );
        assert_eq!(
            message("0 0 * * 1,"),
            "the day of week field `1,` has an empty value"
        );
        let mon_sun = CronSchedule::parse("0 8 * * mon-sun").unwrap();
        let sat = chrono::Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap();
        let sunday = mon_sun.after(&sat).next().unwrap();
        assert_eq!(sunday.weekday(), chrono::Weekday::Sun);
    }

    #[test]
    fn weekdays_follow_standard_cron() {
        let s = CronSchedule::parse("0 8 * * 1-5").unwrap();
        // 2026-11-28 is a Saturday: the next fire is Monday the 30th.
        let sat = chrono::Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap();
        let next = s.after(&sat).next().unwrap();
        assert_eq!((next.day(), next.hour()), (30, 8));
        let sunday = CronSchedule::parse("0 8 * * 7")
            .unwrap()
            .after(&sat)
            .next()
            .unwrap();
        assert_eq!(sunday.weekday(), chrono::Weekday::Sun);
    }

    #[test]
    fn honours_time_zones() {
        let s = CronSchedule::parse("0 8 * * *").unwrap();
        let tz: chrono_tz::Tz = "America/Toronto".parse().unwrap();
        // Across the end of daylight saving time (2026-11-01), 08:00 stays 08:00 local.
        let start = tz.with_ymd_and_hms(2026, 10, 31, 7, 0, 0).unwrap();
        let times: Vec<_> = s.after(&start).take(2).collect();
        assert!(times.iter().all(|t| t.hour() == 8));
        assert_eq!((times[1] - times[0]).num_hours(), 25);
    }
}
