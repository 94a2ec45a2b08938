//! Operations: health, metrics, the OpenAPI document.

use super::*;

#[utoipa::path(get, path = "/healthz", responses(
        (status = 200, description = "The server and its database answer", body = Health),
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn healthz(State(app): State<App>) -> Result<Json<Health>, Problem> {
    app.db(|db| db.program_generation().map_err(Problem::from))
        .await?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus metrics, the engine's included", content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(app): State<App>) -> Response {
    let text = app
        .metrics
        .as_ref()
        .map(|render| render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "This API's OpenAPI document", body = Object)))]
pub(crate) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::document().clone())
}
