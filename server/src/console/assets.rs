//! The console's scripts and styles, built into the binary (see
//! `server/assets/README.md` for where each comes from and its licence).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The assets by the name pages link them with; a new version of one gets
/// a new name, so browsers may keep them.
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "htmx-2.0.11.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/htmx-2.0.11.min.js"),
    ),
    (
        "console-1.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console.js"),
    ),
    (
        "icon-1.svg",
        "image/svg+xml",
        include_str!("../../assets/icon.svg"),
    ),
    (
        "console-1.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/console.css"),
    ),
];

pub const HTMX: &str = "/assets/htmx-2.0.11.min.js";
pub const SCRIPT: &str = "/assets/console-1.js";
pub const STYLE: &str = "/assets/console-1.css";
pub const ICON: &str = "/assets/icon-1.svg";

/// `/favicon.ico`, which browsers ask for whatever the page links: the icon.
pub async fn favicon() -> Response {
    serve(Path("icon-1.svg".to_string())).await
}

pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
