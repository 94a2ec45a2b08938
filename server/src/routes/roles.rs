//! Roles: who holds them (the addresses an approval is mailed to).

use super::*;

/// Who holds a role: the addresses an approval asked of it is mailed to,
/// each mail with its own link.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    pub emails: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RoleRow {
    pub role: String,
    pub emails: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RoleList {
    pub data: Vec<RoleRow>,
    /// Always null: a tenant's roles come in one page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(put, path = "/v1/roles/{role}", request_body = RoleBody, security(("tenant" = ["rulesets:deploy"])),
    params(("role" = String, Path)),
    responses(
        (status = 200, description = "Set", body = RoleRow),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn set_role(
    State(app): State<App>,
    who: Tenant,
    Segments(role): Segments<String>,
    Body(body, _): Body<RoleBody>,
) -> Result<Json<RoleRow>, Problem> {
    who.need("rulesets:deploy")?;
    if !auth::valid_name(&role) {
        return Err(Problem::not_found(format!("no role `{role}`")));
    }
    if body.emails.len() > 100 {
        return Err(Problem::unprocessable(
            "invalid_field",
            "at most 100 addresses a role",
        ));
    }
    for e in &body.emails {
        if e.parse::<lettre::Address>().is_err() {
            return Err(Problem::unprocessable(
                "invalid_field",
                format!("`{e}` is not a mail address"),
            ));
        }
    }
    let (tenant, r, emails, by) = (
        who.tenant.clone(),
        role.clone(),
        body.emails.clone(),
        who.who(),
    );
    app.db(move |db| {
        db.set_role(&tenant, &r, &emails, &by)
            .map_err(Problem::from)
    })
    .await?;
    Ok(Json(RoleRow {
        role,
        emails: body.emails,
    }))
}

#[utoipa::path(get, path = "/v1/roles", security(("tenant" = ["read"])),
    responses(
        (status = 200, description = "The tenant's roles and who holds them", body = RoleList),
        answers::Unauthorized,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn list_roles(
    State(app): State<App>,
    who: Tenant,
) -> Result<Json<RoleList>, Problem> {
    who.need("read")?;
    let tenant = who.tenant.clone();
    let rows = app
        .db(move |db| db.roles(&tenant).map_err(Problem::from))
        .await?;
    Ok(Json(RoleList {
        data: rows
            .into_iter()
            .map(|(role, emails)| RoleRow { role, emails })
            .collect(),
        next_cursor: None,
    }))
}
