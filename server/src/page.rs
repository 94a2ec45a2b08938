//! Approval links. A link carries a single-use token (`TENANT.SECRET`,
//! random, kept only as a SHA-256, expiring at the approval's deadline).
//! `GET /approve/{token}` shows what the approval is about with Approve and
//! Reject buttons and decides nothing (mail scanners open links); the
//! buttons' `POST` decides, once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::auth;
use crate::problem::{Problem, Segments};
use crate::routes::LinkBody;
use crate::App;

/// Makes a link for a pending approval of `tenant`.
pub async fn make_link(app: &App, tenant: &str, approval: &str) -> Result<LinkBody, Problem> {
    let (t, a) = (tenant.to_string(), approval.to_string());
    let row = app
        .db(move |db| db.approval_row(&t, &a).map_err(Problem::from))
        .await?;
    let Some(row) = row.filter(|r| r.status == "pending") else {
        return Err(Problem::not_found(format!(
            "no pending approval `{approval}`"
        )));
    };
    let (t, a, expires, base) = (
        tenant.to_string(),
        approval.to_string(),
        row.deadline.clone(),
        app.public_url.clone(),
    );
    let url = app
        .db(move |db| {
            steward_db::links::mint(db, &t, &a, &expires, &base).map_err(|e| match e {
                steward_db::links::LinkError::Store(e) => Problem::from(e),
                other => Problem::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "no_randomness",
                    other.to_string(),
                ),
            })
        })
        .await?;
    Ok(LinkBody {
        url,
        expires_at: row.deadline,
    })
}

pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}\
         dt{{font-weight:600}}dd{{margin:0 0 .5rem}}button{{font-size:1rem;padding:.5rem 1.5rem;margin-right:1rem}}\
         pre{{background:#f4f4f4;padding:.5rem;overflow:auto}}</style></head>\
         <body><h1>{}</h1>{body}</body></html>\n",
        escape(title),
        escape(title)
    );
    let mut r = (status, Html(html)).into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

/// The link's approval, if the link is good: (tenant, hash, approval).
async fn resolve(app: &App, token: &str) -> Result<(String, String, String), Response> {
    let gone = |why: &str| {
        page(
            StatusCode::NOT_FOUND,
            "This link does not work",
            &format!("<p>{}</p>", escape(why)),
        )
    };
    let Some((tenant, _)) = token.split_once('.') else {
        return Err(gone("It is not an approval link."));
    };
    if !auth::valid_name(tenant) {
        return Err(gone("It is not an approval link."));
    }
    let tenant = tenant.to_string();
    let hash = steward_db::links::token_hash(token);
    let (t, h) = (tenant.clone(), hash.clone());
    let link = app
        .db(move |db| db.link(&t, &h).map_err(Problem::from))
        .await
        .map_err(IntoResponse::into_response)?;
    let Some((approval, expires_at, used_at)) = link else {
        return Err(gone("It is not an approval link, or it was mistyped."));
    };
    if used_at.is_some() {
        return Err(page(
            StatusCode::GONE,
            "This link was used",
            "<p>A decision was made with it already. Each link decides once.</p>",
        ));
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    if expires_at <= now {
        return Err(page(
            StatusCode::GONE,
            "This link has expired",
            &format!(
                "<p>The approval's deadline passed at {}.</p>",
                escape(&expires_at)
            ),
        ));
    }
    Ok((tenant, hash, approval))
}

#[utoipa::path(get, path = "/approve/{token}", params(("token" = String, Path)),
    responses(
        (status = 200, description = "What the approval is about, with Approve and Reject buttons; decides nothing", content_type = "text/html", body = String),
        (status = 404, description = "Not a link", content_type = "text/html", body = String),
        (status = 410, description = "Used or expired", content_type = "text/html", body = String),
        crate::problem::answers::Unavailable,
    ))]
