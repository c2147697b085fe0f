//! The HTTP API's CORS, answered by the gateway as API Gateway answers it from the
//! template's `CorsConfiguration`: a preflight `OPTIONS` from an allowed origin gets 204 with
//! the allowed methods and headers; every response to an allowed origin carries
//! `Access-Control-Allow-Origin`. The allowed origins are the functions' own setting
//! (`CORS_ALLOWED_ORIGINS`), which the WebSocket `$connect` checks too.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::config::AllowedOrigins;

/// As `template.yaml`'s `CorsConfiguration` (the template test compares them).
pub const ALLOW_METHODS: &[&str] = &["GET", "POST", "PATCH", "OPTIONS"];
pub const ALLOW_HEADERS: &[&str] = &["authorization", "content-type"];
pub const MAX_AGE_SECS: u64 = 600;

fn allow_origin_value(allowed: &AllowedOrigins, origin: &str) -> Option<HeaderValue> {
    if !allowed.allows(origin) {
        return None;
    }
    match allowed {
        AllowedOrigins::Any => Some(HeaderValue::from_static("*")),
        AllowedOrigins::List(_) => HeaderValue::from_str(origin).ok(),
    }
}

/// A preflight request: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub(crate) fn is_preflight(method: &axum::http::Method, headers: &HeaderMap) -> bool {
    method == axum::http::Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight: 204, with CORS headers only if the origin, method and headers
/// are allowed (a browser then refuses the real request).
pub(crate) fn preflight(allowed: &AllowedOrigins, headers: &HeaderMap) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let method_ok = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| {
            ALLOW_METHODS
                .iter()
                .any(|a| a.eq_ignore_ascii_case(m.trim()))
        });
    let headers_ok = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .all(|h| ALLOW_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(h)))
        });
    let Some(value) = allow_origin_value(allowed, origin).filter(|_| method_ok && headers_ok)
    else {
        return resp;
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    if let Ok(v) = HeaderValue::from_str(&ALLOW_METHODS.join(",")) {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if let Ok(v) = HeaderValue::from_str(&ALLOW_HEADERS.join(",")) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(MAX_AGE_SECS),
    );
    h.insert(header::VARY, HeaderValue::from_static("origin"));
    resp
}

/// Adds `Access-Control-Allow-Origin` to a response for an allowed origin.
pub(crate) fn decorate(allowed: &AllowedOrigins, origin: Option<&str>, resp: &mut Response) {
    let Some(origin) = origin else { return };
    if let Some(value) = allow_origin_value(allowed, origin) {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
    }
}
