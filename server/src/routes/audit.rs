//! The audit log.

use super::*;

#[utoipa::path(get, path = "/v1/audit", security(("tenant" = ["read"])), params(PageQuery),
    responses(
        (status = 200, description = "Who did what, when; newest first", body = AuditPage),
        answers::BadRequest,
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn list_audit(
    State(app): State<App>,
    who: Tenant,
    Params(q): Params<PageQuery>,
) -> Result<Json<AuditPage>, Problem> {
    who.need("read")?;
    let p = page(q.limit, &q.cursor)?;
    let before = match &p.after {
        Some(a) => Some(a.parse::<i64>().map_err(|_| {
            Problem::bad_request("invalid_cursor", "`cursor` is not one this API gave")
        })?),
        None => None,
    };
    let (tenant, limit) = (who.tenant.clone(), p.limit);
    let rows = app
        .db(move |db| db.audit_log(&tenant, before, limit).map_err(Problem::from))
        .await?;
    let (data, next_cursor) = paged(rows, &p, |e| e.seq.to_string());
    Ok(Json(AuditPage {
        data: crate::wire::all(data),
        next_cursor,
    }))
}
