//! Events in, listed, one by one, and their traces.

use super::*;

/// The most events one request may carry.
pub const MAX_EVENTS: usize = 1000;

#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub id: String,
    /// `pending` (new), or the status of the event of that id already there.
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct AcceptedPage {
    pub data: Vec<Accepted>,
}

/// An envelope, as `steward replay` reads them (the tenant is the token's).
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339.
    pub occurred_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// The entity's values before the change this event reports, if the
    /// source knows them: what `previous` and `changed` read when nothing
    /// was remembered for the key yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub previous: Option<serde_json::Value>,
    /// If given, the token's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Envelopes {
    Many(Vec<Envelope>),
    One(Envelope),
}

#[utoipa::path(post, path = "/v1/events", request_body = Envelopes, security(("tenant" = ["events:write"])),
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 202, description = "Accepted; a duplicate id is accepted once", body = AcceptedPage),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::TooLarge,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
        crate::problem::answers::TooMany,
    ))]
pub(crate) async fn post_events(
    State(app): State<App>,
    who: Tenant,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Body(body, bytes): Body<serde_json::Value>,
) -> Response {
    if let Err(p) = who.need("events:write") {
        return p.into_response();
    }
    let scope = who.tenant.clone();
    let app2 = app.clone();
    once(
        &app,
        &scope,
        &headers,
        (&method, &uri, &bytes),
        async move {
            match accept(app2, who, body).await {
                Ok(r) => r,
                Err(p) => p.into_response(),
            }
        },
    )
    .await
}

/// One envelope or an array of them, a bad one named by its place.
pub(crate) fn envelopes(body: serde_json::Value) -> Result<Vec<Envelope>, Problem> {
    let parse = |v: serde_json::Value, at: String| -> Result<Envelope, Problem> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." {
                String::new()
            } else {
                format!(".{path}")
            };
            Problem::bad_request(
                "invalid_field",
                format!("the body at `{at}{path}`: {}", e.into_inner()),
            )
        })
    };
    match body {
        serde_json::Value::Array(items) => {
            if items.len() > MAX_EVENTS {
                return Err(Problem::too_large(format!(
                    "{} events in one request; at most {MAX_EVENTS}",
                    items.len()
                )));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| parse(v, format!("[{i}]")))
                .collect()
        }
        one => Ok(vec![parse(one, String::new())?]),
    }
}

pub(crate) async fn accept(
    app: App,
    who: Tenant,
    body: serde_json::Value,
) -> Result<Response, Problem> {
    let envelopes = envelopes(body)?;
    let quotas = crate::limits::quotas_of(&app, &who.tenant).await?;
    crate::limits::events_rate(
        &app.limits,
        &who.tenant,
        quotas.events_per_second,
        envelopes.len(),
    )?;
    let mut lines = Vec::new();
    for (i, mut e) in envelopes.into_iter().enumerate() {
        match &e.tenant {
            Some(t) if *t != who.tenant => {
                return Err(Problem::unprocessable(
                    "wrong_tenant",
                    format!(
                        "event [{i}] `{}` is of tenant `{t}`, not this token's",
                        e.id
                    ),
                ))
            }
            _ => e.tenant = Some(who.tenant.clone()),
        }
        let line = serde_json::to_string(&e)
            .map_err(|err| Problem::bad_request("invalid_field", format!("event [{i}]: {err}")))?;
        lines.push((e.id, line));
    }
    let tenant = who.tenant.clone();
    let data = app
        .db(move |db| {
            crate::limits::events_room(db, &quotas, &tenant, lines.len())?;
            let mut out = Vec::new();
            for (i, (id, line)) in lines.iter().enumerate() {
                match db.push_line(line) {
                    Ok(true) => out.push(Accepted {
                        id: id.clone(),
                        status: "pending".into(),
                    }),
                    Ok(false) => {
                        let status = db
                            .event(&tenant, id)
                            .map_err(Problem::from)?
                            .map_or("pending".to_string(), |e| e.status);
                        out.push(Accepted {
                            id: id.clone(),
                            status,
                        })
                    }
                    Err(steward_db::PushError::Envelope(why)) => {
                        return Err(Problem::bad_request(
                            "invalid_envelope",
                            format!("event [{i}] `{id}`: {why}"),
                        ))
                    }
                    Err(steward_db::PushError::Store(e)) => return Err(e.into()),
                }
            }
            Ok(out)
        })
        .await?;
    Ok(created(StatusCode::ACCEPTED, AcceptedPage { data }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// `pending`, `processed` or `rejected`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub(crate) fn one_of(what: &str, value: &Option<String>, allowed: &[&str]) -> Result<(), Problem> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(Problem::bad_request(
            "invalid_query",
            format!("`{what}` is `{v}`; it is one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

#[utoipa::path(get, path = "/v1/events", security(("tenant" = ["read"])), params(EventsQuery),
    responses(
        (status = 200, description = "Events, in the order they arrived", body = EventPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn list_events(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<EventsQuery>,
) -> Result<Json<EventPage>, Problem> {
    who.need("read")?;
    one_of("status", &q.status, &["pending", "processed", "rejected"])?;
    let p = page(q.limit, &q.cursor)?;
    let (tenant, pp) = (who.tenant.clone(), p.clone());
    let rows = app
        .db(move |db| {
            db.events(&tenant, q.event_type.as_deref(), q.status.as_deref(), &pp)
                .map_err(Problem::from)
        })
        .await?;
    let (data, next_cursor) = paged(rows, &p, |e| e.seq.to_string());
    Ok(Json(EventPage {
        data: crate::wire::all(data),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/events/{id}", security(("tenant" = ["read"])), params(("id" = String, Path)),
    responses(
        (status = 200, description = "The event, its status and why it was rejected", body = EventRow),
        answers::Unauthorized,
        answers::NotFound,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn get_event(
    State(app): State<App>,
    who: Tenant,
    Segments(id): Segments<String>,
) -> Result<Json<EventRow>, Problem> {
    who.need("read")?;
    let (tenant, i) = (who.tenant.clone(), id.clone());
    app.db(move |db| db.event(&tenant, &i).map_err(Problem::from))
        .await?
        .map(|e| Json(e.into()))
        .ok_or_else(|| Problem::not_found(format!("no event `{id}`")))
}

#[utoipa::path(get, path = "/v1/events/{id}/trace", security(("tenant" = ["read"])), params(("id" = String, Path)),
    responses(
        (status = 200, description = "The explain trace: rules considered and matched, each condition's value and the fields it read, the actions and errors", body = Object),
        answers::Unauthorized,
        answers::NotFound,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn get_trace(
    State(app): State<App>,
    who: Tenant,
    Segments(id): Segments<String>,
) -> Result<Response, Problem> {
    who.need("read")?;
    let (tenant, i) = (who.tenant.clone(), id.clone());
    let trace = app
        .db(move |db| db.stored_trace(&tenant, &i).map_err(Problem::from))
        .await?
        .ok_or_else(|| {
            Problem::not_found(format!(
                "no trace of event `{id}` (no such event, not handled yet, or pruned)"
            ))
        })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], trace).into_response())
}
