//! `Idempotency-Key`: a request repeated with the same key gets the first answer.

use super::*;

/// Runs a creating request once per `Idempotency-Key`: a retry with the
/// same key and the same request gets the stored answer; the same key with
/// another request is 422. Answers of 5xx are not kept (a retry runs again).
pub(crate) async fn once<F>(
    app: &App,
    scope: &str,
    headers: &HeaderMap,
    request: (&Method, &Uri, &[u8]),
    run: F,
) -> Response
where
    F: std::future::Future<Output = Response>,
{
    once_keeping(app, scope, headers, request, run, None).await
}

/// [`once`], the kept answer without the member `secret` of its JSON body
/// (a secret shown once is not kept in the clear): a retry gets the
/// answer with `secret` saying so.
pub(crate) async fn once_keeping<F>(
    app: &App,
    scope: &str,
    headers: &HeaderMap,
    request: (&Method, &Uri, &[u8]),
    run: F,
    secret: Option<&'static str>,
) -> Response
where
    F: std::future::Future<Output = Response>,
{
    let Some(key) = headers.get("idempotency-key") else {
        return run.await;
    };
    let Ok(key) = key.to_str().map(str::to_string) else {
        return Problem::bad_request("invalid_idempotency_key", "`Idempotency-Key` is not text")
            .into_response();
    };
    if key.is_empty() || key.len() > 255 {
        return Problem::bad_request(
            "invalid_idempotency_key",
            "`Idempotency-Key` must have 1 to 255 characters",
        )
        .into_response();
    }
    let (method, uri, body) = request;
    let digest = auth::digest(&format!(
        "{method} {}\n{}",
        uri.path(),
        String::from_utf8_lossy(body)
    ));
    let (sc, k) = (scope.to_string(), key.clone());
    let kept = app
        .db(move |db| db.kept_answer(&sc, &k).map_err(Problem::from))
        .await;
    match kept {
        Err(p) => return p.into_response(),
        Ok(Some(kept)) if kept.request == digest => {
            let status = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
            let kind = if status.is_success() {
                "application/json"
            } else {
                "application/problem+json"
            };
            let mut r = (status, kept.body).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return r;
        }
        Ok(Some(_)) => {
            return Problem::unprocessable(
                "idempotency_key_reused",
                format!("the Idempotency-Key `{key}` was used with another request"),
            )
            .into_response()
        }
        Ok(None) => {}
    }
    let response = run.await;
    if response.status().is_server_error() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::problem::MAX_BODY * 4).await {
        Ok(b) => b,
        Err(e) => {
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot keep the answer: {e}"),
            )
            .into_response()
        }
    };
    let mut kept_body = String::from_utf8_lossy(&bytes).into_owned();
    if let Some(member) = secret {
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            if let Some(field) = v.get_mut(member).filter(|f| f.is_string()) {
                *field = serde_json::Value::String(
                    "shown once, in the first answer; rotate it for a new one".into(),
                );
            }
            kept_body = v.to_string();
        }
    }
    let answer = steward_db::api::KeptAnswer {
        request: digest,
        status: parts.status.as_u16(),
        body: kept_body,
    };
    let scope = scope.to_string();
    if let Err(p) = app
        .db(move |db| db.keep_answer(&scope, &key, &answer).map_err(Problem::from))
        .await
    {
        return p.into_response();
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

pub(crate) fn created<T: Serialize>(status: StatusCode, body: T) -> Response {
    (status, Json(body)).into_response()
}
