//! Errors as RFC 9457 problem details (`application/problem+json`), each
//! with a stable `code`; and the extractors that turn bad input into them
//! (a body that is not JSON, a field of the wrong type, a bad query) rather
//! than axum's plain-text rejections.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use steward::engine::store::StoreError;
use steward_db::control::ControlError;

/// A problem: what went wrong, for people (`detail`) and for programs
/// (`status`, `code`), with members of its own where it has them
/// (`diagnostics`, `decision`). Serialized as [`ProblemDoc`] describes.
#[derive(Clone, Debug)]
pub struct Problem {
    pub status: u16,
    /// Stable, for programs: `unauthorized`, `not_found`, `invalid_json`, ...
    pub code: &'static str,
    pub detail: String,
    extra: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    /// Seconds to wait before trying again (`Retry-After`), for a 429.
    retry_after: Option<u64>,
}

/// A problem as RFC 9457 says: `application/problem+json`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDoc {
    /// A URI naming the kind of problem: `urn:steward:problem:CODE`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable, for programs: `unauthorized`, `not_found`, `invalid_json`, ...
    pub code: String,
    /// Diagnostics of rules that do not check (`rules_invalid`).
    #[schema(value_type = Option<Vec<Object>>)]
    pub diagnostics: Option<serde_json::Value>,
    /// The decision recorded first (`already_decided`).
    #[schema(value_type = Option<Object>)]
    pub decision: Option<serde_json::Value>,
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let extra = self.extra.as_deref();
        let mut map = serializer.serialize_map(Some(5 + extra.map_or(0, |e| e.len())))?;
        map.serialize_entry("type", &format!("urn:steward:problem:{}", self.code))?;
        map.serialize_entry("title", status.canonical_reason().unwrap_or("Error"))?;
        map.serialize_entry("status", &self.status)?;
        map.serialize_entry("detail", &self.detail)?;
        map.serialize_entry("code", self.code)?;
        for (k, v) in extra.into_iter().flatten() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status: status.as_u16(),
            code,
            detail: detail.into(),
            extra: None,
            retry_after: None,
        }
    }

    /// 429: a rate was exceeded; try again after `seconds`.
    pub fn rate_limited(detail: impl Into<String>, seconds: u64) -> Problem {
        let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail);
        p.retry_after = Some(seconds.max(1));
        p
    }

    /// 429: a quota is used up (no wait frees it: the admin raises it, or
    /// what is stored shrinks).
    pub fn quota_exceeded(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", detail)
    }

    /// Adds a member of the problem's own.
    pub fn with(mut self, name: &str, value: serde_json::Value) -> Problem {
        self.extra
            .get_or_insert_with(Default::default)
            .insert(name.to_string(), value);
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn too_large(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match e {
            // The cause goes to the log (in the request's span, with its
            // id); the client gets a fixed message, never the database's.
            StoreError::Unavailable(why) => {
                tracing::warn!(cause = %why, "the database is unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the database is unavailable; try again shortly",
                )
            }
            StoreError::Conflict(why) => {
                tracing::info!(cause = %why, "a change conflicted with another");
                Problem::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "another change was made at the same time; try again",
                )
            }
            StoreError::Duplicate(why) => {
                tracing::info!(cause = %why, "a row with the same key exists");
                Problem::new(
                    StatusCode::CONFLICT,
                    "exists",
                    "it exists already: the request names something another request made",
                )
            }
            StoreError::Corrupt(why) => {
                tracing::error!(cause = %why, "the database holds something unreadable");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "store_corrupt",
                    "the database holds something Steward cannot read; the server's log says what",
                )
            }
        }
    }
}

impl From<ControlError> for Problem {
    fn from(e: ControlError) -> Problem {
        match e {
            ControlError::Invalid(diagnostics) => {
                let n = diagnostics
                    .iter()
                    .filter(|d| d.severity == steward::diag::Severity::Error)
                    .count();
                Problem::unprocessable(
                    "rules_invalid",
                    format!("the rules have {n} error(s); nothing was deployed"),
                )
                .with(
                    "diagnostics",
                    serde_json::to_value(diagnostics).unwrap_or_default(),
                )
            }
            ControlError::NotFound(what) => Problem::not_found(what),
            ControlError::Store(e) => e.into(),
        }
    }
}

/// The largest request body accepted (a ruleset's files, a batch of events).
pub const MAX_BODY: usize = 1 << 20;

/// A JSON body, read up to [`MAX_BODY`]: a body too large is 413; one that
/// is not JSON, or whose field is of the wrong type, is 400 naming the path
/// of the problem.
pub struct Body<T>(pub T, pub axum::body::Bytes);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|e| {
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(s) = source {
                    if s.is::<http_body_util::LengthLimitError>() {
                        return Problem::too_large(format!(
                            "the request body is larger than {MAX_BODY} bytes"
                        ));
                    }
                    source = s.source();
                }
                Problem::bad_request("unreadable_body", format!("cannot read the body: {e}"))
            })?;
        let value = parse_json(&bytes)?;
        Ok(Body(value, bytes))
    }
}

/// Parses JSON, naming where it went wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_request(
            "invalid_json",
            "the request needs a JSON body",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = if path == "." || path.is_empty() {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        let code = if inner.is_syntax() || inner.is_eof() {
            "invalid_json"
        } else {
            "invalid_field"
        };
        Problem::bad_request(code, format!("the body{at}: {inner}"))
    })?;
    de.end()
        .map_err(|e| Problem::bad_request("invalid_json", format!("the body: {e}")))?;
    Ok(value)
}

/// Query parameters; a bad one is 400 naming it.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(Params)
            .map_err(|e| Problem::bad_request("invalid_query", format!("the query: {e}")))
    }
}

/// Path parameters; one that does not parse is 404 (no such resource).
pub struct Segments<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Segments<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Segments(v)),
            Err(e) => Err(Problem::not_found(format!("no such resource: {e}"))),
        }
    }
}

/// The problems routes answer, for the OpenAPI document: one type per
/// status, each `application/problem+json` with [`ProblemDoc`]'s shape.
pub mod answers {
    use super::ProblemDoc;

    macro_rules! problem_answer {
        ($name:ident, $status:literal, $description:literal) => {
            #[derive(utoipa::IntoResponses)]
            #[response(status = $status, description = $description, content_type = "application/problem+json")]
            pub struct $name(#[allow(dead_code)] ProblemDoc);
        };
    }

    problem_answer!(
        BadRequest,
        400,
        "Bad JSON, a field of the wrong type (its path named), or a bad query"
    );
    problem_answer!(Unauthorized, 401, "No token, or a wrong one");
    problem_answer!(Forbidden, 403, "The token lacks the scope");
    problem_answer!(
        NotFound,
        404,
        "No such resource (another tenant's is not found either)"
    );
    problem_answer!(
        Conflict,
        409,
        "In conflict with what is stored: another change got there first, or the resource is in use (see `code`)"
    );
    problem_answer!(Gone, 410, "Past its deadline, or used");
    problem_answer!(TooLarge, 413, "The body or the batch is too large");
    problem_answer!(
        Unprocessable,
        422,
        "Well-formed, but not acceptable (see `code`)"
    );
    problem_answer!(Unavailable, 503, "The database is unavailable: try again");
    problem_answer!(
        TooMany,
        429,
        "A rate limit (`rate_limited`, with `Retry-After`) or a quota (`quota_exceeded`) of the tenant"
    );
}