pub async fn show(State(app): State<App>, Segments(token): Segments<String>) -> Response {
    let (tenant, _, approval) = match resolve(&app, &token).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let (t, a) = (tenant.clone(), approval.clone());
    let found = app
        .db(move |db| {
            let row = db.approval_row(&t, &a).map_err(Problem::from)?;
            let event = match row.as_ref().and_then(|r| r.event.clone()) {
                Some(id) => db.event(&t, &id).map_err(Problem::from)?,
                None => None,
            };
            Ok((row, event))
        })
        .await;
    let (row, event) = match found {
        Ok(found) => found,
        Err(p) => return p.into_response(),
    };
    let Some(row) = row else {
        return page(
            StatusCode::GONE,
            "This approval is gone",
            "<p>It was decided, expired or cancelled.</p>",
        );
    };
    if row.status != "pending" {
        return page(
            StatusCode::GONE,
            "This approval was decided",
            &format!("<p>It was {}.</p>", escape(&row.status)),
        );
    }
    let payload = event
        .as_ref()
        .map(|e| serde_json::to_string_pretty(&e.payload).unwrap_or_default())
        .unwrap_or_default();
    let event_line = event.as_ref().map_or(String::new(), |e| {
        format!(
            "<dt>Event</dt><dd><code>{}</code> ({}, {})</dd><dd><pre>{}</pre></dd>",
            escape(&e.id),
            escape(&e.event_type),
            escape(&e.occurred_at),
            escape(&payload)
        )
    });
    let body = format!(
        "<p>The rule <code>{rule}</code> asks the role <b>{role}</b> to decide.</p>\
         <dl><dt>Approval</dt><dd><code>{id}</code></dd>{event_line}\
         <dt>Deadline</dt><dd>{deadline}</dd></dl>\
         <form method=\"post\"><p><label>Your name <input name=\"by\" required maxlength=\"200\"></label></p>\
         <p><label>Comment <input name=\"comment\" maxlength=\"2000\"></label></p>\
         <p><button name=\"decision\" value=\"approve\">Approve</button>\
         <button name=\"decision\" value=\"reject\">Reject</button></p></form>",
        rule = escape(&row.rule),
        role = escape(&row.role),
        id = escape(&row.id),
        deadline = escape(&row.deadline),
    );
    page(StatusCode::OK, "A decision is asked of you", &body)
}

#[derive(Deserialize)]
struct Form {
    decision: String,
    by: String,
    #[serde(default)]
    comment: String,
}

#[utoipa::path(post, path = "/approve/{token}", params(("token" = String, Path)),
    request_body(content_type = "application/x-www-form-urlencoded", description = "`decision` (`approve` or `reject`), `by`, `comment`", content = String),
    responses(
        (status = 200, description = "Decided", content_type = "text/html", body = String),
        (status = 400, description = "A bad form", content_type = "text/html", body = String),
        (status = 404, description = "Not a link", content_type = "text/html", body = String),
        (status = 409, description = "Decided already", content_type = "text/html", body = String),
        (status = 410, description = "Used or expired", content_type = "text/html", body = String),
        crate::problem::answers::Unavailable,
    ))]
pub async fn decide(
    State(app): State<App>,
    Segments(token): Segments<String>,
    body: axum::body::Bytes,
) -> Response {
    let form: Form = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => {
            return page(
                StatusCode::BAD_REQUEST,
                "The form was not filled in",
                &format!("<p>{}</p>", escape(&e.to_string())),
            )
        }
    };
    let approved = match form.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                "The form was not filled in",
                "<p>Choose Approve or Reject.</p>",
            )
        }
    };
    if form.by.trim().is_empty() {
        return page(
            StatusCode::BAD_REQUEST,
            "The form was not filled in",
            "<p>Give your name.</p>",
        );
    }
    let (tenant, hash, approval) = match resolve(&app, &token).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let (t, h) = (tenant.clone(), hash);
    match app
        .db(move |db| db.use_link(&t, &h).map_err(Problem::from))
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return page(
                StatusCode::GONE,
                "This link was used",
                "<p>A decision was made with it already. Each link decides once.</p>",
            )
        }
        Err(p) => return p.into_response(),
    }
    let by = form.by.trim().to_string();
    match crate::routes::decide(
        &app,
        &tenant,
        &approval,
        approved,
        &by,
        "link",
        &form.comment,
    )
    .await
    {
        Ok(d) => page(
            StatusCode::OK,
            if approved { "Approved" } else { "Rejected" },
            &format!(
                "<p>Recorded: {} by {} at {}. Steward carries it out now.</p>",
                escape(&d.decision),
                escape(&d.by),
                escape(&d.at)
            ),
        ),
        Err(p) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::CONFLICT);
            page(
                status,
                "Not recorded",
                &format!("<p>{}</p>", escape(&p.detail)),
            )
        }
    }
}
