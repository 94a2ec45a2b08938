//! The first page after signing in: the last day's events by status, the
//! actions with the dead ones first, approvals waiting, what is due in the
//! next day, and the latest rule errors; each number links to its list.

use axum::extract::State;
use axum::response::Response;
use chrono::{Duration, SecondsFormat, Utc};
use maud::html;

use super::session::Viewer;
use super::ui::{self, Fail};
use crate::problem::Problem;
use crate::App;

pub async fn show(State(app): State<App>, viewer: Viewer) -> Result<Response, Fail> {
    let now = Utc::now();
    let since = (now - Duration::hours(24)).to_rfc3339_opts(SecondsFormat::Nanos, true);
    let until = (now + Duration::hours(24)).to_rfc3339_opts(SecondsFormat::Nanos, true);
    let tenant = viewer.tenant.clone();
    let s = since.clone();
    let o = app
        .db(move |db| db.overview(&tenant, &s, &until).map_err(Problem::from))
        .await?;
    let count = |list: &[(String, i64)], status: &str| {
        list.iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n)
    };
    let events_total: i64 = o.events.iter().map(|(_, n)| n).sum();
    let body = html! {
        p.lede { "The last 24 hours of tenant " strong { (viewer.tenant) } ", and what is due in the next 24." }
        div.grid {
            section.card aria-labelledby="ov-events" {
                h2 #ov-events { "Events" }
                @for status in ["pending", "processed", "rejected"] {
                    div.stat {
                        a href=(format!("/events{}", ui::query(&[("status", Some(status)), ("since", Some(&since))]))) { (status) }
                        span.n { (count(&o.events, status)) }
                    }
                }
                @if events_total == 0 {
                    p.muted { "No events in the last day. Post some with " code { "POST /v1/events" } "." }
                }
            }
            section.card aria-labelledby="ov-actions" {
                h2 #ov-actions { "Actions" }
                @for status in ["dead", "failed", "pending", "delivered"] {
                    div.stat {
                        a href=(format!("/deliveries{}", ui::query(&[("status", Some(status))]))) { (status) }
                        span.n { (count(&o.actions, status)) }
                    }
                }
                @if count(&o.actions, "dead") > 0 && viewer.can("events:write") {
                    p { a href="/deliveries/retry-dead" { "Retry the dead ones…" } }
                }
            }
            section.card aria-labelledby="ov-approvals" {
                h2 #ov-approvals { "Approvals" }
                div.stat { a href="/approvals" { "waiting" } span.n { (o.approvals_waiting) } }
                div.stat { a href="/approvals" { "deadline in the next 24 h" } span.n { (o.deadlines_due) } }
            }
            section.card aria-labelledby="ov-due" {
                h2 #ov-due { "Due in the next 24 h" }
                div.stat { a href="/scheduled" { "timers" } span.n { (o.timers_due) } }
                div.stat { a href="/approvals" { "approval deadlines" } span.n { (o.deadlines_due) } }
            }
        }
        h2 { "Recent rule errors" }
        @if o.errors.is_empty() {
            (ui::empty(html! { "No rule has failed lately." }))
        } @else {
            table {
                thead { tr { th scope="col" { "When" } th scope="col" { "Event" } th scope="col" { "Rule" } th scope="col" { "Error" } } }
                tbody {
                    @for (event, at, trace) in &o.errors {
                        @for (rule, error) in errors_of(trace) {
                            tr {
                                td { (ui::time(at)) }
                                td { (ui::event_link(event)) }
                                td { code { (rule) } }
                                td { (error) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(ui::page(&viewer, "Overview", "Overview", body))
}

/// The rule errors a stored trace holds: (rule, message).
pub(super) fn errors_of(trace: &str) -> Vec<(String, String)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(trace) else {
        return Vec::new();
    };
    v.get("errors")
        .and_then(|e| e.as_array())
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let text =
                        |k: &str| e.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                    (text("rule"), text("message"))
                })
                .collect()
        })
        .unwrap_or_default()
}
