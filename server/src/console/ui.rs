//! The layout every console page shares, and the small pieces pages are
//! made of: times, status badges, empty states, pagers, the CSRF field.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::assets;
use super::session::Viewer;
use crate::problem::Problem;

/// Where the navigation leads, in its order.
pub const NAV: [(&str, &str); 8] = [
    ("Overview", "/"),
    ("Rules", "/rules"),
    ("Events", "/events"),
    ("Approvals", "/approvals"),
    ("Scheduled", "/scheduled"),
    ("Deliveries", "/deliveries"),
    ("Tasks", "/tasks"),
    ("Audit", "/audit"),
];

/// Why a page could not be shown.
#[derive(Debug)]
pub enum Fail {
    /// Not signed in (or the session ended): to the sign-in page.
    SignIn,
    /// An admin who has not chosen a tenant yet.
    ChooseTenant,
    /// A page saying what went wrong, with its status.
    Page(StatusCode, String),
}

impl From<Problem> for Fail {
    fn from(p: Problem) -> Fail {
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Fail::Page(status, p.detail)
    }
}

impl From<steward_db::control::ControlError> for Fail {
    fn from(e: steward_db::control::ControlError) -> Fail {
        Fail::from(Problem::from(e))
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        match self {
            Fail::SignIn => Redirect::to("/sign-in").into_response(),
            Fail::ChooseTenant => Redirect::to("/tenant").into_response(),
            Fail::Page(status, why) => {
                let title = status.canonical_reason().unwrap_or("Error");
                let mut r = bare(
                    title,
                    html! {
                        main.signin id="main" {
                            h1 { (title) }
                            p.notice.bad role="alert" { (why) }
                            p { a href="/" { "Back to the overview" } }
                        }
                    },
                )
                .into_response();
                *r.status_mut() = status;
                r
            }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            // htmx within the CSP (no inline style or script, no eval) and
            // keeping no copies of pages in the browser's storage.
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"attributesToSettle":["class","width","height"],"historyCacheSize":0,"refreshOnHistoryMiss":true}"#;
            title { (title) " · Steward" }
            link rel="icon" href=(assets::ICON) type="image/svg+xml";
            link rel="stylesheet" href=(assets::STYLE);
            script src=(assets::HTMX) defer {}
            script src=(assets::SCRIPT) defer {}
        }
    }
}

/// A page without the navigation (sign in, errors).
pub fn bare(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body { (body) }
            }
        }
        .into_string(),
    )
}

/// A page of the console: the bar with the navigation (`current` marked),
/// who is signed in, then the page.
pub fn page(viewer: &Viewer, current: &str, title: &str, body: Markup) -> Response {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body {
                    a.skip href="#main" { "Skip to the content" }
                    header.bar {
                        a.brand href="/" { "Steward" }
                        nav aria-label="Main" {
                            ul {
                                @for (name, href) in NAV {
                                    li { a href=(href) aria-current=[(name == current).then_some("page")] { (name) } }
                                }
                            }
                        }
                        div.who {
                            span { "Tenant " strong { (viewer.tenant) } }
                            @if viewer.admin { a href="/tenant" { "(change)" } }
                            form.inline method="post" action="/sign-out" {
                                (csrf(viewer))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                    main id="main" {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
        .into_string(),
    )
    .into_response()
}

/// The hidden field every form of the session carries.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A time, shown in the viewer's zone by `console.js` (UTC without it, and
/// on hover).
pub fn time(t: &str) -> Markup {
    if t.is_empty() {
        return html! { span.muted { "—" } };
    }
    html! { time datetime=(t) title=(format!("{t} (UTC)")) { (t) } }
}

pub fn time_opt(t: &Option<String>) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { span.muted { "—" } },
    }
}

/// A status as a coloured badge (with its word: colour is never all).
pub fn badge(status: &str) -> Markup {
    let class = match status {
        "processed" | "delivered" | "approved" | "enabled" | "done" | "matched" => "badge good",
        "pending" | "failed" | "open" | "waiting" => "badge warn",
        "rejected" | "dead" | "expired" | "cancelled" | "disabled" | "error" => "badge bad",
        _ => "badge",
    };
    html! { span class=(class) { (status) } }
}

/// What an empty list says, and what to do next.
pub fn empty(what: Markup) -> Markup {
    html! { p.empty { (what) } }
}

/// A notice at the top of a page (`good`, `bad` or plain).
pub fn notice(kind: &str, text: Markup) -> Markup {
    let class = format!("notice {kind}");
    html! { div class=(class) role="status" { (text) } }
}

/// What a path segment keeps as it is: letters, digits and `-_.~`.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A path segment, percent-encoded.
pub fn seg(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

/// Text from the engine that marks names with backticks (`a timer for
/// `res_42``), the names shown as code.
pub fn ticked(text: &str) -> Markup {
    html! {
        @for (i, part) in text.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

/// A query string from pairs, the empty values left out.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    if kept.is_empty() {
        return String::new();
    }
    format!("?{}", serde_urlencoded::to_string(kept).unwrap_or_default())
}

/// JSON shown as text, indented.
pub fn json(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre { code { (text) } } }
}

/// The link to a key's time line.
pub fn key_link(key: &Option<String>) -> Markup {
    match key {
        Some(k) => html! { a href=(format!("/keys/{}", seg(k))) { code { (k) } } },
        None => html! { span.muted { "—" } },
    }
}

pub fn event_link(id: &str) -> Markup {
    html! { a href=(format!("/events/{}", seg(id))) { code { (id) } } }
}

/// Nothing, for places where maud wants markup.
pub fn nothing() -> Markup {
    PreEscaped(String::new())
}
