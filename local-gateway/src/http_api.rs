//! The HTTP API emulation: match a request against the route table, build the payload v2
//! event JSON that API Gateway sends, hand it to the function in-process as the Lambda runtime
//! does (so what passes here passes in AWS) and turn its response back into
//! HTTP.
//!
//! Like API Gateway: CORS as the template's `CorsConfiguration` says (`cors`), an unmatched
//! route is 404, a function error or panic is 500
//! `{"message":"Internal Server Error"}`, and bodies over 10 MB are refused with 413.

use std::net::SocketAddr;

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::Shared;
use crate::cors;
use crate::ids;

/// API Gateway's HTTP API payload limit.
const MAX_HTTP_PAYLOAD: usize = 10 * 1024 * 1024;

pub(crate) async fn serve(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let allowed = &shared.apps[0].config.allowed_origins;
    if cors::is_preflight(request.method(), request.headers()) {
        return cors::preflight(allowed, request.headers());
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut resp = route(shared.clone(), peer, request).await;
    cors::decorate(allowed, origin.as_deref(), &mut resp);
    resp
}

async fn route(shared: Shared, peer: SocketAddr, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let Some((route, params)) = shared
        .http_routes
        .iter()
        .find_map(|r| r.matches(&method, &path).map(|p| (*r, p)))
    else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no route for {method} {path}"),
        );
    };
    let body = match to_bytes(body, MAX_HTTP_PAYLOAD).await {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"message":"Request Entity Too Large"}"#,
            )
                .into_response();
        }
    };
    let event = build_event(
        &shared,
        route.route_key,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &params,
        &body,
        peer,
    );
    let app = shared.instance();
    let handler = route.handler;
    let mut context = lambda_runtime::Context::default();
    context.request_id = ids::request_id();
    context.invoked_function_arn = ids::function_arn(route.function);
    // The event JSON goes to the function as the Lambda runtime hands it over (`lambda_http`
    // reads it, exactly as in AWS); its response JSON comes back the same way. A spawned task
    // turns a panic into a JoinError, as a crashed Lambda turns into a 500.
    let outcome = tokio::spawn(async move { handler(app, event, context).await }).await;
    match outcome {
        Ok(Ok(resp)) => match serde_json::from_value::<ApiGatewayV2httpResponse>(resp) {
            Ok(resp) => into_http(resp),
            Err(e) => {
                tracing::error!(function = route.function, error = %e, "malformed function response");
                internal_error()
            }
        },
        Ok(Err(e)) => {
            tracing::error!(function = route.function, error = %e, "function returned an error");
            internal_error()
        }
        Err(e) => {
            tracing::error!(function = route.function, error = %e, "function panicked");
            internal_error()
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build_event(
    shared: &Shared,
    route_key: &str,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    params: &[(String, String)],
    body: &[u8],
    peer: SocketAddr,
) -> Value {
    let mut header_map = Map::new();
    let mut cookies = Vec::new();
    for name in headers.keys() {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if name == header::COOKIE {
            cookies.extend(values.iter().flat_map(|v| v.split("; ")).map(str::to_owned));
            continue;
        }
        // API Gateway joins repeated headers with commas and lower-cases names.
        header_map.insert(name.as_str().to_owned(), Value::String(values.join(",")));
    }
    let raw_query = uri.query().unwrap_or("");
    let mut query = Map::new();
    for (k, v) in url_pairs(raw_query) {
        match query.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k, Value::String(v));
            }
        }
    }
    let textual = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("text/")
                || ct.contains("json")
                || ct.contains("xml")
                || ct.contains("x-www-form-urlencoded")
        });
    let (body_value, is_b64) = if body.is_empty() {
        (Value::Null, false)
    } else {
        match std::str::from_utf8(body) {
            Ok(text) if textual => (Value::String(text.to_owned()), false),
            _ => (
                Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
                true,
            ),
        }
    };
    let now = chrono::Utc::now();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": uri.path(),
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": ids::ACCOUNT_ID,
            "apiId": ids::HTTP_API_ID,
            "domainName": shared.host_header(),
            "domainPrefix": ids::HTTP_API_ID,
            "http": {
                "method": method.as_str(),
                "path": uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": peer.ip().to_string(),
                "userAgent": headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": ids::request_id(),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": is_b64,
    });
    if let Value::Object(obj) = &mut event {
        if !cookies.is_empty() {
            obj.insert("cookies".into(), json!(cookies));
        }
        if !query.is_empty() {
            obj.insert("queryStringParameters".into(), Value::Object(query));
        }
        if !params.is_empty() {
            let p: Map<String, Value> = params
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(percent_decode(v))))
                .collect();
            obj.insert("pathParameters".into(), Value::Object(p));
        }
        if !body_value.is_null() {
            obj.insert("body".into(), body_value);
        }
    }
    event
}

/// The function's payload v2 response, as API Gateway returns it to the client.
fn into_http(resp: ApiGatewayV2httpResponse) -> Response {
    let status = u16::try_from(resp.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match resp.body {
        None | Some(LambdaBody::Empty) => Vec::new(),
        Some(LambdaBody::Text(t)) if resp.is_base64_encoded => {
            base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .unwrap_or_default()
        }
        Some(LambdaBody::Text(t)) => t.into_bytes(),
        Some(LambdaBody::Binary(b)) => b,
        Some(_) => Vec::new(),
    };
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    for (name, value) in resp.headers.iter().chain(resp.multi_value_headers.iter()) {
        out.headers_mut().append(name.clone(), value.clone());
    }
    for cookie in resp.cookies {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            out.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    out
}

fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"message":"Internal Server Error"}"#,
    )
        .into_response()
}

/// The project's JSON error body, for the gateway's own refusals.
pub(crate) fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        shared::http::error_body(code, message),
    )
        .into_response()
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
