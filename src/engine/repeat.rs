//! Schedules of an event's key: `every "0 8 * * *" in tz unless
//! user.deactivated on user_id do ... end` in a rule on `user.registered`.
//! A schedule is one timer, for its next tick, keyed like any timer by
//! (tenant, rule, event key, statement), so the rule firing again for the
//! key moves it (a new zone, say) instead of adding one. When it fires, it
//! is put again for the tick after; a tick missed while the engine was down
//! fires once when it comes back. The zone may come from the event, and is
//! read again at each tick from the event and the `let`s the timer keeps.

use chrono::{DateTime, Duration, LocalResult, TimeZone, Utc};
use chrono_tz::Tz;

use super::eval::{Fault, Frame};
use super::program::{Repeat, RepeatZone};
use super::store::Continuation;
use super::value::{show_datetime, Value};
use crate::check::schedule::CronSchedule;

/// The next time after `after` that the cron schedule fires in `zone`.
/// Cron fields are wall-clock times: they are walked in local time, then
/// each is placed in the zone. A time the spring-forward gap skips fires
/// once right after the gap (as cronie does); a time the fall-back repeats
/// fires once, at its first occurrence.
pub fn next_cron(schedule: &CronSchedule, zone: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = Utc.from_utc_datetime(&after.with_timezone(&zone).naive_local());
    for wall in schedule.after(&local).map(|t| t.naive_utc()) {
        let instant = match zone.from_local_datetime(&wall) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t,
            LocalResult::None => (1..=24 * 60).find_map(|m| {
                let later = wall.checked_add_signed(Duration::minutes(m))?;
                zone.from_local_datetime(&later).earliest()
            })?,
        }
        .with_timezone(&Utc);
        if instant > after {
            return Some(instant);
        }
    }
    None
}

/// The schedule's zone, as the event gives it.
pub(super) fn zone(repeat: &Repeat, frame: &Frame, event: &str) -> Result<Tz, Fault> {
    match &repeat.zone {
        RepeatZone::Fixed(tz) => Ok(*tz),
        RepeatZone::Of(e) => match e(frame)? {
            Value::Str(name) => name.parse::<Tz>().map_err(|_| {
                Fault::new(format!(
                    "event `{event}` gives the time zone `{name}`, which is not an IANA zone such as `America/Toronto`"
                ))
            }),
            other => Err(Fault::new(format!("a time zone is a text, not {other}"))),
        },
    }
}

/// The first tick of a schedule after `now`.
pub(super) fn first_tick(
    repeat: &Repeat,
    frame: &Frame,
    event: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, Fault> {
    let zone = zone(repeat, frame, event)?;
    next_cron(&repeat.schedule, zone, now).ok_or_else(|| {
        Fault::new(format!(
            "the schedule has no tick after {}: cron schedules end with the year 2100",
            show_datetime(&now)
        ))
    })
}

/// The schedule a continuation is the block of, if it is one's.
pub fn repeat_of(cont: &Continuation) -> Option<&Repeat> {
    cont.rules
        .rules
        .get(cont.rule)?
        .repeats
        .iter()
        .find(|r| r.block == cont.block)
}

/// When a schedule's timer that fired at `at` is due next (`None`: not a
/// schedule's, or no tick is left, or its zone no longer reads).
pub(super) fn next_tick(cont: &Continuation, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let repeat = repeat_of(cont)?;
    let frame = Frame {
        event: &cont.event.payload,
        envelope: &cont.envelope,
        locals: &cont.locals,
        recalled: &[],
        now: at,
        lib: &cont.rules.lib,
    };
    first_tick(repeat, &frame, &cont.event.id, at).ok()
}
