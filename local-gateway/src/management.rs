//! The @connections management API (`POST`/`GET`/`DELETE /{stage}/@connections/{id}`), as
//! the functions' `aws-sdk-apigatewaymanagement` client calls it. Unknown connections answer
//! 410 `GoneException`; posts over 128 KB 413 `PayloadTooLargeException`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::config::API_GATEWAY_MAX_MESSAGE;

use crate::Shared;
use crate::websocket::Outgoing;

fn aws_error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    let mut r = (status, json!({ "message": message }).to_string()).into_response();
    r.headers_mut().insert(
        HeaderName::from_static("x-amzn-errortype"),
        HeaderValue::from_static(kind),
    );
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn gone() -> Response {
    aws_error(StatusCode::GONE, "GoneException", "Connection is gone")
}

fn wrong_stage(shared: &Shared, stage: &str) -> Option<Response> {
    (stage != &*shared.stage)
        .then(|| aws_error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden"))
}

pub(crate) async fn post(
    State(shared): State<Shared>,
    Path((stage, id)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    shared.api_latency().await;
    if let Some(r) = wrong_stage(&shared, &stage) {
        return r;
    }
    if body.len() > API_GATEWAY_MAX_MESSAGE {
        return aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            "Payload too large",
        );
    }
    let Some(conn) = shared.registry.get(&id) else {
        return gone();
    };
    let binary = headers.get("x-frame-type").is_some_and(|v| v == "binary");
    let out = match String::from_utf8(body.to_vec()) {
        Ok(text) if !binary => Outgoing::Text(text),
        Ok(text) => Outgoing::Binary(text.into_bytes()),
        Err(e) => Outgoing::Binary(e.into_bytes()),
    };
    if conn.tx.send(out).is_err() {
        return gone();
    }
    conn.touch();
    StatusCode::OK.into_response()
}

pub(crate) async fn get(
    State(shared): State<Shared>,
    Path((stage, id)): Path<(String, String)>,
) -> Response {
    if let Some(r) = wrong_stage(&shared, &stage) {
        return r;
    }
    let Some(conn) = shared.registry.get(&id) else {
        return gone();
    };
    let last = conn
        .last_active
        .lock()
        .map(|t| *t)
        .unwrap_or(conn.connected_at);
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json!({
            "ConnectedAt": fmt(conn.connected_at),
            "Identity": { "SourceIp": conn.source_ip, "UserAgent": conn.user_agent },
            "LastActiveAt": fmt(last),
        })
        .to_string(),
    )
        .into_response()
}

pub(crate) async fn delete(
    State(shared): State<Shared>,
    Path((stage, id)): Path<(String, String)>,
) -> Response {
    shared.api_latency().await;
    if let Some(r) = wrong_stage(&shared, &stage) {
        return r;
    }
    let Some(conn) = shared.registry.remove(&id) else {
        return gone();
    };
    conn.delete();
    StatusCode::NO_CONTENT.into_response()
}
