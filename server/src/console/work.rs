//! What is scheduled (timers with what they will run and what cancels
//! them, and the next ticks of scheduled rules), deliveries (the outbox by
//! status, Retry one dead action, or every dead one after a preview of how
//! many), tasks and notifications, and the audit log.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use steward_db::api::{Page, Retried, Whom};

use super::events::PAGE;
use super::session::{Posted, Viewer};
use super::ui::{self, Fail};
use crate::problem::Problem;
use crate::routes::{active_program, continuation_actions};
use crate::App;

#[derive(Deserialize, Default)]
pub struct AfterQuery {
    after: Option<String>,
    before: Option<i64>,
}

pub async fn scheduled(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<AfterQuery>,
) -> Result<Response, Fail> {
    let (tenant, programs) = (viewer.tenant.clone(), app.programs.clone());
    let page = Page {
        after: q.after.clone(),
        limit: PAGE,
    };
    let (timers, ticks) = app
        .db(move |db| {
            let timers = db.timers(&tenant, &page).map_err(Problem::from)?;
            let timers: Vec<_> = timers
                .into_iter()
                .map(|t| {
                    let runs = t
                        .continuation
                        .as_deref()
                        .and_then(|c| continuation_actions(db, &programs, &tenant, c))
                        .map(|(runs, _)| runs)
                        .unwrap_or_default();
                    (t, runs)
                })
                .collect();
            // The next ticks of the active program's scheduled rules.
            let program = active_program(db, &programs, &tenant)?;
            let now = chrono::Utc::now();
            let mut ticks = Vec::new();
            for rule in &program.rules {
                let mut at = now;
                let mut next = Vec::new();
                for _ in 0..3 {
                    match steward::engine::runtime::next_tick(rule, at) {
                        Some(t) => {
                            next.push(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                            at = t;
                        }
                        None => break,
                    }
                }
                if !next.is_empty() {
                    ticks.push((rule.name.to_string(), next));
                }
            }
            Ok((timers, ticks))
        })
        .await?;
    let more = timers.len() == usize::try_from(PAGE).unwrap_or(usize::MAX);
    let body = html! {
        p.lede { "What will happen without anyone sending an event: timers set by rules, and the ticks of scheduled rules." }
        h2 { "Timers" }
        @if timers.is_empty() {
            (ui::empty(html! { "No timer is pending. Rules set them with " code { "after 2h do … end" } "." }))
        } @else {
            table {
                thead { tr { th scope="col" { "Due" } th scope="col" { "Rule" } th scope="col" { "Key" } th scope="col" { "Will run" } th scope="col" { "Cancelled by" } th scope="col" { "Set by event" } } }
                tbody {
                    @for (t, runs) in &timers {
                        tr {
                            td { (ui::time(&t.due)) br; span.muted data-countdown=(t.due) {} }
                            td { code { (t.rule) } }
                            td { (ui::key_link(&Some(t.key.clone()))) }
                            td { @if runs.is_empty() { span.muted { "—" } } @else { ul { @for r in runs { li { code { (r) } } } } } }
                            td { @if t.cancelled_by.is_empty() { span.muted { "nothing" } } @else { ul { @for c in &t.cancelled_by { li { code { (c.event_type) } " with " code { (c.field) " = " (c.value) } " arriving first" } } } } }
                            td { @match &t.event { Some(e) => (ui::event_link(e)), None => span.muted { "—" } } }
                        }
                    }
                }
            }
            @if more {
                @if let Some((last, _)) = timers.last() {
                    p.pager { a href=(format!("/scheduled{}", ui::query(&[("after", Some(&format!("{}\u{1f}{}\u{1f}{}\u{1f}{}", last.due, last.rule, last.key, last.step)))]))) { "Later timers →" } }
                }
            }
        }
        h2 { "Scheduled rules" }
        @if ticks.is_empty() {
            (ui::empty(html! { "No rule runs on a schedule. Write one with " code { "every day at 09:00 in \"Europe/Paris\"" } "." }))
        } @else {
            table {
                thead { tr { th scope="col" { "Rule" } th scope="col" { "Next ticks" } } }
                tbody {
                    @for (rule, next) in &ticks {
                        tr { td { code { (rule) } } td { @for (i, t) in next.iter().enumerate() { @if i > 0 { ", " } (ui::time(t)) } } }
                    }
                }
            }
        }
    };
    Ok(ui::page(&viewer, "Scheduled", "Scheduled", body))
}

#[derive(Deserialize, Default)]
pub struct DeliveriesQuery {
    status: Option<String>,
    rule: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

pub async fn deliveries(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Response, Fail> {
    let status = q.status.clone().filter(|s| !s.is_empty());
    if let Some(s) = &status {
        if !["pending", "delivered", "failed", "dead"].contains(&s.as_str()) {
            return Err(Fail::Page(
                StatusCode::BAD_REQUEST,
                "`status` is pending, delivered, failed or dead.".into(),
            ));
        }
    }
    let rule = q.rule.clone().filter(|s| !s.is_empty());
    let (tenant, st, ru) = (viewer.tenant.clone(), status.clone(), rule.clone());
    let page = Page {
        after: q.after.clone(),
        limit: PAGE,
    };
    let rows = app
        .db(move |db| {
            db.actions(&tenant, st.as_deref(), ru.as_deref(), None, &page)
                .map_err(Problem::from)
        })
        .await?;
    let more = rows.len() == usize::try_from(PAGE).unwrap_or(usize::MAX);
    let retry = viewer.can("events:write");
    let body = html! {
        @match q.done.as_deref() {
            Some("one") => (ui::notice("good", html! { "Queued again: a delivery worker sends it now." })),
            Some(n) => (ui::notice("good", html! { (n) " dead action(s) queued again." })),
            None => (ui::nothing()),
        }
        form.filters method="get" action="/deliveries" hx-get="/deliveries" hx-target="#main" hx-select="#main" hx-swap="outerHTML" hx-push-url="true" role="search" aria-label="Filter deliveries" {
            div { label for="d-status" { "Status" }
                select #d-status name="status" {
                    option value="" { "any" }
                    @for s in ["dead", "failed", "pending", "delivered"] { option value=(s) selected[status.as_deref() == Some(s)] { (s) } }
                }
            }
            div { label for="d-rule" { "Rule" } input #d-rule name="rule" value=[rule.as_deref()]; }
            button type="submit" { "Filter" }
            @if retry {
                a.button.secondary href=(format!("/deliveries/retry-dead{}", ui::query(&[("rule", rule.as_deref())]))) { "Retry every dead action…" }
            }
        }
        @if rows.is_empty() {
            (ui::empty(html! { @if status.is_some() || rule.is_some() { "No action matches these filters." } @else { "No action yet. Every action a rule performs lands here (mails, webhooks, notifications, tasks, approvals asked), with its delivery." } }))
        } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Performed" } th scope="col" { "Action" } th scope="col" { "Event" } th scope="col" { "Delivery" } th scope="col" { "Last error" } th scope="col" { span.skip { "Retry" } } } }
                tbody {
                    @for a in &rows {
                        tr {
                            td { (ui::time(&a.performed_at)) }
                            td {
                                code { (a.action) } span.muted { " by " } code { (a.rule) }
                                @if let Some(u) = &a.url { br; span.muted.mono { (u) } }
                            }
                            td { (ui::event_link(&a.event)) }
                            td {
                                (ui::badge(&a.status)) br;
                                span.muted { (a.attempts) " attempt(s)" }
                                @if let Some(next) = &a.next_attempt_at { br; span.muted { "next " } (ui::time(next)) }
                            }
                            td { @if let Some(e) = &a.last_error { (e) } }
                            td {
                                @if a.status == "dead" && retry {
                                    form.inline method="post" action="/deliveries/retry" {
                                        (ui::csrf(&viewer))
                                        input type="hidden" name="id" value=(a.id);
                                        button type="submit" aria-label=(format!("Retry {} of rule {}", a.action, a.rule)) { "Retry" }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
            @if more {
                @if let Some(last) = rows.last() {
                    p.pager { a href=(format!("/deliveries{}", ui::query(&[("status", status.as_deref()), ("rule", rule.as_deref()), ("after", Some(&format!("{}\u{1f}{}", last.performed_at, last.id)))]))) { "More →" } }
                }
            }
        }
    };
    Ok(ui::page(&viewer, "Deliveries", "Deliveries", body))
}

pub async fn retry(
    State(app): State<App>,
    Posted(viewer, fields): Posted,
) -> Result<Response, Fail> {
    viewer.need("events:write")?;
    let id = fields.get("id").unwrap_or("").to_string();
    let (tenant, who, i) = (viewer.tenant.clone(), viewer.who.clone(), id.clone());
    let done = app
        .db(move |db| db.retry_action(&tenant, &i, &who).map_err(Problem::from))
        .await?;
    match done {
        Retried::Queued(_) => Ok(Redirect::to("/deliveries?done=one").into_response()),
        Retried::NotDead(status) => Err(Fail::Page(
            StatusCode::CONFLICT,
            format!("Action `{id}` is {status}, not dead: only a dead action is retried."),
        )),
        Retried::NotFound => Err(Fail::Page(
            StatusCode::NOT_FOUND,
            format!("There is no action `{id}`."),
        )),
    }
}

#[derive(Deserialize, Default)]
pub struct RuleQuery {
    rule: Option<String>,
}

pub async fn retry_dead_page(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<RuleQuery>,
) -> Result<Response, Fail> {
    viewer.need("events:write")?;
    let rule = q.rule.filter(|r| !r.is_empty());
    let (tenant, r) = (viewer.tenant.clone(), rule.clone());
    let n = app
        .db(move |db| {
            db.dead_actions(&tenant, r.as_deref())
                .map_err(Problem::from)
        })
        .await?;
    let body = html! {
        @if n == 0 {
            (ui::empty(html! { "No dead action" @if let Some(r) = &rule { " of rule " code { (r) } } " to retry." }))
        } @else {
            p { "This queues " strong { (n) " dead action(s)" } @if let Some(r) = &rule { " of rule " code { (r) } } " again, each with its attempts counted afresh." }
            form method="post" action="/deliveries/retry-dead" {
                (ui::csrf(&viewer))
                @if let Some(r) = &rule { input type="hidden" name="rule" value=(r); }
                div.actions {
                    button type="submit" { "Retry " (n) " action(s)" }
                    a.button.secondary href="/deliveries?status=dead" { "Cancel" }
                }
            }
        }
    };
    Ok(ui::page(&viewer, "Deliveries", "Retry dead actions", body))
}

pub async fn retry_dead(
    State(app): State<App>,
    Posted(viewer, fields): Posted,
) -> Result<Response, Fail> {
    viewer.need("events:write")?;
    let rule = fields.get("rule").map(str::to_string);
    let (tenant, who) = (viewer.tenant.clone(), viewer.who.clone());
    let n = app
        .db(move |db| {
            db.retry_dead(&tenant, rule.as_deref(), &who)
                .map_err(Problem::from)
        })
        .await?;
    Ok(Redirect::to(&format!("/deliveries?done={n}")).into_response())
}

#[derive(Deserialize, Default)]
pub struct TasksQuery {
    assignee: Option<String>,
    role: Option<String>,
    after: Option<String>,
    show: Option<String>,
}

pub async fn tasks(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<TasksQuery>,
) -> Result<Response, Fail> {
    let whom = Whom {
        assignee: q.assignee.clone().filter(|s| !s.is_empty()),
        role: q.role.clone().filter(|s| !s.is_empty()),
    };
    let notifications = q.show.as_deref() == Some("notifications");
    let (tenant, w) = (viewer.tenant.clone(), whom.clone());
    let page = Page {
        after: q.after.clone(),
        limit: PAGE,
    };
    let (tasks, notes) = app
        .db(move |db| {
            if notifications {
                Ok((
                    Vec::new(),
                    db.notifications(&tenant, &w, &page)
                        .map_err(Problem::from)?,
                ))
            } else {
                Ok((
                    db.tasks(&tenant, &w, &page).map_err(Problem::from)?,
                    Vec::new(),
                ))
            }
        })
        .await?;
    let show = if notifications {
        "notifications"
    } else {
        "tasks"
    };
    let who_cell = |role: &Option<String>, assignee: &Option<String>| {
        html! {
            @if let Some(r) = role { "role " code { (r) } }
            @if let Some(a) = assignee { code { (a) } }
        }
    };
    let body = html! {
        nav aria-label="Tasks or notifications" {
            div.actions {
                @for (s, label) in [("tasks", "Tasks"), ("notifications", "Notifications")] {
                    @if s == show { span.button aria-current="page" { (label) } }
                    @else { a.button.secondary href=(format!("/tasks?show={s}")) { (label) } }
                }
            }
        }
        form.filters method="get" action="/tasks" hx-get="/tasks" hx-target="#main" hx-select="#main" hx-swap="outerHTML" hx-push-url="true" role="search" aria-label="Filter by person or role" {
            input type="hidden" name="show" value=(show);
            div { label for="t-assignee" { "Person" } input #t-assignee name="assignee" value=[whom.assignee.as_deref()]; }
            div { label for="t-role" { "Role" } input #t-role name="role" value=[whom.role.as_deref()]; }
            button type="submit" { "Filter" }
        }
        @if notifications {
            @if notes.is_empty() { (ui::empty(html! { "No notifications. Rules send them with " code { "notify role ops \"…\"" } "." })) }
            @else {
                table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "For" } th scope="col" { "Text" } th scope="col" { "Rule" } th scope="col" { "Event" } } }
                    tbody { @for n in &notes { tr { td { (ui::time(&n.created_at)) } td { (who_cell(&n.role, &n.assignee)) } td { (n.text) } td { code { (n.rule) } } td { (ui::event_link(&n.event)) } } } }
                }
                @if notes.len() == usize::try_from(PAGE).unwrap_or(usize::MAX) {
                    @if let Some(last) = notes.last() {
                        p.pager { a href=(format!("/tasks{}", ui::query(&[("show", Some("notifications")), ("assignee", whom.assignee.as_deref()), ("role", whom.role.as_deref()), ("after", Some(&format!("{}\u{1f}{}", last.created_at, last.id)))]))) { "More →" } }
                    }
                }
            }
        } @else {
            @if tasks.is_empty() { (ui::empty(html! { "No tasks. Rules make them with " code { "create task \"…\" for role ops" } "." })) }
            @else {
                table {
                    thead { tr { th scope="col" { "Created" } th scope="col" { "Task" } th scope="col" { "For" } th scope="col" { "Due" } th scope="col" { "Status" } th scope="col" { "Rule" } th scope="col" { "Event" } } }
                    tbody { @for t in &tasks { tr { td { (ui::time(&t.created_at)) } td { (t.title) } td { (who_cell(&t.role, &t.assignee)) } td { (ui::time_opt(&t.due)) } td { (ui::badge(&t.status)) } td { code { (t.rule) } } td { (ui::event_link(&t.event)) } } } }
                }
                @if tasks.len() == usize::try_from(PAGE).unwrap_or(usize::MAX) {
                    @if let Some(last) = tasks.last() {
                        p.pager { a href=(format!("/tasks{}", ui::query(&[("assignee", whom.assignee.as_deref()), ("role", whom.role.as_deref()), ("after", Some(&format!("{}\u{1f}{}", last.created_at, last.id)))]))) { "More →" } }
                    }
                }
            }
        }
    };
    Ok(ui::page(&viewer, "Tasks", "Tasks", body))
}

pub async fn audit(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<AfterQuery>,
) -> Result<Response, Fail> {
    let tenant = viewer.tenant.clone();
    let before = q.before;
    let rows = app
        .db(move |db| db.audit_log(&tenant, before, PAGE).map_err(Problem::from))
        .await?;
    let body = html! {
        p.lede { "Who changed what, and when: deploys, rollbacks, enables and disables, decisions, retries, tokens." }
        @if rows.is_empty() {
            (ui::empty(html! { "Nothing has been changed yet." }))
        } @else {
            table {
                thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Subject" } th scope="col" { "Detail" } } }
                tbody {
                    @for e in &rows {
                        tr {
                            td { (ui::time(&e.at)) }
                            td { (e.who) }
                            td { code { (e.what) } }
                            td { code { (e.subject) } }
                            td { @if e.detail.as_object().is_some_and(|o| !o.is_empty()) { details { summary { "detail" } (ui::json(&e.detail)) } } }
                        }
                    }
                }
            }
            @if rows.len() == usize::try_from(PAGE).unwrap_or(usize::MAX) {
                @if let Some(last) = rows.last() {
                    p.pager { a href=(format!("/audit?before={}", last.seq)) { "Older →" } }
                }
            }
        }
    };
    Ok(ui::page(&viewer, "Audit", "Audit", body))
}
