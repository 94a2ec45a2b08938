//! Events: the list (by type, status, key and time, newest first, a page
//! at a time), an event with its payload and why (every rule of its type,
//! which matched, the first condition that failed with the values it read,
//! what each scheduled, the actions with their delivery), and one key's
//! time line across every rule.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use steward_db::api::{EventRow, OutboxRow};
use steward_db::console::EventFilter;

use super::session::Viewer;
use super::ui::{self, Fail};
use crate::problem::Problem;
use crate::App;

/// Rows a list page shows.
pub(super) const PAGE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct EventsQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    status: Option<String>,
    key: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<i64>,
}

fn filled(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// A time filter: RFC 3339, or a date (its midnight, UTC).
fn time_filter(what: &str, v: &Option<String>) -> Result<Option<String>, Fail> {
    let Some(text) = filled(v) else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&text) {
        return Ok(Some(
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        ));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        return Ok(Some(format!("{d}T00:00:00.000000000Z")));
    }
    Err(Fail::Page(
        StatusCode::BAD_REQUEST,
        format!("`{what}` is not a time: give a date (2026-12-01) or an RFC 3339 time (2026-12-01T09:00:00Z)."),
    ))
}

pub async fn list(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<EventsQuery>,
) -> Result<Response, Fail> {
    let status = filled(&q.status);
    if let Some(s) = &status {
        if !["pending", "processed", "rejected"].contains(&s.as_str()) {
            return Err(Fail::Page(
                StatusCode::BAD_REQUEST,
                "`status` is pending, processed or rejected.".into(),
            ));
        }
    }
    let filter = EventFilter {
        event_type: filled(&q.event_type),
        status,
        key: filled(&q.key),
        since: time_filter("since", &q.since)?,
        until: time_filter("until", &q.until)?,
    };
    let tenant = viewer.tenant.clone();
    let f = filter.clone();
    let before = q.before;
    let rows = app
        .db(move |db| {
            db.recent_events(&tenant, &f, before, PAGE)
                .map_err(Problem::from)
        })
        .await?;
    let more = rows.len() == usize::try_from(PAGE).unwrap_or(usize::MAX);
    let older = rows.last().map(|r| r.seq);
    let statuses = ["pending", "processed", "rejected"];
    let body = html! {
        form.filters method="get" action="/events" hx-get="/events" hx-target="#main" hx-select="#main" hx-swap="outerHTML" hx-push-url="true" role="search" aria-label="Filter events" {
            div { label for="f-type" { "Type" } input #f-type name="type" value=[filter.event_type.as_deref()] placeholder="reservation.created"; }
            div { label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "any" }
                    @for s in statuses { option value=(s) selected[filter.status.as_deref() == Some(s)] { (s) } }
                }
            }
            div { label for="f-key" { "Key" } input #f-key name="key" value=[filter.key.as_deref()] placeholder="res_42"; }
            div { label for="f-since" { "Received since" } input #f-since name="since" value=[q.since.as_deref()] placeholder="2026-12-01"; }
            div { label for="f-until" { "Received before" } input #f-until name="until" value=[q.until.as_deref()] placeholder="2026-12-08T00:00:00Z"; }
            button type="submit" { "Filter" }
            a.button.secondary href="/events" { "Clear" }
        }
        @if rows.is_empty() {
            (ui::empty(html! {
                @if q.before.is_some() { "No older events." }
                @else if filter == EventFilter::default() { "No events yet. Post them with " code { "POST /v1/events" } " or " code { "steward push" } "." }
                @else { "No event matches these filters." }
            }))
        } @else {
            (events_table(&rows))
            @if more {
                p.pager {
                    a href=(format!("/events{}", ui::query(&[
                        ("type", filter.event_type.as_deref()), ("status", filter.status.as_deref()),
                        ("key", filter.key.as_deref()), ("since", q.since.as_deref()), ("until", q.until.as_deref()),
                        ("before", older.map(|s| s.to_string()).as_deref()),
                    ]))) { "Older events →" }
                }
            }
        }
    };
    Ok(ui::page(&viewer, "Events", "Events", body))
}

fn events_table(rows: &[EventRow]) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "Received" } th scope="col" { "Event" } th scope="col" { "Type" } th scope="col" { "Key" } th scope="col" { "Status" } } }
            tbody {
                @for e in rows {
                    tr {
                        td { (ui::time(&e.received_at)) }
                        td { (ui::event_link(&e.id)) }
                        td { code { (e.event_type) } }
                        td { (ui::key_link(&e.key)) }
                        td { (ui::badge(&e.status)) }
                    }
                }
            }
        }
    }
}

