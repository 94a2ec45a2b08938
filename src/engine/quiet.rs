//! Rules on what did not happen (`when no E on f for D since S on g until C
//! on h`), as timers. A watch is one timer per (tenant, rule, watched value)
//! at position [`QUIET_POS`], so there is one pending timer per watched key,
//! never one per event:
//!
//! - the start event `S` arms it (or moves it, when `S` comes again),
//!   due after the period, with `S` as its event and `quiet_since` as its
//!   local;
//! - each watched event `E` with that value moves it to a period after `E`;
//! - when it comes due, its block runs (the rule's conditions, then its
//!   body), and it is parked rather than removed, so the next `E` arms it
//!   again: it fires once per quiet period;
//! - the end event `C` cancels it like `unless ... on`.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::decode::Event;
use super::eval::{Fault, Frame};
use super::lower::Ruleset;
use super::program::{Quiet, QUIET_POS};
use super::store::{CancelKey, Continuation, Timer, TimerKey};
use super::value::{add_ms, show_duration, Record, Value};

/// Where a watch waits after it fired, until a watched event arms it again:
/// later than anything due.
pub fn parked_at() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The watch the start event `event` arms for rule `r`, if the event holds
/// a value to watch.
pub(super) fn arm(
    rules: &Arc<Ruleset>,
    r: usize,
    event: &Arc<Event>,
    envelope: &Arc<Record>,
    now: DateTime<Utc>,
) -> Result<Option<Timer>, Fault> {
    let Some(rule) = rules.rules.get(r) else {
        return Ok(None);
    };
    let Some(q) = &rule.quiet else {
        return Ok(None);
    };
    let value = match event.payload.slots.get(q.start_slot) {
        None | Some(Value::None) => return Ok(None),
        Some(v) => v.to_string(),
    };
    let cont = Continuation {
        rules: rules.clone(),
        rule: r,
        block: q.block,
        event: event.clone(),
        envelope: envelope.clone(),
        locals: vec![Value::DateTime(now)],
    };
    let due = due_after(q, &cont, now)?;
    let cancel = q
        .until
        .iter()
        .map(|(event_type, field)| CancelKey {
            tenant: event.tenant.clone(),
            event_type: event_type.clone(),
            field: field.clone(),
            value: value.clone(),
        })
        .collect();
    Ok(Some(Timer {
        key: TimerKey {
            tenant: event.tenant.clone(),
            rule: rule.name.clone(),
            key: Arc::from(value.as_str()),
            pos: QUIET_POS,
        },
        due,
        cancel,
        cont,
    }))
}

/// The watch started again by a watched event at `now`: due a period later,
/// with `quiet_since` now. Under the version that armed it.
pub(super) fn rearm(mut timer: Timer, now: DateTime<Utc>) -> Result<Timer, Fault> {
    if !is_watch(&timer.cont) {
        return Ok(timer);
    }
    let rules = timer.cont.rules.clone();
    let Some(q) = rules
        .rules
        .get(timer.cont.rule)
        .and_then(|r| r.quiet.as_ref())
    else {
        return Ok(timer);
    };
    timer.cont.locals = vec![Value::DateTime(now)];
    timer.due = due_after(q, &timer.cont, now)?;
    Ok(timer)
}

/// Whether a continuation is a watch's (its block is the rule's quiet block).
pub fn is_watch(cont: &Continuation) -> bool {
    quiet_of(cont).is_some()
}

fn quiet_of(cont: &Continuation) -> Option<&Quiet> {
    let q = cont.rules.rules.get(cont.rule)?.quiet.as_ref()?;
    (q.block == cont.block).then_some(q)
}

fn due_after(q: &Quiet, cont: &Continuation, now: DateTime<Utc>) -> Result<DateTime<Utc>, Fault> {
    let frame = Frame {
        event: &cont.event.payload,
        envelope: &cont.envelope,
        locals: &[],
        recalled: &[],
        now,
        lib: &cont.rules.lib,
    };
    match (q.period)(&frame)? {
        Value::Duration(ms) if ms > 0 => add_ms(now, ms).ok_or_else(|| {
            Fault::new(format!(
                "the quiet period of {} from {now} is past the end of the calendar",
                show_duration(ms)
            ))
        }),
        Value::Duration(ms) => Err(Fault::new(format!(
            "the quiet period must be a positive duration, not {}",
            show_duration(ms)
        ))),
        other => Err(Fault::new(format!(
            "the quiet period must be a duration, not {other}"
        ))),
    }
}

/// The watches a watched event starts again: for each rule of the program
/// that watches its type, the key of its watch for the event's value.
pub(super) fn watched_keys(rules: &Ruleset, event: &Event) -> Vec<TimerKey> {
    if rules.watchers.is_empty() {
        return Vec::new();
    }
    let Some(watchers) = rules.watchers.get(&*event.event_type) else {
        return Vec::new();
    };
    watchers
        .iter()
        .filter_map(|&(r, slot)| {
            let value = match event.payload.slots.get(slot)? {
                Value::None => return None,
                v => v.to_string(),
            };
            Some(TimerKey {
                tenant: event.tenant.clone(),
                rule: rules.rules.get(r)?.name.clone(),
                key: Arc::from(value.as_str()),
                pos: QUIET_POS,
            })
        })
        .collect()
}
