//! Work in flight: the outbox, timers, tasks and notifications.

use super::*;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActionsQuery {
    /// `pending`, `delivered`, `failed` or `dead`.
    pub status: Option<String>,
    pub rule: Option<String>,
    /// RFC 3339: performed at or after.
    pub since: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/actions", security(("tenant" = ["read"])), params(ActionsQuery),
    responses(
        (status = 200, description = "The outbox, oldest first, with attempts and last errors", body = ActionPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn list_actions(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<ActionsQuery>,
) -> Result<Json<ActionPage>, Problem> {
    who.need("read")?;
    one_of(
        "status",
        &q.status,
        &["pending", "delivered", "failed", "dead"],
    )?;
    let since = match &q.since {
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| Problem::bad_request("invalid_query", format!("`since` `{s}`: {e}")))?
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        ),
        None => None,
    };
    let p = page(q.limit, &q.cursor)?;
    let (tenant, pp) = (who.tenant.clone(), p.clone());
    let rows = app
        .db(move |db| {
            db.actions(
                &tenant,
                q.status.as_deref(),
                q.rule.as_deref(),
                since.as_deref(),
                &pp,
            )
            .map_err(Problem::from)
        })
        .await?;
    let (data, next_cursor) = paged(rows, &p, |a| format!("{}{SEP}{}", a.performed_at, a.id));
    Ok(Json(ActionPage {
        data: crate::wire::all(data),
        next_cursor,
    }))
}

#[utoipa::path(post, path = "/v1/actions/{id}/retry", security(("tenant" = ["events:write"])),
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 202, description = "Back in the outbox, due now", body = OutboxRow),
        answers::BadRequest,
        answers::Unprocessable,
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Conflict,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn retry_action(
    State(app): State<App>,
    who: Tenant,
    Segments(id): Segments<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(p) = who.need("events:write") {
        return p.into_response();
    }
    let scope = who.tenant.clone();
    let app2 = app.clone();
    once(&app, &scope, &headers, (&method, &uri, &[]), async move {
        let (tenant, i, by) = (who.tenant.clone(), id.clone(), who.who());
        match app2
            .db(move |db| db.retry_action(&tenant, &i, &by).map_err(Problem::from))
            .await
        {
            Ok(Retried::Queued(row)) => created(StatusCode::ACCEPTED, OutboxRow::from(*row)),
            Ok(Retried::NotDead(status)) => Problem::new(
                StatusCode::CONFLICT,
                "not_dead",
                format!("action `{id}` is {status}; only a dead action is retried"),
            )
            .into_response(),
            Ok(Retried::NotFound) => {
                Problem::not_found(format!("no action `{id}`")).into_response()
            }
            Err(p) => p.into_response(),
        }
    })
    .await
}

#[utoipa::path(get, path = "/v1/timers", security(("tenant" = ["read"])), params(PageQuery),
    responses(
        (status = 200, description = "Pending timers, soonest first, with what would cancel them", body = TimerPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn list_timers(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<PageQuery>,
) -> Result<Json<TimerPage>, Problem> {
    who.need("read")?;
    let p = page(q.limit, &q.cursor)?;
    let (tenant, pp) = (who.tenant.clone(), p.clone());
    let rows = app
        .db(move |db| db.timers(&tenant, &pp).map_err(Problem::from))
        .await?;
    let (mut data, next_cursor) = paged(rows, &p, |t| {
        format!("{}{SEP}{}{SEP}{}{SEP}{}", t.due, t.rule, t.key, t.step)
    });
    for t in &mut data {
        t.id = crate::ids::timer(&t.id);
    }
    Ok(Json(TimerPage {
        data: crate::wire::all(data),
        next_cursor,
    }))
}

/// Whom a list of tasks or notifications is about.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkQuery {
    /// Only those for this person (a user id or an address), as written.
    pub assignee: Option<String>,
    /// Only those for this role.
    pub role: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl WorkQuery {
    fn whom(&self) -> Whom {
        Whom {
            assignee: self.assignee.clone(),
            role: self.role.clone(),
        }
    }
}

#[utoipa::path(get, path = "/v1/tasks", security(("tenant" = ["read"])), params(WorkQuery),
    responses(
        (status = 200, description = "Tasks, oldest first", body = TaskPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn list_tasks(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<WorkQuery>,
) -> Result<Json<TaskPage>, Problem> {
    who.need("read")?;
    let p = page(q.limit, &q.cursor)?;
    let (tenant, pp, whom) = (who.tenant.clone(), p.clone(), q.whom());
    let rows = app
        .db(move |db| db.tasks(&tenant, &whom, &pp).map_err(Problem::from))
        .await?;
    let (data, next_cursor) = paged(rows, &p, |t| format!("{}{SEP}{}", t.created_at, t.id));
    Ok(Json(TaskPage {
        data: crate::wire::all(data),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/notifications", security(("tenant" = ["read"])), params(WorkQuery),
    responses(
        (status = 200, description = "Notifications, oldest first", body = NotificationPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn list_notifications(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<WorkQuery>,
) -> Result<Json<NotificationPage>, Problem> {
    who.need("read")?;
    let p = page(q.limit, &q.cursor)?;
    let (tenant, pp, whom) = (who.tenant.clone(), p.clone(), q.whom());
    let rows = app
        .db(move |db| db.notifications(&tenant, &whom, &pp).map_err(Problem::from))
        .await?;
    let (data, next_cursor) = paged(rows, &p, |n| format!("{}{SEP}{}", n.created_at, n.id));
    Ok(Json(NotificationPage {
        data: crate::wire::all(data),
        next_cursor,
    }))
}