pub async fn show(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, Fail> {
    let (tenant, i) = (viewer.tenant.clone(), id.clone());
    let found = app
        .db(move |db| {
            let Some(event) = db.event(&tenant, &i).map_err(Problem::from)? else {
                return Ok(None);
            };
            let trace = db.stored_trace(&tenant, &i).map_err(Problem::from)?;
            let actions = db.actions_of(&tenant, &i).map_err(Problem::from)?;
            Ok(Some((event, trace, actions)))
        })
        .await?;
    let (event, trace, actions) = found
        .ok_or_else(|| Fail::Page(StatusCode::NOT_FOUND, format!("There is no event `{id}`.")))?;
    let trace: Option<serde_json::Value> = trace.and_then(|t| serde_json::from_str(&t).ok());
    let body = html! {
        p.lede {
            code { (event.event_type) } " · " (ui::badge(&event.status)) " · key " (ui::key_link(&event.key))
        }
        table {
            tbody {
                tr { th scope="row" { "Occurred" } td { (ui::time(&event.occurred_at)) } }
                tr { th scope="row" { "Received" } td { (ui::time(&event.received_at)) } }
                tr { th scope="row" { "Handled" } td { (ui::time_opt(&event.processed_at)) } }
                @if let Some(reason) = &event.reason { tr { th scope="row" { "Why it was rejected" } td { (reason) } } }
            }
        }
        h2 { "Payload" }
        (ui::json(&event.payload))
        h2 { "Why" }
        @match &trace {
            Some(t) => (why(t)),
            None => (ui::empty(html! {
                @if event.status == "pending" { "Not handled yet: a worker takes it in its next batch." }
                @else { "No trace was kept for this event (traces are pruned with old events)." }
            })),
        }
        h2 { "Actions it caused" }
        @if actions.is_empty() {
            (ui::empty(html! { "None." }))
        } @else {
            (actions_table(&actions))
        }
    };
    Ok(ui::page(&viewer, "Events", &format!("Event {id}"), body))
}

/// Every rule of the event's type, in order: matched or not, and why.
fn why(trace: &serde_json::Value) -> Markup {
    let rules = trace
        .pointer("/trace/rules")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    let text =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let errors = trace
        .get("errors")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    html! {
        @if rules.is_empty() {
            (ui::empty(html! { "No rule is written for this event's type." }))
        }
        @for r in &rules {
            @let name = text(r, "rule").unwrap_or_default();
            @let matched = r.get("matched").and_then(|m| m.as_bool()).unwrap_or(false);
            @let error = text(r, "error");
            @let class = if error.is_some() { "rule failed" } else if matched { "rule matched" } else { "rule unmatched" };
            div class=(class) {
                strong { code { (name) } } " "
                @if error.is_some() { (ui::badge("error")) }
                @else if matched { (ui::badge("matched")) }
                @else { span.badge { "did not match" } }
                @if let Some(skipped) = text(r, "skipped") { p.muted { "Not run: " (ui::ticked(&skipped)) } }
                @if let Some(conds) = r.get("conditions").and_then(|c| c.as_array()) {
                    @if !conds.is_empty() {
                        ul {
                            @for c in conds {
                                li {
                                    code { (text(c, "condition").unwrap_or_default()) } " → "
                                    strong { (c.get("value").map(|v| v.to_string()).unwrap_or_default()) }
                                    @if let Some(reads) = c.get("reads").and_then(|r| r.as_object()) {
                                        @if !reads.is_empty() {
                                            span.muted { " (read: "
                                                @for (i, (k, v)) in reads.iter().enumerate() {
                                                    @if i > 0 { ", " }
                                                    code { (k) " = " (v.to_string()) }
                                                }
                                            ")" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if let Some(count) = r.get("count") { p.muted { "Count: " (count.to_string()) } }
                @if r.get("throttled").and_then(|t| t.as_bool()) == Some(true) { p.muted { "Throttled: it had fired within its window." } }
                @if let Some(watch) = text(r, "watch") { p.muted { "Watching: " (watch) } }
                @if let Some(s) = r.get("scheduled").and_then(|s| s.as_array()) {
                    @if !s.is_empty() {
                        p { "Left for later: " @for (i, x) in s.iter().enumerate() { @if i > 0 { "; " } (ui::ticked(x.as_str().unwrap_or_default())) } }
                    }
                }
                @if let Some(e) = error { p.notice.bad { (e) } }
            }
        }
        @for e in &errors {
            p.notice.bad { "Rule " code { (text(e, "rule").unwrap_or_default()) } " failed: " (text(e, "message").unwrap_or_default()) }
        }
    }
}

pub(super) fn actions_table(actions: &[OutboxRow]) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "Performed" } th scope="col" { "Rule" } th scope="col" { "Action" } th scope="col" { "Status" } th scope="col" { "Attempts" } th scope="col" { "Last error" } } }
            tbody {
                @for a in actions {
                    tr {
                        td { (ui::time(&a.performed_at)) }
                        td { code { (a.rule) } }
                        td { code { (a.action) } details { summary { "arguments" } (ui::json(&a.args)) } }
                        td { (ui::badge(&a.status)) }
                        td.num { (a.attempts) }
                        td { @if let Some(e) = &a.last_error { (e) } }
                    }
                }
            }
        }
    }
}

/// One entry of a key's time line.
struct Entry {
    at: String,
    future: bool,
    what: Markup,
}

pub async fn timeline(
    State(app): State<App>,
    viewer: Viewer,
    Path(key): Path<String>,
) -> Result<Response, Fail> {
    let (tenant, k) = (viewer.tenant.clone(), key.clone());
    let t = app
        .db(move |db| db.timeline(&tenant, &k, 200).map_err(Problem::from))
        .await?;
    let now = steward_db::control::now_text();
    let mut entries: Vec<Entry> = Vec::new();
    for e in &t.events {
        entries.push(Entry {
            at: e.occurred_at.clone(),
            future: false,
            what: html! { "Event " (ui::event_link(&e.id)) " " code { (e.event_type) } " " (ui::badge(&e.status)) },
        });
    }
    for a in &t.actions {
        entries.push(Entry {
            at: a.performed_at.clone(),
            future: false,
            what: html! { "Action " code { (a.action) } " by rule " code { (a.rule) } " " (ui::badge(&a.status)) },
        });
    }
    for timer in &t.timers {
        entries.push(Entry {
            at: timer.due.clone(),
            future: timer.due > now,
            what: html! { "Timer of rule " code { (timer.rule) } " due" @if !timer.cancelled_by.is_empty() {
                " (cancelled if " @for (i, c) in timer.cancelled_by.iter().enumerate() { @if i > 0 { " or " } code { (c.event_type) } " with " code { (c.field) " = " (c.value) } } " arrives first)"
            } },
        });
    }
    for a in &t.approvals {
        entries.push(Entry {
            at: a.requested_at.clone(),
            future: false,
            what: html! { "Approval asked of " code { (a.role) } " by rule " code { (a.rule) } " " (ui::badge(&a.status)) },
        });
        if a.status == "pending" {
            entries.push(Entry {
                at: a.deadline.clone(),
                future: true,
                what: html! { "Deadline of the approval asked by rule " code { (a.rule) } },
            });
        } else if let Some(ended) = &a.ended_at {
            entries.push(Entry {
                at: ended.clone(),
                future: false,
                what: html! { "Approval " (ui::badge(&a.status)) @if let Some(d) = &a.decision { " by " (d.by) " via " (d.via) } @if let Some(r) = &a.reason { ": " (r) } },
            });
        }
    }
    entries.sort_by(|a, b| a.at.cmp(&b.at));
    let body = html! {
        p.lede { "Every event, action, timer and approval of key " code { (key) } ", across every rule, past and pending." }
        @if entries.is_empty() {
            (ui::empty(html! { "Nothing has happened for this key. Keys come from the events' " code { "key" } "." }))
        } @else {
            ol.timeline {
                @for e in &entries {
                    li class=[e.future.then_some("future")] {
                        (ui::time(&e.at)) @if e.future { " " span.badge { "pending" } } " — " (e.what)
                    }
                }
            }
        }
    };
    Ok(ui::page(&viewer, "Events", &format!("Key {key}"), body))
}
