//! Approvals: the inbox (what is asked, by which rule for which event, what
//! approving and rejecting would run, the deadline counting down) with
//! Approve and Reject, and the history (approved, rejected, expired,
//! cancelled) with who decided, how and when.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use steward_db::api::Page;

use super::session::{Posted, Viewer};
use super::ui::{self, Fail};
use crate::problem::Problem;
use crate::routes::describe_approvals;
use crate::App;

const TABS: [(&str, &str); 5] = [
    ("pending", "Waiting"),
    ("approved", "Approved"),
    ("rejected", "Rejected"),
    ("expired", "Expired"),
    ("cancelled", "Cancelled"),
];

#[derive(Deserialize, Default)]
pub struct ApprovalsQuery {
    status: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

pub async fn list(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<ApprovalsQuery>,
) -> Result<Response, Fail> {
    let status = q.status.clone().unwrap_or_else(|| "pending".into());
    if !TABS.iter().any(|(s, _)| *s == status) {
        return Err(Fail::Page(
            StatusCode::BAD_REQUEST,
            "`status` is pending, approved, rejected, expired or cancelled.".into(),
        ));
    }
    let (tenant, s, programs) = (viewer.tenant.clone(), status.clone(), app.programs.clone());
    let page = Page {
        after: q.after.clone(),
        limit: super::events::PAGE,
    };
    let rows = app
        .db(move |db| {
            let rows = db
                .approvals(&tenant, Some(&s), &page)
                .map_err(Problem::from)?;
            let rows = describe_approvals(db, &programs, &tenant, rows);
            // What is being decided on: the payload of each one's event.
            let mut payloads = Vec::with_capacity(rows.len());
            for row in &rows {
                let event = match &row.event {
                    Some(id) => db.event(&tenant, id).map_err(Problem::from)?,
                    None => None,
                };
                payloads.push(event.map(|e| e.payload));
            }
            Ok(rows.into_iter().zip(payloads).collect::<Vec<_>>())
        })
        .await?;
    let more = rows.len() == usize::try_from(super::events::PAGE).unwrap_or(usize::MAX);
    let decide = viewer.can("approvals:decide");
    let body = html! {
        @match q.done.as_deref() {
            Some("approved") => (ui::notice("good", html! { "Approved. The engine runs what it approves in its next batch." })),
            Some("rejected") => (ui::notice("good", html! { "Rejected. The engine runs what a rejection runs in its next batch." })),
            _ => (ui::nothing()),
        }
        nav aria-label="Approvals by status" {
            div.actions {
                @for (s, label) in TABS {
                    @if s == status { span.button aria-current="page" { (label) } }
                    @else { a.button.secondary href=(format!("/approvals?status={s}")) { (label) } }
                }
            }
        }
        @if rows.is_empty() {
            (ui::empty(html! {
                @if status == "pending" { "Nothing is waiting for a decision. Rules ask with " code { "ask ROLE" } "." }
                @else { "None." }
            }))
        }
        @for (a, payload) in &rows {
            section.card aria-label=(format!("Approval asked by rule {} for key {} ({})", a.rule, a.key, crate::ids::approval(&a.id))) {
                h2 { "Rule " code { (a.rule) } " asks " code { (a.role) } }
                p {
                    "For key " (ui::key_link(&Some(a.key.clone()).filter(|k| !k.is_empty())))
                    @if let Some(e) = &a.event { ", event " (ui::event_link(e)) }
                    @if !a.requested_at.is_empty() { ", asked " (ui::time(&a.requested_at)) }
                    "."
                }
                @if a.status == "pending" {
                    p { "Deadline " (ui::time(&a.deadline)) " (" span data-countdown=(a.deadline) { "before the deadline" } ")." }
                    @if let Some(d) = &a.decision {
                        p.notice { "Decided: " (d.decision) " by " (d.by) " via " (d.via) "; the engine takes it in its next batch." }
                    }
                } @else {
                    p { (ui::badge(&a.status))
                        @if let Some(d) = &a.decision { " by " strong { (d.by) } " via " (d.via) " " (ui::time(&d.at)) @if !d.comment.is_empty() { ": “" (d.comment) "”" } }
                        @if let Some(r) = &a.reason { " — " (r) }
                        @if let Some(t) = &a.ended_at { " · ended " (ui::time(t)) }
                    }
                }
                @if let Some(p) = payload {
                    details open[a.status == "pending"] { summary { "What the event says" } (ui::json(p)) }
                }
                div.grid {
                    div { h3 { "Approving runs" } @if a.on_approve.is_empty() { p.muted { "nothing" } } @else { ul { @for x in &a.on_approve { li { code { (x) } } } } } }
                    div { h3 { "Rejecting (or the deadline) runs" } @if a.on_reject.is_empty() { p.muted { "nothing" } } @else { ul { @for x in &a.on_reject { li { code { (x) } } } } } }
                }
                @if a.status == "pending" && a.decision.is_none() && decide {
                    form method="post" action="/approvals/decide" {
                        (ui::csrf(&viewer))
                        input type="hidden" name="id" value=(crate::ids::approval(&a.id));
                        div.field {
                            label for=(format!("comment-{}", crate::ids::approval(&a.id))) { "Comment (optional)" }
                            input id=(format!("comment-{}", crate::ids::approval(&a.id))) name="comment" size="50";
                        }
                        div.actions {
                            button type="submit" name="decision" value="approve" { "Approve" }
                            button.danger type="submit" name="decision" value="reject" { "Reject" }
                        }
                    }
                }
            }
        }
        @if more {
            @if let Some((last, _)) = rows.last() {
                p.pager { a href=(format!("/approvals{}", ui::query(&[("status", Some(&status)), ("after", Some(&last.id))]))) { "More →" } }
            }
        }
    };
    Ok(ui::page(&viewer, "Approvals", "Approvals", body))
}

pub async fn decide(
    State(app): State<App>,
    Posted(viewer, fields): Posted,
) -> Result<Response, Fail> {
    viewer.need("approvals:decide")?;
    let id = crate::ids::approval_from_path(fields.get("id").unwrap_or(""));
    let approved = match fields.get("decision") {
        Some("approve") => true,
        Some("reject") => false,
        _ => {
            return Err(Fail::Page(
                StatusCode::BAD_REQUEST,
                "Choose Approve or Reject.".into(),
            ))
        }
    };
    let comment = fields.get("comment").unwrap_or("").to_string();
    crate::routes::decide(
        &app,
        &viewer.tenant,
        &id,
        approved,
        &viewer.who,
        "console",
        &comment,
    )
    .await?;
    let done = if approved { "approved" } else { "rejected" };
    Ok(Redirect::to(&format!("/approvals?done={done}")).into_response())
}
